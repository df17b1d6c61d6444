//! Cancelling at the period's end and resuming through the API: exactly the request Stripe gets
//! (with an idempotency key per request, the client's when it sends one), `202` with what was
//! asked, and the workspace's billing state moved only by Stripe's event.

use axum::http::{Method, Request, StatusCode};
use integration_tests::stripe::{SubscriptionState, form_of, now, subscription_event};
use integration_tests::{TestApp, subscribe};
use serde_json::json;

fn live(workspace_id: uuid::Uuid) -> SubscriptionState {
    SubscriptionState {
        subscription: format!("sub_{}", workspace_id.simple()),
        customer: format!("cus_{}", workspace_id.simple()),
        workspace_id,
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 20 * 86_400,
        cancel_at_period_end: false,
    }
}

async fn updates_sent(app: &TestApp, subscription: &str) -> Vec<wiremock::Request> {
    let path = format!("/v1/subscriptions/{subscription}");
    let requests = app.stripe.received_requests().await.unwrap();
    requests.into_iter().filter(|r| r.method.as_str() == "POST" && r.url.path() == path).collect()
}

#[tokio::test]
async fn cancel_at_period_end_and_resume_go_to_stripe_and_come_back_by_webhook() {
    let app = TestApp::new().await;
    let t = app.tenant("cancel").await;
    let state = live(t.id);
    app.stripe_account.put(&state);
    let worker = app.billing_worker(7).await;
    worker
        .apply(
            &subscription_event("evt_cancel_created", "customer.subscription.created", now() - 60, &state).to_string(),
        )
        .await
        .unwrap();
    let billing = format!("{}/billing", t.path());

    let cancel = app.post(&t.admin, &format!("{}/billing/subscription/cancel", t.path()), json!(null)).await;
    let body = cancel.expect(StatusCode::ACCEPTED);
    assert_eq!(body["requested"]["cancel_at_period_end"], true);
    let sent = updates_sent(&app, &state.subscription).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(form_of(&sent[0]), [("cancel_at_period_end".to_owned(), "true".to_owned())].into());
    let key = sent[0].headers.get("idempotency-key").unwrap().to_str().unwrap();
    assert!(key.starts_with(&format!("cancel-at-period-end:{}:", state.subscription)), "{key}");
    // Nothing changes here until Stripe says so.
    assert_eq!(app.get(&t.owner, &billing).await.body["cancel_at_period_end"], false);
    let updated = app.stripe_account.get(&state.subscription).unwrap();
    assert_eq!(updated["cancel_at_period_end"], true);
    let mut cancelling = state.clone();
    cancelling.cancel_at_period_end = true;
    worker
        .apply(
            &subscription_event("evt_cancel_updated", "customer.subscription.updated", now(), &cancelling).to_string(),
        )
        .await
        .unwrap();
    let summary = app.get(&t.owner, &billing).await;
    assert_eq!(
        (summary.body["cancel_at_period_end"].as_bool(), summary.body["plan"].as_str()),
        (Some(true), Some("pro"))
    );
    assert!(summary.body["next_invoice"].is_null(), "a cancelling subscription sends no next invoice");

    // Resuming, with the client's own idempotency key.
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/billing/subscription/resume", t.path()))
        .header("authorization", format!("Bearer {}", t.owner.token))
        .header("idempotency-key", "resume-click-7")
        .body(axum::body::Body::empty())
        .unwrap();
    let resumed = app.send(request).await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.body);
    let sent = updates_sent(&app, &state.subscription).await;
    assert_eq!(form_of(&sent[1]), [("cancel_at_period_end".to_owned(), "false".to_owned())].into());
    assert_eq!(
        sent[1].headers.get("idempotency-key").unwrap(),
        format!("resume:{}:resume-click-7", state.subscription).as_str()
    );
    assert_eq!(app.stripe_account.get(&state.subscription).unwrap()["cancel_at_period_end"], false);
}

#[tokio::test]
async fn without_a_live_subscription_nothing_is_asked_of_stripe() {
    let app = TestApp::new().await;
    let t = app.tenant("cancel-none").await;
    // The fixture's subscription, ended.
    subscribe(t.id, "studio", "canceled").await;
    let refused = app.post(&t.owner, &format!("{}/billing/subscription/cancel", t.path()), json!(null)).await;
    assert_eq!(refused.problem(StatusCode::CONFLICT), "no_subscription");
    // Live here, unknown to Stripe.
    subscribe(t.id, "studio", "active").await;
    let gone = app.post(&t.owner, &format!("{}/billing/subscription/resume", t.path()), json!(null)).await;
    assert_eq!(gone.problem(StatusCode::CONFLICT), "no_subscription");
    assert_eq!(updates_sent(&app, &format!("sub_{}", t.id.simple())).await.len(), 1, "one try, answered 404");
    let member = app.post(&t.member, &format!("{}/billing/subscription/cancel", t.path()), json!(null)).await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
}

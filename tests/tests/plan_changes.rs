//! Changing plan through the API against the local Stripe, from request to event to
//! entitlements: an upgrade applies at once; a downgrade waits for the period's end (a
//! subscription schedule) and is refused, with what to remove first, while the workspace uses
//! more than the smaller plan allows.

use axum::http::StatusCode;
use integration_tests::stripe::{local_stripe_events as events, start_local_stripe};
use integration_tests::{TestApp, base_settings};
use serde_json::json;

#[tokio::test]
async fn upgrades_apply_now_downgrades_at_the_period_end_and_only_when_they_fit() {
    let base = start_local_stripe().await;
    let mut settings = base_settings();
    settings.push(("STRIPE_API_BASE".into(), base.clone()));
    let app = TestApp::with_settings(settings).await;
    let owner = app.user("plan-change").await;
    let ws = app.workspace(&owner, "Plan change").await;
    let worker =
        billing_worker::Worker { stripe: integration_tests::stripe::reader(&base), ..app.billing_worker(7).await };
    let apply_new = |seen: usize| {
        let (base, worker) = (base.clone(), &worker);
        async move {
            let all = events(&base).await;
            for event in all[..all.len() - seen].iter().rev() {
                worker.apply(&event.to_string()).await.unwrap();
            }
            all.len()
        }
    };
    let (billing_path, change_path) =
        (format!("/v1/workspaces/{ws}/billing"), format!("/v1/workspaces/{ws}/billing/subscription"));
    let billing = || app.get(&owner, &billing_path);
    let change = |plan: &str| app.post(&owner, &change_path, json!({"plan": plan}));

    // No subscription yet.
    assert_eq!(change("studio").await.problem(StatusCode::CONFLICT), "no_subscription");
    // Subscribe to Pro through checkout and the hosted page.
    let session = app
        .post(
            &owner,
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            json!({"plan": "pro", "success_url": "http://127.0.0.1:3000/ok", "cancel_url": "http://127.0.0.1:3000/no"}),
        )
        .await;
    let url = session.expect(StatusCode::OK)["url"].as_str().unwrap().to_owned();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    client.post(format!("{url}/pay")).send().await.unwrap();
    let mut seen = apply_new(0).await;
    assert_eq!(billing().await.body["plan"], "pro");
    assert_eq!(change("pro").await.problem(StatusCode::CONFLICT), "already_on_plan");
    assert_eq!(change("enterprise").await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Upgrade: at once.
    let upgraded = change("studio").await;
    assert_eq!(upgraded.expect(StatusCode::ACCEPTED)["requested"], json!({"plan": "studio", "effective": "now"}));
    assert_eq!(billing().await.body["plan"], "pro", "nothing changes before Stripe's event");
    seen = apply_new(seen).await;
    assert_eq!(billing().await.body["plan"], "studio");

    // Downgrade while using what Pro does not include: refused, naming it.
    let key = app.post(&owner, &format!("/v1/workspaces/{ws}/api-keys"), json!({"name": "CI", "role": "member"})).await;
    let key_id = key.id();
    let refused = change("pro").await;
    assert_eq!(refused.problem(StatusCode::CONFLICT), "downgrade_blocked");
    assert_eq!(refused.body["errors"][0]["field"], "api_keys", "{}", refused.body);
    assert_eq!(events(&base).await.len(), seen, "nothing asked of Stripe");

    // Once it fits: scheduled for the period's end; the plan stays until then.
    app.delete(&owner, &format!("/v1/workspaces/{ws}/api-keys/{key_id}")).await.expect(StatusCode::NO_CONTENT);
    let scheduled = change("pro").await;
    let body = scheduled.expect(StatusCode::ACCEPTED);
    assert_eq!(
        (body["requested"]["plan"].as_str(), body["requested"]["effective"].as_str()),
        (Some("pro"), Some("period_end"))
    );
    assert!(body["requested"]["at"].is_string());
    assert_eq!(events(&base).await.len(), seen, "a schedule changes nothing until the period ends");
    assert_eq!(billing().await.body["plan"], "studio");
    // Asking again reuses the schedule (no second one).
    change("pro").await.expect(StatusCode::ACCEPTED);

    // The period ends (the local portal's "advance" action): the new phase takes over.
    let portal = app
        .post(&owner, &format!("/v1/workspaces/{ws}/billing/portal"), json!({"return_url": "http://127.0.0.1:3000/"}))
        .await;
    let portal_url = portal.expect(StatusCode::OK)["url"].as_str().unwrap().to_owned();
    let subscription: String =
        sqlx::query_scalar("SELECT stripe_subscription_id FROM subscriptions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&integration_tests::owner_pool().await)
            .await
            .unwrap();
    assert_eq!(client.post(format!("{portal_url}/{subscription}/renew")).send().await.unwrap().status(), 303);
    apply_new(seen).await;
    let after = billing().await;
    assert_eq!((after.body["plan"].as_str(), after.body["status"].as_str()), (Some("pro"), Some("active")));

    // Members and viewers cannot change the plan.
    let member = app.user("plan-change-member").await;
    app.post(&owner, &format!("/v1/workspaces/{ws}/members"), json!({"email": member.email, "role": "member"}))
        .await
        .expect(StatusCode::CREATED);
    let denied =
        app.post(&member, &format!("/v1/workspaces/{ws}/billing/subscription"), json!({"plan": "studio"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

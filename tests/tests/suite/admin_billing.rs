//! The operators' billing tools: extending a trial goes through Stripe (exact request, an
//! idempotency key, no proration), is audited with the operator and the reason, and reaches
//! the database only through Stripe's webhook; the totals report MRR from the synced prices and
//! the dead-letter queues' depths.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use integration_tests::stripe::{SubscriptionState, form_of, now, subscription_event};
use integration_tests::{TestApp, base_settings, create_queue, mint, owner_pool, subscribe};
use serde_json::{Value, json};
use shared::queue::Queue;
use tower::ServiceExt;
use uuid::Uuid;

struct Admin {
    router: axum::Router,
    token: String,
}

impl Admin {
    async fn start(app: &TestApp, dead_letters: Vec<(String, Queue)>) -> Self {
        let mut settings = base_settings();
        settings.push(("ADMIN_SUBJECTS".into(), "billing-operator".into()));
        let state = integration_tests::admin_state(settings)
            .await
            .with_stripe(integration_tests::stripe::reader(&app.stripe.uri()))
            .with_dead_letter_queues(dead_letters);
        Self {
            router: shared::runtime::app::<admin::Function>(state),
            token: mint("billing-operator", None, Duration::from_secs(600)),
        }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn trialing(workspace_id: Uuid) -> SubscriptionState {
    SubscriptionState {
        subscription: format!("sub_{}", workspace_id.simple()),
        customer: format!("cus_{}", workspace_id.simple()),
        workspace_id,
        status: "trialing",
        lookup_key: "pro_monthly",
        period_end: now() + 3 * 86_400,
        cancel_at_period_end: false,
    }
}

async fn trial_end_of(workspace_id: Uuid) -> Option<time::OffsetDateTime> {
    sqlx::query_scalar("SELECT trial_end FROM subscriptions WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(&owner_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operator_extends_a_trial_through_stripe_and_the_webhook_brings_it_back() {
    let app = TestApp::new().await;
    let t = app.tenant("admin-trial").await;
    let state = trialing(t.id);
    app.stripe_account.put(&state);
    app.stripe_account.update(&state.subscription, |s| s["trial_end"] = json!(state.period_end));
    let worker = app.billing_worker(7).await;
    let created = subscription_event("evt_trial_created", "customer.subscription.created", now() - 60, &state);
    worker.apply(&created.to_string()).await.unwrap();
    let before = trial_end_of(t.id).await.expect("the trial's end is synced");
    assert_eq!(before.unix_timestamp(), state.period_end);
    let admin = Admin::start(&app, Vec::new()).await;
    let path = format!("/v1/admin/workspaces/{}/trial", t.id);

    let wanted = (time::OffsetDateTime::now_utc() + time::Duration::days(14)).replace_nanosecond(0).unwrap();
    let rfc3339 = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    for (body, expected) in [
        (json!({"trial_end": rfc3339(wanted)}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"trial_end": rfc3339(wanted), "reason": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"trial_end": rfc3339(before - time::Duration::hours(1)), "reason": "later please"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"trial_end": "soon", "reason": "later please"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        assert_eq!(admin.call("POST", &path, Some(body.clone())).await.0, expected, "{body}");
    }
    assert!(app.stripe.received_requests().await.unwrap().iter().all(|r| r.method.as_str() != "POST"), "nothing sent");

    let (status, answer) =
        admin.call("POST", &path, Some(json!({"trial_end": rfc3339(wanted), "reason": "Sales call on Monday"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["trial_end"], rfc3339(wanted));
    let sent: Vec<_> =
        app.stripe.received_requests().await.unwrap().into_iter().filter(|r| r.method.as_str() == "POST").collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url.path(), format!("/v1/subscriptions/{}", state.subscription));
    let form = form_of(&sent[0]);
    assert_eq!(form.get("trial_end"), Some(&wanted.unix_timestamp().to_string()));
    assert_eq!(form.get("proration_behavior").map(String::as_str), Some("none"));
    assert_eq!(
        sent[0].headers.get("idempotency-key").unwrap(),
        format!("extend-trial:{}:{}", state.subscription, wanted.unix_timestamp()).as_str()
    );
    // Billing truth still comes from Stripe: unchanged until the event arrives.
    assert_eq!(trial_end_of(t.id).await, Some(before));
    let updated = subscription_event("evt_trial_updated", "customer.subscription.updated", now(), &state);
    worker.apply(&updated.to_string()).await.unwrap();
    assert_eq!(trial_end_of(t.id).await, Some(wanted));

    let (action, actor, details): (String, String, Value) = sqlx::query_as(
        "SELECT action, actor, details FROM audit_log WHERE workspace_id = $1 AND action = 'subscription.trial_extended'",
    )
    .bind(t.id)
    .fetch_one(&owner_pool().await)
    .await
    .unwrap();
    assert_eq!(
        (action.as_str(), actor.as_str()),
        ("subscription.trial_extended", "operator:saas-local|billing-operator")
    );
    assert_eq!(
        details,
        json!({"reason": "Sales call on Monday", "stripe_subscription_id": state.subscription,
               "from": state.period_end, "to": wanted.unix_timestamp()})
    );

    // Only trials: an active subscription, or none, is a conflict.
    let paying = app.tenant("admin-trial-paying").await;
    subscribe(paying.id, "pro", "active").await;
    let none = app.workspace(&app.user("admin-trial-none").await, "No subscription").await;
    for workspace in [paying.id, none] {
        let (status, body) = admin
            .call(
                "POST",
                &format!("/v1/admin/workspaces/{workspace}/trial"),
                Some(json!({"trial_end": rfc3339(wanted), "reason": "why not"})),
            )
            .await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("not_trialing")), "{body}");
    }
    let (missing, _) = admin
        .call(
            "POST",
            &format!("/v1/admin/workspaces/{}/trial", Uuid::now_v7()),
            Some(json!({"trial_end": rfc3339(wanted), "reason": "why not"})),
        )
        .await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    // A tenant is no operator.
    let request = Request::post(&path)
        .header(header::AUTHORIZATION, format!("Bearer {}", t.owner.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"trial_end": rfc3339(wanted), "reason": "my own"}).to_string()))
        .unwrap();
    assert_eq!(admin.router.clone().oneshot(request).await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn totals_report_mrr_from_synced_prices_and_dead_lettered_messages() {
    let app = TestApp::new().await;
    let worker = app.billing_worker(7).await;
    // Three paying workspaces (one past due) and one trial, synced from Stripe's objects
    // (2900 a month each in the local Stripe's prices).
    for (label, status) in [("mrr-a", "active"), ("mrr-b", "active"), ("mrr-c", "past_due"), ("mrr-d", "trialing")] {
        let owner = app.user(label).await;
        let ws = app.workspace(&owner, label).await;
        let mut state = trialing(ws);
        state.status = status;
        app.stripe_account.put(&state);
        let event = subscription_event(&format!("evt_{label}"), "customer.subscription.created", now(), &state);
        worker.apply(&event.to_string()).await.unwrap();
    }
    let owner = owner_pool().await;
    let expected: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(monthly_amount), 0)::bigint FROM subscriptions WHERE status IN ('active', 'past_due') AND currency = 'usd'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let synced: Vec<(Option<i64>, Option<String>)> =
        sqlx::query_as("SELECT monthly_amount, currency FROM subscriptions WHERE stripe_subscription_id LIKE 'sub_%'")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert!(synced.iter().filter(|(a, c)| *a == Some(2900) && c.as_deref() == Some("usd")).count() >= 4, "{synced:?}");

    let config = integration_tests::local_aws().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = Queue::new(sqs.clone(), create_queue("admin-dlq", &[]).await);
    for i in 0..3 {
        dlq.send(&format!("dead {i}"), &[]).await.unwrap();
    }
    let empty = Queue::new(sqs.clone(), create_queue("admin-dlq-empty", &[]).await);
    let gone = Queue::new(sqs, format!("{}/123456789012/no-such-queue", std::env::var("AWS_ENDPOINT_URL").unwrap()));
    let admin =
        Admin::start(&app, vec![("stripe-events".into(), dlq), ("email".into(), empty), ("exports".into(), gone)])
            .await;
    let (status, totals) = admin.call("GET", "/v1/admin/totals", None).await;
    assert_eq!(status, StatusCode::OK, "{totals}");
    assert_eq!(totals["mrr"]["usd"], json!(expected));
    assert!(expected >= 3 * 2900, "three paying subscriptions at least: {expected}");
    assert_eq!(totals["dead_lettered"], json!({"stripe-events": 3, "email": 0, "exports": null}));
    assert_eq!(totals["subscriptions_by_status"]["trialing"].as_i64().map(|n| n >= 1), Some(true));
}

//! Changing plan through the API against the local Stripe, from request to event to
//! entitlements: an upgrade applies at once; a downgrade waits for the period's end (a
//! subscription schedule) and is refused, with what to remove first, while the workspace uses
//! more than the smaller plan allows.

use axum::http::StatusCode;
use integration_tests::stripe::{LocalBilling, local_stripe_events as events};
use serde_json::json;

#[tokio::test]
async fn upgrades_apply_now_downgrades_at_the_period_end_and_only_when_they_fit() {
    let t = LocalBilling::start("plan-change").await;
    let (app, owner, ws) = (&t.app, &t.owner, t.ws);
    let (billing_path, change_path) =
        (format!("/v1/workspaces/{ws}/billing"), format!("/v1/workspaces/{ws}/billing/subscription"));
    let billing = || app.get(owner, &billing_path);
    let change = |plan: &str| app.post(owner, &change_path, json!({"plan": plan}));

    // No subscription yet.
    assert_eq!(change("studio").await.problem(StatusCode::CONFLICT), "no_subscription");
    // Subscribe to Pro through checkout and the hosted page.
    t.checkout("pro").await;
    t.apply_events().await;
    assert_eq!(billing().await.body["plan"], "pro");
    assert_eq!(change("pro").await.problem(StatusCode::CONFLICT), "already_on_plan");
    assert_eq!(change("enterprise").await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Upgrade: at once.
    let upgraded = change("studio").await;
    assert_eq!(upgraded.expect(StatusCode::ACCEPTED)["requested"], json!({"plan": "studio", "effective": "now"}));
    assert_eq!(billing().await.body["plan"], "pro", "nothing changes before Stripe's event");
    t.apply_events().await;
    assert_eq!(billing().await.body["plan"], "studio");
    let seen = events(&t.base).await.len();

    // Downgrade while using what Pro does not include: refused, naming it.
    let key = app.post(owner, &format!("/v1/workspaces/{ws}/api-keys"), json!({"name": "CI", "role": "member"})).await;
    let key_id = key.id();
    let refused = change("pro").await;
    assert_eq!(refused.problem(StatusCode::CONFLICT), "downgrade_blocked");
    assert_eq!(refused.body["errors"][0]["field"], "api_keys", "{}", refused.body);
    assert_eq!(events(&t.base).await.len(), seen, "nothing asked of Stripe");

    // Once it fits: scheduled for the period's end; the plan stays until then.
    app.delete(owner, &format!("/v1/workspaces/{ws}/api-keys/{key_id}")).await.expect(StatusCode::NO_CONTENT);
    let scheduled = change("pro").await;
    let body = scheduled.expect(StatusCode::ACCEPTED);
    assert_eq!(
        (body["requested"]["plan"].as_str(), body["requested"]["effective"].as_str()),
        (Some("pro"), Some("period_end"))
    );
    assert!(body["requested"]["at"].is_string());
    assert_eq!(events(&t.base).await.len(), seen, "a schedule changes nothing until the period ends");
    assert_eq!(billing().await.body["plan"], "studio");
    // Asking again reuses the schedule (no second one).
    change("pro").await.expect(StatusCode::ACCEPTED);

    // The period ends (the local portal's "advance" action): the new phase takes over.
    let portal = t.portal_url().await;
    t.portal_action(&portal, "renew").await;
    t.apply_events().await;
    let after = billing().await;
    assert_eq!((after.body["plan"].as_str(), after.body["status"].as_str()), (Some("pro"), Some("active")));

    // Members and viewers cannot change the plan.
    let member = app.user("plan-change-member").await;
    app.add_member(owner, ws, &member, "member").await;
    let denied =
        app.post(&member, &format!("/v1/workspaces/{ws}/billing/subscription"), json!({"plan": "studio"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

/// A client's `Idempotency-Key` sent again: the same request is a harmless retry, and after the
/// seats changed it asks for the seats now (it was a 502, Stripe refusing the key reused with
/// another quantity; found by schemathesis). A key Stripe does refuse as reused with other
/// parameters is the caller's mistake: 422 on the header, not a 502.
#[tokio::test]
async fn a_retried_idempotency_key_is_a_retry_and_a_reused_one_a_422() {
    let t = LocalBilling::start("plan-change-key").await;
    let ws = t.ws;
    t.checkout("pro").await;
    t.apply_events().await;
    let change = |plan: &str| {
        let request = axum::http::Request::post(format!("/v1/workspaces/{ws}/billing/subscription"))
            .header("authorization", format!("Bearer {}", t.owner.token))
            .header("content-type", "application/json")
            .header("idempotency-key", "change-1")
            .body(axum::body::Body::from(json!({"plan": plan}).to_string()))
            .unwrap();
        t.app.send(request)
    };
    change("team").await.expect(StatusCode::ACCEPTED);
    let seen = events(&t.base).await.len();
    change("team").await.expect(StatusCode::ACCEPTED);
    assert_eq!(events(&t.base).await.len(), seen, "a retry asks Stripe nothing new");
    let member = t.app.user("key-member").await;
    t.app.add_member(&t.owner, ws, &member, "member").await;
    change("team").await.expect(StatusCode::ACCEPTED);

    // Stripe's own refusal of a key reused with other parameters.
    let stripe = shared::stripe::StripeClient::new(&"sk_test_local".into(), Some(t.base.as_str())).unwrap();
    let subscription: String =
        sqlx::query_scalar("SELECT stripe_subscription_id FROM subscriptions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&integration_tests::owner_pool().await)
            .await
            .unwrap();
    let ask = |cancel: bool| {
        stripe_billing::subscription::UpdateSubscription::new(subscription.as_str()).cancel_at_period_end(cancel)
    };
    stripe.post(ask(true), "reused-key").await.expect("the first use of the key");
    let refused = stripe.post(ask(false), "reused-key").await.expect_err("a key reused with other parameters");
    assert!(matches!(refused, shared::stripe::StripeError::IdempotencyKeyReused), "{refused}");
    let answer = shared::billing::stripe_failure(refused);
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(matches!(&answer, shared::ApiError::Validation(errors) if errors[0].field == "Idempotency-Key"));
}

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
    app.post(owner, &format!("/v1/workspaces/{ws}/members"), json!({"email": member.email, "role": "member"}))
        .await
        .expect(StatusCode::CREATED);
    let denied =
        app.post(&member, &format!("/v1/workspaces/{ws}/billing/subscription"), json!({"plan": "studio"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

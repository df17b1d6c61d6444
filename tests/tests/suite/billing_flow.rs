//! The whole billing flow on one machine: a checkout request (local Stripe), the subscription
//! event Stripe then sends (built from what our checkout sent it, and signed as Stripe signs),
//! the webhook, the SQS queue (moto), the worker, and entitlements and limits following.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use billing_worker::handle_batch;
use integration_tests::stripe::{
    SubscriptionState, WEBHOOK_SECRET, form_of, now, signature_header, subscription_event,
};
use integration_tests::{TestApp, create_queue, local_aws};
use serde_json::json;
use shared::queue::Queue;
use tower::ServiceExt;

#[tokio::test]
async fn checkout_then_webhook_then_worker_upgrades_the_workspace_and_its_limits() {
    let app = TestApp::new().await;
    let owner = app.user("flow").await;
    let ws = app.workspace(&owner, "Flow").await;
    let projects = format!("/v1/workspaces/{ws}/projects");
    for i in 0..3 {
        app.post(&owner, &projects, json!({"name": format!("P{i}")})).await.expect(StatusCode::CREATED);
    }
    assert_eq!(
        app.post(&owner, &projects, json!({"name": "P3"})).await.problem(StatusCode::PAYMENT_REQUIRED),
        "plan_limit_reached"
    );

    // 1. Checkout.
    let checkout = app
        .post(
            &owner,
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            json!({"plan": "pro", "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}),
        )
        .await;
    checkout.expect(StatusCode::OK);
    let session = app
        .stripe
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/checkout/sessions")
        .unwrap();
    let sent = form_of(&session);

    // 2. Stripe completes it and sends the subscription, carrying the metadata we gave it.
    let state = SubscriptionState {
        subscription: format!("sub_flow_{}", ws.simple()),
        customer: sent["customer"].clone(),
        workspace_id: sent["subscription_data[metadata][workspace_id]"].parse().unwrap(),
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 2_592_000,
        cancel_at_period_end: false,
    };
    let event =
        subscription_event(&format!("evt_flow_{}", ws.simple()), "customer.subscription.created", now(), &state)
            .to_string();

    // 3. The webhook verifies and enqueues.
    let queue_url = create_queue("flow-events", &[]).await;
    let queue = Queue::new(aws_sdk_sqs::Client::new(&local_aws().await), &queue_url);
    let webhook = integration_tests::stripe_webhook(WEBHOOK_SECRET, &queue_url, &[]).await;
    let delivered = webhook
        .oneshot(
            Request::post("/")
                .header("stripe-signature", signature_header(WEBHOOK_SECRET, now(), &event))
                .header("content-type", "application/json")
                .body(Body::from(event.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(delivered.status(), StatusCode::OK);
    assert_eq!(
        app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await.body["plan"],
        "free",
        "nothing applied yet"
    );

    // 4. The worker drains the queue.
    // Stripe holds the subscription as the event describes it; the worker reads it from there.
    app.stripe_account.put(&state);
    let worker = app.billing_worker(7).await;
    let drained = queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
    assert_eq!((drained.received, drained.failed), (1, 0));

    // 5. Entitlements and limits follow.
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["plan"].as_str(), billing.body["status"].as_str()), (Some("pro"), Some("active")));
    assert_eq!(billing.body["entitlements"]["limits"]["projects"], 50);
    app.post(&owner, &projects, json!({"name": "P3"})).await.expect(StatusCode::CREATED);
    // And checkout now sends the owner to the portal.
    let again = app
        .post(
            &owner,
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            json!({"plan": "studio", "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}),
        )
        .await;
    assert_eq!(again.problem(StatusCode::CONFLICT), "subscription_exists");
    app.post(
        &owner,
        &format!("/v1/workspaces/{ws}/billing/portal"),
        json!({"return_url": "https://app.example.test/"}),
    )
    .await
    .expect(StatusCode::OK);
}

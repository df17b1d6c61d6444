//! Reconciliation: events the webhook path never delivered are found in Stripe's event log
//! (a local Stripe here) and applied once; running it again changes nothing.

use billing_reconcile::Reconciler;
use billing_worker::Worker;
use integration_tests::stripe::{SECRET_KEY, SubscriptionState, now, subscription_event};
use integration_tests::{TestApp, service_pool};
use secrecy::SecretString;
use serde_json::json;
use shared::stripe::StripeClient;
use uuid::Uuid;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_missed_cancellation_is_repaired_once() {
    let app = TestApp::new().await;
    let owner = app.user("drift").await;
    let ws = app.workspace(&owner, "Drift").await;
    let state = SubscriptionState {
        subscription: format!("sub_{}", ws.simple()),
        customer: format!("cus_{}", ws.simple()),
        workspace_id: ws,
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 2_592_000,
        cancel_at_period_end: false,
    };
    let tag = Uuid::new_v4().simple();
    let delivered =
        subscription_event(&format!("evt_delivered_{tag}"), "customer.subscription.created", now() - 600, &state);
    let missed = subscription_event(
        &format!("evt_missed_{tag}"),
        "customer.subscription.deleted",
        now() - 60,
        &SubscriptionState { status: "canceled", ..state.clone() },
    );
    let worker = Worker { pool: service_pool().await, past_due_grace: time::Duration::days(7) };
    worker.apply(&delivered.to_string()).await.unwrap();
    assert_eq!(app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await.body["plan"], "pro");

    // Stripe's event log, newest first, over two pages.
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param_is_missing("starting_after"))
        .and(query_param("types[]", "customer.subscription.deleted"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [missed], "has_more": true})),
        )
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("starting_after", format!("evt_missed_{tag}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [delivered], "has_more": false})),
        )
        .mount(&stripe)
        .await;
    let reconciler = Reconciler {
        worker,
        stripe: StripeClient::new(SecretString::from(SECRET_KEY), Some(stripe.uri())),
        lookback: time::Duration::days(30),
    };
    let report = reconciler.run().await.unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.repaired.len(), 1, "{report:?}");
    assert_eq!(report.repaired[0].event_id, format!("evt_missed_{tag}"));
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["plan"].as_str(), billing.body["status"].as_str()), (Some("free"), Some("canceled")));

    let again = reconciler.run().await.unwrap();
    assert!(again.repaired.is_empty(), "a second run repairs nothing: {again:?}");

    let first = &stripe.received_requests().await.unwrap()[0];
    let created_gte: i64 = first.url.query_pairs().find(|(k, _)| k == "created[gte]").unwrap().1.parse().unwrap();
    assert!((now() - 30 * 86_400 - created_gte).abs() < 60, "looks back 30 days");
    let types: Vec<String> =
        first.url.query_pairs().filter(|(k, _)| k == "types[]").map(|(_, v)| v.into_owned()).collect();
    assert!(
        types.contains(&"checkout.session.completed".to_owned())
            && types.contains(&"invoice.payment_failed".to_owned())
    );
    assert_eq!(first.headers.get("authorization").unwrap(), format!("Bearer {SECRET_KEY}").as_str());
}

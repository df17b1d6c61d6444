//! Reconciliation against a local Stripe: missed events found in Stripe's event log are applied
//! once; events that waited for their customer are applied once it is linked; drift injected
//! straight into the database is found by comparing every subscription with Stripe's state,
//! repaired through the worker's own sync, and reported field by field. A second run finds
//! nothing.

use billing_reconcile::Reconciler;
use integration_tests::stripe::{SubscriptionState, now, subscription_event};
use integration_tests::{TestApp, service_pool, subscribe};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, ResponseTemplate};

fn state(ws: Uuid, status: &'static str) -> SubscriptionState {
    SubscriptionState {
        subscription: format!("sub_{}", ws.simple()),
        customer: format!("cus_{}", ws.simple()),
        workspace_id: ws,
        status,
        lookup_key: "pro_monthly",
        period_end: now() + 2_592_000,
        cancel_at_period_end: false,
    }
}

/// Reconciliation compares the whole database with one Stripe account, and each test has its
/// own local Stripe: the tests of this file take turns, and each asserts on its own workspaces.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn reconciler(app: &TestApp) -> Reconciler {
    integration_tests::reconciler(&app.stripe.uri(), &integration_tests::billing_queue().await).await
}

/// Stripe's event log, empty unless a test mounts its own first.
async fn empty_event_log(app: &TestApp) {
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [], "has_more": false})),
        )
        .mount(&app.stripe)
        .await;
}

async fn billing(app: &TestApp, owner: &integration_tests::TestUser, ws: Uuid) -> (String, String) {
    let body = app.get(owner, &format!("/v1/workspaces/{ws}/billing")).await.body;
    (body["plan"].as_str().unwrap().to_owned(), body["status"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_missed_cancellation_is_repaired_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let owner = app.user("missed").await;
    let ws = app.workspace(&owner, "Missed").await;
    let active = state(ws, "active");
    app.stripe_account.put(&active);
    let tag = Uuid::new_v4().simple();
    let delivered =
        subscription_event(&format!("evt_delivered_{tag}"), "customer.subscription.created", now() - 600, &active);
    let canceled = SubscriptionState { status: "canceled", ..active.clone() };
    let missed =
        subscription_event(&format!("evt_missed_{tag}"), "customer.subscription.deleted", now() - 60, &canceled);
    let reconciler = reconciler(&app).await;
    reconciler.worker.apply(&delivered.to_string()).await.unwrap();
    assert_eq!(billing(&app, &owner, ws).await, ("pro".into(), "active".into()));
    // Stripe canceled it; the webhook never arrived.
    app.stripe_account.put(&canceled);

    // Stripe's event log, newest first, over two pages.
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [missed], "has_more": true})),
        )
        .mount(&app.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("starting_after", format!("evt_missed_{tag}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [delivered], "has_more": false})),
        )
        .mount(&app.stripe)
        .await;
    let report = reconciler.run().await.unwrap();
    assert_eq!(report.events_checked, 2);
    assert_eq!(report.missed_events.len(), 1, "{report:?}");
    assert_eq!(report.missed_events[0].event_id, format!("evt_missed_{tag}"));
    assert!(!report.drift.iter().any(|d| d.workspace_id == ws), "the missed event already repaired it: {report:?}");
    assert_eq!(billing(&app, &owner, ws).await, ("free".into(), "canceled".into()));

    let again = reconciler.run().await.unwrap();
    assert!(again.missed_events.is_empty(), "a second run repairs nothing: {again:?}");
    assert!(!again.drift.iter().any(|d| d.workspace_id == ws), "{again:?}");

    let requests = app.stripe.received_requests().await.unwrap();
    let first = requests.iter().find(|r| r.url.path() == "/v1/events").unwrap();
    let query: Vec<(String, String)> = first.url.query_pairs().into_owned().collect();
    let created_gte: i64 = query.iter().find(|(k, _)| k == "created[gte]").unwrap().1.parse().unwrap();
    assert!((now() - 30 * 86_400 - created_gte).abs() < 60, "looks back 30 days");
    let types: Vec<&str> = query.iter().filter(|(k, _)| k.starts_with("types[")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(types.len(), shared::billing_sync::HANDLED_EVENT_TYPES.len());
    assert!(types.contains(&"checkout.session.completed") && types.contains(&"invoice.payment_failed"));
    assert_eq!(first.headers.get("authorization").unwrap(), "Bearer sk_test_integration");
}

#[tokio::test]
async fn drift_injected_into_the_database_is_found_repaired_and_reported() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let owner = app.user("drift").await;
    empty_event_log(&app).await;
    let reconciler = reconciler(&app).await;
    let worker = &reconciler.worker;

    // A: in step with Stripe, then edited behind its back.
    let a = app.workspace(&owner, "Edited").await;
    app.stripe_account.put(&state(a, "active"));
    worker
        .apply(&subscription_event("evt_a_1", "customer.subscription.created", now(), &state(a, "active")).to_string())
        .await
        .unwrap();
    sqlx::query("UPDATE subscriptions SET plan_id = 'studio', status = 'past_due', cancel_at_period_end = true WHERE workspace_id = $1")
        .bind(a)
        .execute(&service_pool().await)
        .await
        .unwrap();
    // B: stored active; Stripe canceled it (the cancellation never arrived, nor is it in the log).
    let b = app.workspace(&owner, "Canceled in Stripe").await;
    subscribe(b, "pro", "active").await;
    app.stripe_account.put(&state(b, "canceled"));
    // C: stored active; Stripe has no such subscription at all.
    let c = app.workspace(&owner, "Gone from Stripe").await;
    subscribe(c, "pro", "active").await;
    // D: paying in Stripe, nothing stored.
    let d = app.workspace(&owner, "Never synced").await;
    app.stripe_account.put(&state(d, "active"));
    // E: in step with Stripe: not reported.
    let e = app.workspace(&owner, "In step").await;
    app.stripe_account.put(&state(e, "active"));
    worker
        .apply(&subscription_event("evt_e_1", "customer.subscription.created", now(), &state(e, "active")).to_string())
        .await
        .unwrap();

    let report = reconciler.run().await.unwrap();
    let drifted: std::collections::HashMap<Uuid, &Vec<shared::billing_sync::Difference>> =
        report.drift.iter().map(|d| (d.workspace_id, &d.differences)).collect();
    let fields = |ws: Uuid| -> Vec<(&'static str, Value, Value)> {
        drifted[&ws].iter().map(|d| (d.field, d.stored.clone(), d.stripe.clone())).collect()
    };
    assert_eq!(
        fields(a),
        [
            ("status", json!("past_due"), json!("active")),
            ("plan", json!("studio"), json!("pro")),
            ("cancel_at_period_end", json!(true), json!(false)),
        ]
    );
    assert_eq!(fields(b).iter().find(|f| f.0 == "status").unwrap().2, json!("canceled"));
    assert_eq!(fields(c), [("status", json!("active"), json!("missing in Stripe"))]);
    assert!(fields(d).iter().any(|f| f == &("status", Value::Null, json!("active"))), "{:?}", fields(d));
    assert!(!drifted.contains_key(&e), "a workspace in step is not reported");
    assert!(report.subscriptions_checked >= 5);

    assert_eq!(billing(&app, &owner, a).await, ("pro".into(), "active".into()));
    assert_eq!(billing(&app, &owner, b).await, ("free".into(), "canceled".into()));
    assert_eq!(billing(&app, &owner, c).await, ("free".into(), "canceled".into()));
    assert_eq!(billing(&app, &owner, d).await, ("pro".into(), "active".into()));
    // Each repair is on the audit trail, by reconciliation.
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE actor = 'reconciliation' AND workspace_id = ANY($1)")
            .bind(vec![a, b, c, d])
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert_eq!(audited, 4);

    let again = reconciler.run().await.unwrap();
    let ours = [a, b, c, d, e];
    assert!(!again.drift.iter().any(|d| ours.contains(&d.workspace_id)), "a second run finds nothing: {again:?}");
}

#[tokio::test]
async fn an_event_that_waited_for_its_customer_is_applied_by_reconciliation() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let owner = app.user("waited").await;
    let ws = app.workspace(&owner, "Waited").await;
    empty_event_log(&app).await;
    let reconciler = reconciler(&app).await;
    let active = state(ws, "active");
    app.stripe_account.put(&active);
    app.stripe_account.update(&active.subscription, |object| object["metadata"] = json!({}));
    let mut early = subscription_event("evt_waited_1", "customer.subscription.created", now() - 5, &active);
    early["data"]["object"]["metadata"] = json!({});
    assert_eq!(reconciler.worker.apply(&early.to_string()).await.unwrap(), billing_worker::Outcome::Unlinked);
    // The checkout function links the customer when it creates it; no event says so.
    sqlx::query("UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1")
        .bind(ws)
        .bind(&active.customer)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let report = reconciler.run().await.unwrap();
    assert_eq!(report.waiting_events.len(), 1, "{report:?}");
    assert_eq!(report.waiting_events[0].event_id, "evt_waited_1");
    assert_eq!(report.waiting_events[0].outcome, "applied");
    assert_eq!(billing(&app, &owner, ws).await, ("pro".into(), "active".into()));
    let again = reconciler.run().await.unwrap();
    assert!(again.waiting_events.is_empty(), "{again:?}");
    assert!(!again.drift.iter().any(|d| d.workspace_id == ws), "{again:?}");
}

//! The billing worker: every event applied exactly once, deliveries in any order converging on
//! Stripe's latest state, entitlements following, poison messages failing alone.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::http::StatusCode;
use billing_worker::{Outcome, Worker, handle_batch};
use integration_tests::stripe::{SubscriptionState, checkout_completed_event, invoice_event, now, subscription_event};
use integration_tests::{TestApp, service_pool};
use serde_json::{Value, json};
use uuid::Uuid;

async fn worker(grace_days: i64) -> Worker {
    Worker { pool: service_pool().await, past_due_grace: time::Duration::days(grace_days) }
}

fn state(workspace_id: Uuid, status: &'static str, lookup_key: &'static str) -> SubscriptionState {
    let tag = workspace_id.simple().to_string();
    SubscriptionState {
        subscription: format!("sub_{tag}"),
        customer: format!("cus_{tag}"),
        workspace_id,
        status,
        lookup_key,
        period_end: now() + 2_592_000,
        cancel_at_period_end: false,
    }
}

fn evt(label: &str) -> String {
    format!("evt_{label}_{}", Uuid::new_v4().simple())
}

async fn subscription_row(workspace_id: Uuid) -> Value {
    let row: Option<Value> = sqlx::query_scalar(
        "SELECT json_build_object('subscription', stripe_subscription_id, 'plan', plan_id, 'status', status,
                                  'cancel_at_period_end', cancel_at_period_end, 'period_end', current_period_end,
                                  'grace', grace_until IS NOT NULL, 'effective', app.effective_plan(workspace_id))
         FROM subscriptions WHERE workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch_optional(&service_pool().await)
    .await
    .unwrap();
    row.unwrap_or(Value::Null)
}

async fn count_where(table: &str, workspace_id: Uuid) -> i64 {
    integration_tests::count(&service_pool().await, table, workspace_id).await
}

#[tokio::test]
async fn a_subscription_event_grants_the_plan_and_leaves_a_trail() {
    let app = TestApp::new().await;
    let owner = app.user("sub").await;
    let ws = app.workspace(&owner, "Sub").await;
    let worker = worker(7).await;
    let event = subscription_event(
        &evt("created"),
        "customer.subscription.created",
        now(),
        &state(ws, "active", "pro_monthly"),
    );
    assert_eq!(worker.apply(&event.to_string()).await.unwrap(), Outcome::Applied);
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["plan"].as_str(), billing.body["status"].as_str()), (Some("pro"), Some("active")));
    assert_eq!(count_where("audit_log", ws).await, 1);
    assert_eq!(count_where("activity", ws).await, 1);
    // The customer is linked to the workspace.
    let customer: Option<String> = sqlx::query_scalar("SELECT stripe_customer_id FROM workspaces WHERE id = $1")
        .bind(ws)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(customer, Some(format!("cus_{}", ws.simple())));
    // Limits follow: a fourth project is now allowed.
    for i in 0..4 {
        app.post(&owner, &format!("/v1/workspaces/{ws}/projects"), json!({"name": format!("P{i}")}))
            .await
            .expect(StatusCode::CREATED);
    }
}

#[tokio::test]
async fn a_duplicate_delivery_is_applied_once() {
    let app = TestApp::new().await;
    let owner = app.user("dup").await;
    let ws = app.workspace(&owner, "Dup").await;
    let worker = worker(7).await;
    let event =
        subscription_event(&evt("dup"), "customer.subscription.created", now(), &state(ws, "active", "pro_monthly"))
            .to_string();
    assert_eq!(worker.apply(&event).await.unwrap(), Outcome::Applied);
    assert_eq!(worker.apply(&event).await.unwrap(), Outcome::Duplicate);
    let (concurrent_a, concurrent_b) = tokio::join!(worker.apply(&event), worker.apply(&event));
    assert_eq!((concurrent_a.unwrap(), concurrent_b.unwrap()), (Outcome::Duplicate, Outcome::Duplicate));
    assert_eq!(count_where("audit_log", ws).await, 1);
}

/// A tiny deterministic generator, so a failing order can be replayed from its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

/// The lifecycle of one workspace's billing, as Stripe would send it.
fn lifecycle(ws: Uuid, t0: i64) -> Vec<String> {
    // Every field derives from t0, so rounds differ only in the order of delivery.
    let first = SubscriptionState { period_end: t0 + 2_592_000, ..state(ws, "incomplete", "pro_monthly") };
    let second = SubscriptionState {
        subscription: format!("sub2_{}", ws.simple()),
        lookup_key: "studio_monthly",
        ..first.clone()
    };
    let with = |s: &SubscriptionState, status: &'static str| SubscriptionState { status, ..s.clone() };
    vec![
        checkout_completed_event(&evt("checkout"), t0, ws, &first.customer, &first.subscription),
        subscription_event(&evt("created"), "customer.subscription.created", t0, &first),
        subscription_event(&evt("active"), "customer.subscription.updated", t0 + 1, &with(&first, "active")),
        invoice_event(&evt("paid"), "invoice.paid", t0 + 1, &first.customer, &first.subscription),
        invoice_event(&evt("failed"), "invoice.payment_failed", t0 + 100, &first.customer, &first.subscription),
        subscription_event(&evt("past_due"), "customer.subscription.updated", t0 + 100, &with(&first, "past_due")),
        subscription_event(&evt("recovered"), "customer.subscription.updated", t0 + 200, &with(&first, "active")),
        subscription_event(&evt("deleted"), "customer.subscription.deleted", t0 + 300, &with(&first, "canceled")),
        subscription_event(&evt("upgraded"), "customer.subscription.created", t0 + 400, &with(&second, "active")),
        subscription_event(
            &evt("cancelling"),
            "customer.subscription.updated",
            t0 + 500,
            &SubscriptionState { cancel_at_period_end: true, ..with(&second, "active") },
        ),
        json!({"id": evt("unknown"), "object": "event", "type": "radar.early_fraud_warning.created", "created": t0, "data": {"object": {}}}),
    ]
    .into_iter()
    .map(|event| event.to_string())
    .collect()
}

#[tokio::test]
async fn deliveries_with_duplicates_in_any_order_converge_on_the_same_state() {
    let app = TestApp::new().await;
    let worker = worker(7).await;
    let t0 = now() - 1000;
    // In order first: the reference.
    let owner = app.user("order").await;
    let reference_ws = app.workspace(&owner, "In order").await;
    for event in lifecycle(reference_ws, t0) {
        worker.apply(&event).await.unwrap();
    }
    let mut expected = subscription_row(reference_ws).await;
    assert_eq!(expected["status"], "active");
    assert_eq!(expected["plan"], "studio");
    assert_eq!(expected["cancel_at_period_end"], true);
    expected.as_object_mut().unwrap().remove("subscription");

    let mut rng = Lcg(0x5eed);
    for round in 0..12 {
        let ws = app.workspace(&owner, &format!("Shuffled {round}")).await;
        let mut events = lifecycle(ws, t0);
        // Duplicate a few deliveries, then shuffle (Fisher-Yates).
        for _ in 0..4 {
            let pick = events[rng.next(events.len())].clone();
            events.push(pick);
        }
        for i in (1..events.len()).rev() {
            events.swap(i, rng.next(i + 1));
        }
        for event in &events {
            worker.apply(event).await.unwrap();
        }
        let mut got = subscription_row(ws).await;
        got.as_object_mut().unwrap().remove("subscription");
        assert_eq!(got, expected, "round {round} diverged");
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE workspace_id = $1 OR id LIKE 'evt_unknown%'")
                .bind(ws)
                .fetch_one(&service_pool().await)
                .await
                .unwrap();
        assert!(applied >= 10, "round {round}: every distinct event is recorded once");
    }
}

#[tokio::test]
async fn past_due_keeps_the_plan_for_the_grace_period_only() {
    let app = TestApp::new().await;
    let owner = app.user("grace").await;
    let ws = app.workspace(&owner, "Grace").await;
    let with_grace = worker(7).await;
    with_grace
        .apply(
            &subscription_event(
                &evt("a"),
                "customer.subscription.created",
                now() - 50,
                &state(ws, "active", "pro_monthly"),
            )
            .to_string(),
        )
        .await
        .unwrap();
    with_grace
        .apply(
            &subscription_event(
                &evt("b"),
                "customer.subscription.updated",
                now() - 40,
                &state(ws, "past_due", "pro_monthly"),
            )
            .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(subscription_row(ws).await["effective"], "pro");
    // A later past_due event does not extend the grace period.
    let grace_before: time::OffsetDateTime =
        sqlx::query_scalar("SELECT grace_until FROM subscriptions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    with_grace
        .apply(
            &subscription_event(
                &evt("c"),
                "customer.subscription.updated",
                now() - 30,
                &state(ws, "past_due", "pro_monthly"),
            )
            .to_string(),
        )
        .await
        .unwrap();
    let grace_after: time::OffsetDateTime =
        sqlx::query_scalar("SELECT grace_until FROM subscriptions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert_eq!(grace_before, grace_after);

    let ws2 = app.workspace(&owner, "No grace").await;
    let no_grace = worker(0).await;
    no_grace
        .apply(
            &subscription_event(
                &evt("d"),
                "customer.subscription.updated",
                now() - 5,
                &state(ws2, "past_due", "pro_monthly"),
            )
            .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(subscription_row(ws2).await["effective"], "free");
}

#[tokio::test]
async fn unknown_events_unknown_workspaces_and_unknown_prices_are_recorded_and_acknowledged() {
    let app = TestApp::new().await;
    let owner = app.user("unknown").await;
    let ws = app.workspace(&owner, "Unknown").await;
    let worker = worker(7).await;
    let unknown_type =
        json!({"id": evt("x"), "type": "payout.paid", "created": now(), "data": {"object": {"id": "po_1"}}});
    assert_eq!(worker.apply(&unknown_type.to_string()).await.unwrap(), Outcome::Ignored);
    let orphan = state(Uuid::new_v4(), "active", "pro_monthly");
    let unlinked = subscription_event(&evt("orphan"), "customer.subscription.created", now(), &orphan);
    assert_eq!(worker.apply(&unlinked.to_string()).await.unwrap(), Outcome::Unlinked);
    let odd_price =
        subscription_event(&evt("odd"), "customer.subscription.created", now(), &state(ws, "active", "legacy_2019"));
    assert_eq!(worker.apply(&odd_price.to_string()).await.unwrap(), Outcome::UnknownPrice);
    assert_eq!(subscription_row(ws).await, Value::Null, "an unknown price grants nothing");
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM stripe_events WHERE id IN ($1, $2, $3) ORDER BY outcome")
            .bind(unknown_type["id"].as_str())
            .bind(unlinked["id"].as_str())
            .bind(odd_price["id"].as_str())
            .fetch_all(&service_pool().await)
            .await
            .unwrap();
    assert_eq!(outcomes, ["ignored", "unknown_price", "unlinked"]);
}

#[tokio::test]
async fn a_poison_message_fails_only_itself() {
    let app = TestApp::new().await;
    let owner = app.user("poison").await;
    let ws = app.workspace(&owner, "Poison").await;
    let worker = worker(7).await;
    let good =
        subscription_event(&evt("good"), "customer.subscription.created", now(), &state(ws, "active", "pro_monthly"));
    let bodies = [Some(good.to_string()), Some("{not json".to_owned()), Some(json!({"id": evt("shape"), "type": "customer.subscription.updated", "created": now(), "data": {"object": {"id": 5}}}).to_string()), None];
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("m{i}"));
            record.body = body.clone();
            record
        })
        .collect();
    let response = handle_batch(&worker, event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["m1", "m2", "m3"]);
    assert_eq!(subscription_row(ws).await["plan"], "pro", "the good message was applied");
}

#[tokio::test]
async fn a_deleted_customer_is_unlinked_from_its_workspace() {
    let app = TestApp::new().await;
    let owner = app.user("cusdel").await;
    let ws = app.workspace(&owner, "Customer deleted").await;
    let worker = worker(7).await;
    let s = state(ws, "active", "pro_monthly");
    worker
        .apply(&checkout_completed_event(&evt("co"), now(), ws, &s.customer, &s.subscription).to_string())
        .await
        .unwrap();
    let deleted = json!({"id": evt("cd"), "type": "customer.deleted", "created": now(), "data": {"object": {"id": s.customer, "object": "customer"}}});
    assert_eq!(worker.apply(&deleted.to_string()).await.unwrap(), Outcome::Applied);
    let customer: Option<String> = sqlx::query_scalar("SELECT stripe_customer_id FROM workspaces WHERE id = $1")
        .bind(ws)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(customer, None);
}

//! The billing worker: every event applied exactly once, as a signal to read the subscription's
//! current state from Stripe (a local Stripe here), so deliveries in any order, duplicates and
//! same-second ties converge on Stripe's state; Stripe unavailable means retried, never applied
//! from a stale snapshot; events that named no workspace yet are applied once it is linked.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::http::StatusCode;
use billing_worker::{Outcome, handle_batch};
use integration_tests::stripe::{SubscriptionState, checkout_completed_event, invoice_event, now, subscription_event};
use integration_tests::{TestApp, create_queue, local_aws, service_pool};
use serde_json::{Value, json};
use shared::queue::Queue;
use uuid::Uuid;

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
                                  'cancel_at_period_end', cancel_at_period_end,
                                  'period_end', extract(epoch FROM current_period_end)::bigint,
                                  'grace', grace_until IS NOT NULL, 'effective', app.effective_plan(workspace_id))
         FROM subscriptions WHERE workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch_optional(&service_pool().await)
    .await
    .unwrap();
    row.unwrap_or(Value::Null)
}

/// The audit entries the billing worker left in a workspace: (actor, action, request id).
async fn worker_trail(workspace_id: Uuid) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT actor, action, request_id FROM audit_log
         WHERE workspace_id = $1 AND actor NOT LIKE 'user:%' ORDER BY seq",
    )
    .bind(workspace_id)
    .fetch_all(&service_pool().await)
    .await
    .unwrap()
}

async fn subscription_reads(app: &TestApp) -> usize {
    let requests = app.stripe.received_requests().await.unwrap();
    requests.iter().filter(|r| r.method.as_str() == "GET" && r.url.path().starts_with("/v1/subscriptions/")).count()
}

#[tokio::test]
async fn a_subscription_event_grants_the_plan_and_leaves_a_trail() {
    let app = TestApp::new().await;
    let owner = app.user("sub").await;
    let ws = app.workspace(&owner, "Sub").await;
    let worker = app.billing_worker(7).await;
    let active = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&active);
    let event = subscription_event(&evt("created"), "customer.subscription.created", now(), &active);
    assert_eq!(worker.apply(&event.to_string()).await.unwrap(), Outcome::Applied);
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["plan"].as_str(), billing.body["status"].as_str()), (Some("pro"), Some("active")));
    // The next invoice: the period's end and the prices' amount, as Stripe's object says.
    assert_eq!(billing.body["payment"], "paid");
    assert_eq!(billing.body["next_invoice"]["amount"], 2900);
    assert_eq!(billing.body["next_invoice"]["currency"], "usd");
    assert_eq!(billing.body["next_invoice"]["at"], billing.body["current_period_end"]);
    // The subscription row's insert and the workspace's link to its Stripe customer (by the
    // triggers, as the worker, with the event id), and the worker's own account of the change.
    let event_id = event["id"].as_str().map(str::to_owned);
    assert_eq!(
        worker_trail(ws).await,
        [
            ("billing-worker".to_owned(), "subscriptions.insert".to_owned(), event_id.clone()),
            ("billing-worker".to_owned(), "workspaces.update".to_owned(), event_id.clone()),
            ("stripe".to_owned(), "subscription.changed".to_owned(), event_id),
        ]
    );
    let feed: Vec<String> = sqlx::query_scalar("SELECT verb FROM activity WHERE workspace_id = $1 ORDER BY id")
        .bind(ws)
        .fetch_all(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(feed, ["member.joined", "subscription.changed"]);
    // One read of the subscription, with the secret key and the pinned API version.
    let reads: Vec<_> = app.stripe.received_requests().await.unwrap();
    let read = reads.iter().find(|r| r.url.path() == format!("/v1/subscriptions/{}", active.subscription)).unwrap();
    assert_eq!(read.method.as_str(), "GET");
    assert_eq!(read.headers.get("authorization").unwrap(), "Bearer sk_test_integration");
    assert_eq!(read.headers.get("stripe-version").unwrap(), "2026-09-30.endive");
    assert_eq!(subscription_reads(&app).await, 1);
    // The customer is linked to the workspace.
    let customer: Option<String> = sqlx::query_scalar("SELECT stripe_customer_id FROM workspaces WHERE id = $1")
        .bind(ws)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(customer, Some(active.customer.clone()));
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
    let worker = app.billing_worker(7).await;
    let active = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&active);
    let event = subscription_event(&evt("dup"), "customer.subscription.created", now(), &active).to_string();
    assert_eq!(worker.apply(&event).await.unwrap(), Outcome::Applied);
    assert_eq!(worker.apply(&event).await.unwrap(), Outcome::Duplicate);
    let (concurrent_a, concurrent_b) = tokio::join!(worker.apply(&event), worker.apply(&event));
    assert_eq!((concurrent_a.unwrap(), concurrent_b.unwrap()), (Outcome::Duplicate, Outcome::Duplicate));
    assert_eq!(worker_trail(ws).await.len(), 3, "one change, audited once: {:?}", worker_trail(ws).await);
    assert_eq!(subscription_reads(&app).await, 1, "a duplicate does not read Stripe again");
}

/// The reproduction: `customer.subscription.created` (incomplete) and `.updated`
/// (active) share one `created` second; every delivery order and every order of their ids ends
/// on what Stripe holds: active, pro.
#[tokio::test]
async fn same_second_created_and_updated_converge_on_active_in_every_order() {
    let app = TestApp::new().await;
    let owner = app.user("tie").await;
    let worker = app.billing_worker(7).await;
    let second = now();
    for updated_first in [true, false] {
        for created_id_sorts_last in [true, false] {
            let ws = app.workspace(&owner, &format!("Tie {updated_first} {created_id_sorts_last}")).await;
            let active = state(ws, "active", "pro_monthly");
            app.stripe_account.put(&active);
            let tag = ws.simple();
            let (created_id, updated_id) = if created_id_sorts_last {
                (format!("evt_1ZZZ{tag}"), format!("evt_1AAA{tag}"))
            } else {
                (format!("evt_1AAA{tag}"), format!("evt_1ZZZ{tag}"))
            };
            let created = subscription_event(
                &created_id,
                "customer.subscription.created",
                second,
                &SubscriptionState { status: "incomplete", ..active.clone() },
            );
            let updated = subscription_event(&updated_id, "customer.subscription.updated", second, &active);
            let deliveries = if updated_first { [updated, created] } else { [created, updated] };
            for event in deliveries {
                assert_eq!(worker.apply(&event.to_string()).await.unwrap(), Outcome::Applied);
            }
            let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
            assert_eq!(
                (billing.body["plan"].as_str(), billing.body["status"].as_str()),
                (Some("pro"), Some("active")),
                "updated first: {updated_first}, created id sorts last: {created_id_sorts_last}"
            );
        }
    }
}

/// A tiny deterministic generator, so a failing order can be replayed from its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

/// One step of a workspace's billing life: Stripe's state changes, and Stripe sends events
/// (carrying snapshots of that moment) about it.
struct Step {
    state: SubscriptionState,
    events: Vec<String>,
}

/// The lifecycle of one workspace's billing, as Stripe lives it. Several steps share one second.
fn lifecycle(ws: Uuid, t0: i64) -> Vec<Step> {
    let first = SubscriptionState { period_end: t0 + 2_592_000, ..state(ws, "incomplete", "pro_monthly") };
    let second = SubscriptionState {
        subscription: format!("sub2_{}", ws.simple()),
        lookup_key: "studio_monthly",
        ..first.clone()
    };
    let with = |s: &SubscriptionState, status: &'static str| SubscriptionState { status, ..s.clone() };
    let sub_event = |label: &str, kind: &str, at: i64, s: &SubscriptionState| {
        subscription_event(&evt(label), kind, at, s).to_string()
    };
    let step = |state: SubscriptionState, events: Vec<String>| Step { state, events };
    vec![
        step(first.clone(), vec![sub_event("created", "customer.subscription.created", t0, &first)]),
        step(
            with(&first, "active"),
            vec![
                checkout_completed_event(&evt("checkout"), t0, ws, &first.customer, &first.subscription).to_string(),
                sub_event("active", "customer.subscription.updated", t0, &with(&first, "active")),
                invoice_event(&evt("paid"), "invoice.paid", t0, &first.customer, &first.subscription).to_string(),
            ],
        ),
        step(
            with(&first, "past_due"),
            vec![
                invoice_event(&evt("failed"), "invoice.payment_failed", t0 + 100, &first.customer, &first.subscription)
                    .to_string(),
                sub_event("past_due", "customer.subscription.updated", t0 + 100, &with(&first, "past_due")),
            ],
        ),
        step(
            with(&first, "active"),
            vec![sub_event("recovered", "customer.subscription.updated", t0 + 200, &with(&first, "active"))],
        ),
        step(
            with(&first, "canceled"),
            vec![sub_event("deleted", "customer.subscription.deleted", t0 + 300, &with(&first, "canceled"))],
        ),
        step(
            with(&second, "active"),
            vec![sub_event("upgraded", "customer.subscription.created", t0 + 300, &with(&second, "active"))],
        ),
        step(
            SubscriptionState { cancel_at_period_end: true, ..with(&second, "active") },
            vec![
                sub_event(
                    "cancelling",
                    "customer.subscription.updated",
                    t0 + 300,
                    &SubscriptionState { cancel_at_period_end: true, ..with(&second, "active") },
                ),
                json!({"id": evt("unknown"), "object": "event", "type": "radar.early_fraud_warning.created",
                       "created": t0, "data": {"object": {}}})
                .to_string(),
            ],
        ),
    ]
}

/// Several hundred deliveries for many workspaces: Stripe's state moves on while earlier events
/// are still in flight, 30% of deliveries are duplicated, everything is shuffled, and each
/// workspace still ends exactly on Stripe's final state.
#[tokio::test]
async fn a_shuffled_replay_of_hundreds_of_events_converges_on_stripes_final_state() {
    let app = TestApp::new().await;
    let owner = app.user("order").await;
    let worker = app.billing_worker(7).await;
    let t0 = now() - 1000;
    let mut rng = Lcg(0x5eed);
    let mut workspaces = Vec::new();
    let mut steps = Vec::new();
    for i in 0..30 {
        let ws = app.workspace(&owner, &format!("Shuffled {i}")).await;
        workspaces.push(ws);
        steps.push(lifecycle(ws, t0).into_iter());
    }
    let mut in_flight: Vec<String> = Vec::new();
    let mut delivered = 0;
    let mut distinct: Vec<String> = Vec::new();
    loop {
        // Either Stripe moves one workspace on (emitting its events), or one in-flight event is
        // delivered; until every workspace has lived its whole life.
        let pending: Vec<usize> = (0..steps.len()).filter(|i| steps[*i].len() > 0).collect();
        if pending.is_empty() {
            break;
        }
        if in_flight.is_empty() || rng.next(3) > 0 {
            let i = pending[rng.next(pending.len())];
            let step = steps[i].next().unwrap();
            // Created one second after the first subscription, as Stripe would.
            let created = if step.state.subscription.starts_with("sub2_") { t0 + 300 } else { t0 };
            app.stripe_account.put_created(&step.state, created);
            for event in step.events {
                distinct.push(serde_json::from_str::<Value>(&event).unwrap()["id"].as_str().unwrap().to_owned());
                if rng.next(10) < 3 {
                    in_flight.push(event.clone());
                }
                in_flight.push(event);
            }
        } else {
            let event = in_flight.swap_remove(rng.next(in_flight.len()));
            worker.apply(&event).await.unwrap();
            delivered += 1;
        }
    }
    while !in_flight.is_empty() {
        let event = in_flight.swap_remove(rng.next(in_flight.len()));
        worker.apply(&event).await.unwrap();
        delivered += 1;
    }
    assert!(delivered >= 300, "several hundred deliveries, got {delivered}");
    for ws in workspaces {
        let row = subscription_row(ws).await;
        let stripe = app.stripe_account.get(&format!("sub2_{}", ws.simple())).unwrap();
        let expected = json!({
            "subscription": stripe["id"], "plan": "studio", "status": stripe["status"],
            "cancel_at_period_end": stripe["cancel_at_period_end"],
            "period_end": stripe["items"]["data"][0]["current_period_end"],
            "grace": false, "effective": "studio",
        });
        assert_eq!(row, expected, "workspace {ws} diverged from Stripe");
        assert_eq!(expected["cancel_at_period_end"], true);
        // Every distinct event of this workspace is recorded exactly once, the unknown type too.
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE workspace_id = $1 AND outcome <> 'ignored'")
                .bind(ws)
                .fetch_one(&service_pool().await)
                .await
                .unwrap();
        assert_eq!(recorded, 10, "workspace {ws}: its 10 billing events, each recorded once");
    }
    let recorded_total: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id = ANY($1)")
        .bind(&distinct)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(recorded_total as usize, distinct.len(), "every event recorded once, duplicates nothing more");
}

#[tokio::test]
async fn stripe_unavailable_applies_nothing_and_the_message_is_retried_through_sqs() {
    let app = TestApp::new().await;
    let owner = app.user("down").await;
    let ws = app.workspace(&owner, "Stripe down").await;
    let worker = app.billing_worker(7).await;
    let active = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&active);
    app.stripe_account.set_unavailable(true);
    let event = subscription_event(&evt("down"), "customer.subscription.created", now(), &active).to_string();

    let queue_url = create_queue("billing-down", &[(QueueAttributeName::VisibilityTimeout, "1".into())]).await;
    let client = aws_sdk_sqs::Client::new(&local_aws().await);
    client.send_message().queue_url(&queue_url).message_body(&event).send().await.unwrap();
    let queue = Queue::new(client, &queue_url);
    let drained = queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
    assert_eq!((drained.received, drained.failed), (1, 1), "the message failed and stays on the queue");
    assert_eq!(subscription_row(ws).await, Value::Null, "nothing applied from the event's snapshot");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id = $1")
        .bind(serde_json::from_str::<Value>(&event).unwrap()["id"].as_str())
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(recorded, 0, "the event is not recorded as seen, so its retry applies it");
    assert!(subscription_reads(&app).await >= 1, "Stripe was asked");

    // In a batch, the first message that meets the outage hands the rest back unasked.
    let reads_before = subscription_reads(&app).await;
    let others: Vec<SubscriptionState> = (0..3)
        .map(|i| SubscriptionState { subscription: format!("sub_down{i}_{}", ws.simple()), ..active.clone() })
        .collect();
    let mut batch = SqsEvent::default();
    batch.records = others
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("down{i}"));
            record.body =
                Some(subscription_event(&evt("down_batch"), "customer.subscription.updated", now(), s).to_string());
            record
        })
        .collect();
    let response = handle_batch(&worker, batch).await;
    assert_eq!(response.batch_item_failures.len(), 3);
    let asked = subscription_reads(&app).await - reads_before;
    assert!((1..=3).contains(&asked), "only the first message's attempts reached Stripe, got {asked} reads");

    app.stripe_account.set_unavailable(false);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let mut applied = None;
    for _ in 0..5 {
        let drained = queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
        if drained.received > 0 {
            applied = Some(drained);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let drained = applied.expect("SQS redelivered the message");
    assert_eq!((drained.received, drained.failed), (1, 0));
    assert_eq!(subscription_row(ws).await["effective"], "pro", "the retry applied Stripe's state");
}

#[tokio::test]
async fn a_subscription_stripe_does_not_have_ends_the_stored_one() {
    let app = TestApp::new().await;
    let owner = app.user("missing").await;
    let ws = app.workspace(&owner, "Missing").await;
    let worker = app.billing_worker(7).await;
    let active = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&active);
    worker
        .apply(&subscription_event(&evt("a"), "customer.subscription.created", now(), &active).to_string())
        .await
        .unwrap();
    assert_eq!(subscription_row(ws).await["effective"], "pro");
    app.stripe_account.remove(&active.subscription);
    let outcome = worker
        .apply(&subscription_event(&evt("b"), "customer.subscription.updated", now(), &active).to_string())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(
        (subscription_row(ws).await["status"].as_str(), subscription_row(ws).await["effective"].as_str()),
        (Some("canceled"), Some("free"))
    );
    // A signal about a subscription Stripe never had changes nothing.
    let stranger = SubscriptionState { subscription: format!("sub_never_{}", ws.simple()), ..active.clone() };
    let outcome = worker
        .apply(&subscription_event(&evt("c"), "customer.subscription.updated", now(), &stranger).to_string())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Missing);
}

#[tokio::test]
async fn events_that_waited_for_their_customer_apply_once_it_is_linked() {
    let app = TestApp::new().await;
    let owner = app.user("waiting").await;
    let ws = app.workspace(&owner, "Waiting").await;
    let worker = app.billing_worker(7).await;
    // A subscription made outside our checkout: no workspace in its metadata, customer unknown.
    let active = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&active);
    app.stripe_account.update(&active.subscription, |object| object["metadata"] = json!({}));
    let mut created = subscription_event(&evt("early"), "customer.subscription.created", now() - 5, &active);
    created["data"]["object"]["metadata"] = json!({});
    let failed =
        invoice_event(&evt("early_fail"), "invoice.payment_failed", now() - 4, &active.customer, &active.subscription);
    assert_eq!(worker.apply(&created.to_string()).await.unwrap(), Outcome::Unlinked);
    assert_eq!(worker.apply(&failed.to_string()).await.unwrap(), Outcome::Unlinked);
    assert_eq!(subscription_row(ws).await, Value::Null);

    // Checkout completes for that customer (without naming the subscription): it links the
    // customer, and the two waiting events are applied in the same transaction.
    let mut checkout = checkout_completed_event(&evt("link"), now(), ws, &active.customer, &active.subscription);
    checkout["data"]["object"]["subscription"] = Value::Null;
    assert_eq!(worker.apply(&checkout.to_string()).await.unwrap(), Outcome::Applied);
    assert_eq!(subscription_row(ws).await["effective"], "pro");
    let outcomes: Vec<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT outcome, workspace_id FROM stripe_events WHERE id IN ($1, $2) ORDER BY created")
            .bind(created["id"].as_str())
            .bind(failed["id"].as_str())
            .fetch_all(&service_pool().await)
            .await
            .unwrap();
    assert_eq!(outcomes, [("applied".to_owned(), Some(ws)), ("applied".to_owned(), Some(ws))]);
    let failure_notes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM activity WHERE workspace_id = $1 AND message LIKE 'A payment failed%'",
    )
    .bind(ws)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!(failure_notes, 1, "the waiting invoice event was applied, once");
    // Applying another event later does not apply them again.
    worker
        .apply(&subscription_event(&evt("later"), "customer.subscription.updated", now(), &active).to_string())
        .await
        .unwrap();
    let failure_notes_after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM activity WHERE workspace_id = $1 AND message LIKE 'A payment failed%'",
    )
    .bind(ws)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!(failure_notes_after, 1);
}

#[tokio::test]
async fn past_due_keeps_the_plan_for_the_grace_period_only() {
    let app = TestApp::new().await;
    let owner = app.user("grace").await;
    let ws = app.workspace(&owner, "Grace").await;
    let with_grace = app.billing_worker(7).await;
    app.stripe_account.put(&state(ws, "past_due", "pro_monthly"));
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
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["payment"].as_str(), billing.body["status"].as_str()), (Some("failed"), Some("past_due")));
    assert!(billing.body["grace_until"].is_string() && billing.body["next_invoice"]["at"].is_string());
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
    let no_grace = app.billing_worker(0).await;
    app.stripe_account.put(&state(ws2, "past_due", "pro_monthly"));
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
    let worker = app.billing_worker(7).await;
    app.stripe_account.put(&state(ws, "active", "legacy_2019"));
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
    let worker = app.billing_worker(7).await;
    app.stripe_account.put(&state(ws, "active", "pro_monthly"));
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
    let worker = app.billing_worker(7).await;
    let s = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&s);
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

async fn requests(app: &TestApp, method: &str, path: &str) -> Vec<wiremock::Request> {
    let all = app.stripe.received_requests().await.unwrap();
    all.into_iter().filter(|r| r.method.as_str() == method && r.url.path() == path).collect()
}

fn second(ws: Uuid, lookup_key: &'static str) -> SubscriptionState {
    SubscriptionState { subscription: format!("sub_second_{}", ws.simple()), ..state(ws, "active", lookup_key) }
}

#[tokio::test]
async fn a_second_live_subscription_is_canceled_and_refunded_once() {
    let app = TestApp::new().await;
    let owner = app.user("double").await;
    let ws = app.workspace(&owner, "Double").await;
    let worker = app.billing_worker(7).await;
    let (first, second) = (state(ws, "active", "pro_monthly"), second(ws, "studio_monthly"));
    app.stripe_account.put_created(&first, now() - 120);
    app.stripe_account.put_created(&second, now() - 60);
    let first_event = subscription_event(&evt("first"), "customer.subscription.created", now() - 120, &first);
    assert_eq!(worker.apply(&first_event.to_string()).await.unwrap(), Outcome::Applied);
    let second_event = subscription_event(&evt("second"), "customer.subscription.created", now() - 60, &second);
    assert_eq!(worker.apply(&second_event.to_string()).await.unwrap(), Outcome::DuplicateCanceled);

    // Stripe was told exactly this, once: cancel the newer one now, refund what it charged.
    let canceled = requests(&app, "DELETE", &format!("/v1/subscriptions/{}", second.subscription)).await;
    assert_eq!(canceled.len(), 1);
    assert_eq!(
        canceled[0].headers.get("idempotency-key").unwrap(),
        format!("cancel-duplicate:{}", second.subscription).as_str()
    );
    let cancel_form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(&canceled[0].body).unwrap();
    assert_eq!((cancel_form["prorate"].as_str(), cancel_form["invoice_now"].as_str()), ("false", "false"));
    let refunds = requests(&app, "POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1);
    let refund_form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(&refunds[0].body).unwrap();
    assert_eq!(refund_form["payment_intent"], format!("pi_{}", second.subscription));
    assert_eq!(refund_form["reason"], "duplicate");
    assert_eq!(
        refunds[0].headers.get("idempotency-key").unwrap(),
        format!("refund-duplicate:{}", second.subscription).as_str()
    );
    assert_eq!(app.stripe_account.get(&second.subscription).unwrap()["status"], "canceled");

    // The workspace keeps the first subscription, and the trails say what happened.
    let row = subscription_row(ws).await;
    assert_eq!(
        (row["subscription"].as_str(), row["effective"].as_str()),
        (Some(first.subscription.as_str()), Some("pro"))
    );
    let audit: Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE workspace_id = $1 AND action = 'subscription.duplicate_canceled'",
    )
    .bind(ws)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!(
        (audit["kept"].as_str(), audit["canceled"].as_str()),
        (Some(first.subscription.as_str()), Some(second.subscription.as_str()))
    );
    assert_eq!(audit["refund"]["amount"], 2900);
    let note: String = sqlx::query_scalar(
        "SELECT message FROM activity WHERE workspace_id = $1 AND message LIKE 'A second subscription%'",
    )
    .bind(ws)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert!(note.contains("Studio") && note.contains("Pro") && note.contains("refunded"), "{note}");

    // Redelivery, and the cancellation's own event, change nothing and cancel nothing again.
    assert_eq!(worker.apply(&second_event.to_string()).await.unwrap(), Outcome::Duplicate);
    let deleted = subscription_event(
        &evt("second_deleted"),
        "customer.subscription.deleted",
        now(),
        &SubscriptionState { status: "canceled", ..second.clone() },
    );
    assert_eq!(worker.apply(&deleted.to_string()).await.unwrap(), Outcome::Stale);
    assert_eq!(requests(&app, "DELETE", &format!("/v1/subscriptions/{}", second.subscription)).await.len(), 1);
    assert_eq!(requests(&app, "POST", "/v1/refunds").await.len(), 1);
    assert_eq!(subscription_row(ws).await["effective"], "pro");
}

#[tokio::test]
async fn the_older_of_two_live_subscriptions_wins_whichever_event_comes_first() {
    let app = TestApp::new().await;
    let owner = app.user("double-late").await;
    let ws = app.workspace(&owner, "Double, newer first").await;
    let worker = app.billing_worker(7).await;
    let (first, second) = (state(ws, "active", "pro_monthly"), second(ws, "studio_monthly"));
    app.stripe_account.put_created(&first, now() - 120);
    app.stripe_account.put_created(&second, now() - 60);
    // The newer subscription's event arrives first and is stored; then the older one's.
    worker
        .apply(&subscription_event(&evt("newer"), "customer.subscription.created", now(), &second).to_string())
        .await
        .unwrap();
    assert_eq!(subscription_row(ws).await["plan"], "studio");
    let older = subscription_event(&evt("older"), "customer.subscription.created", now(), &first);
    assert_eq!(worker.apply(&older.to_string()).await.unwrap(), Outcome::Applied);
    let row = subscription_row(ws).await;
    assert_eq!((row["subscription"].as_str(), row["plan"].as_str()), (Some(first.subscription.as_str()), Some("pro")));
    assert_eq!(requests(&app, "DELETE", &format!("/v1/subscriptions/{}", second.subscription)).await.len(), 1);
    assert!(requests(&app, "DELETE", &format!("/v1/subscriptions/{}", first.subscription)).await.is_empty());
}

#[tokio::test]
async fn a_new_subscription_after_a_cancellation_whose_event_is_late_is_no_duplicate() {
    let app = TestApp::new().await;
    let owner = app.user("resubscribe").await;
    let ws = app.workspace(&owner, "Resubscribed").await;
    let worker = app.billing_worker(7).await;
    let (first, second) = (state(ws, "active", "pro_monthly"), second(ws, "studio_monthly"));
    app.stripe_account.put_created(&first, now() - 120);
    worker
        .apply(&subscription_event(&evt("first"), "customer.subscription.created", now(), &first).to_string())
        .await
        .unwrap();
    // Stripe canceled the first (its event is late), then the customer subscribed again.
    app.stripe_account.put(&SubscriptionState { status: "canceled", ..first.clone() });
    app.stripe_account.put_created(&second, now() - 10);
    let outcome = worker
        .apply(&subscription_event(&evt("second"), "customer.subscription.created", now(), &second).to_string())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(subscription_row(ws).await["plan"], "studio");
    assert!(requests(&app, "DELETE", &format!("/v1/subscriptions/{}", second.subscription)).await.is_empty());
    assert!(requests(&app, "POST", "/v1/refunds").await.is_empty());
}

#[tokio::test]
async fn deleting_a_workspace_cancels_its_stripe_subscription_once() {
    let app = TestApp::new().await;
    let owner = app.user("deleting").await;
    let ws = app.workspace(&owner, "Deleted").await;
    let free_ws = app.workspace(&owner, "Deleted, never paid").await;
    let worker = app.billing_worker(7).await;
    let paid = state(ws, "active", "pro_monthly");
    app.stripe_account.put(&paid);
    worker
        .apply(&subscription_event(&evt("paid"), "customer.subscription.created", now(), &paid).to_string())
        .await
        .unwrap();

    // Stripe is down at first: the cancellation waits, and is retried.
    app.stripe_account.set_unavailable(true);
    for id in [ws, free_ws] {
        app.delete(&owner, &format!("/v1/workspaces/{id}")).await.expect(StatusCode::NO_CONTENT);
    }
    let first = worker.send_pending_cancellations().await.unwrap();
    assert!(first.canceled.is_empty());
    assert_eq!(first.failed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), [paid.subscription.as_str()]);
    assert_eq!(app.stripe_account.get(&paid.subscription).unwrap()["status"], "active", "Stripe still charges");

    app.stripe_account.set_unavailable(false);
    let second = worker.send_pending_cancellations().await.unwrap();
    assert_eq!(second.canceled, vec![paid.subscription.clone()], "only the paying workspace had something to cancel");
    assert_eq!(app.stripe_account.get(&paid.subscription).unwrap()["status"], "canceled");
    let sent = requests(&app, "DELETE", &format!("/v1/subscriptions/{}", paid.subscription)).await;
    assert_eq!(sent.len(), 4, "three attempts while Stripe was down (the same key each time), one that went through");
    assert!(sent.iter().all(|r| r.headers.get("idempotency-key").unwrap()
        == format!("cancel-deleted-workspace:{}", paid.subscription).as_str()));
    let (attempts, canceled): (i32, bool) = sqlx::query_as(
        "SELECT attempts, canceled_at IS NOT NULL FROM subscription_cancellations WHERE stripe_subscription_id = $1",
    )
    .bind(&paid.subscription)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!((attempts, canceled), (2, true));

    // Nothing is sent twice.
    let third = worker.send_pending_cancellations().await.unwrap();
    assert!(third.canceled.is_empty() && third.failed.is_empty());
    assert_eq!(requests(&app, "DELETE", &format!("/v1/subscriptions/{}", paid.subscription)).await.len(), 4);
}

/// A failed payment mails the workspace's owners and admins (not members), once per invoice:
/// Stripe's retries of the same invoice (new events) write no second mail.
#[tokio::test]
async fn a_failed_payment_mails_owners_and_admins_once_per_invoice() {
    let app = TestApp::new().await;
    let t = app.tenant("payment-failed").await;
    let worker = app.billing_worker(7).await;
    let active = SubscriptionState {
        subscription: format!("sub_{}", Uuid::new_v4().simple()),
        customer: format!("cus_{}", Uuid::new_v4().simple()),
        ..state(t.id, "active", "studio_monthly")
    };
    sqlx::query("UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1")
        .bind(t.id)
        .bind(&active.customer)
        .execute(&integration_tests::owner_pool().await)
        .await
        .unwrap();
    app.stripe_account.put(&active);
    let failed = |label: &str| {
        let mut event =
            invoice_event(&evt(label), "invoice.payment_failed", now(), &active.customer, &active.subscription);
        event["data"]["object"]["id"] = json!("in_one_invoice");
        event["data"]["object"]["amount_due"] = json!(4900);
        event["data"]["object"]["currency"] = json!("usd");
        event.to_string()
    };
    assert_eq!(worker.apply(&failed("first")).await.unwrap(), Outcome::Applied);
    assert_eq!(worker.apply(&failed("retry")).await.unwrap(), Outcome::Applied);
    let mut mailed: Vec<(String, String)> = sqlx::query_as(
        "SELECT to_address, template FROM emails WHERE workspace_id = $1 AND template = 'payment_failed'",
    )
    .bind(t.id)
    .fetch_all(&service_pool().await)
    .await
    .unwrap();
    mailed.sort();
    let mut expected = vec![
        (t.admin.email.clone(), "payment_failed".to_owned()),
        (t.owner.email.clone(), "payment_failed".to_owned()),
    ];
    expected.sort();
    assert_eq!(mailed, expected);
}

//! Metered usage: each successful run is reported to Stripe as one Billing Meter Event, exactly
//! once, through the usage queue (moto) and the usage worker; failed runs bill nothing; the
//! sweeper recovers usage whose enqueue failed and runs whose function died.

use aws_sdk_sqs::Client as SqsClient;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use integration_tests::stripe::{SECRET_KEY, form_of, meter_events_server};
use integration_tests::{Tenant, TestApp, create_queue, local_aws, service_pool};
use serde_json::{Value, json};
use shared::queue::Queue;
use tower::ServiceExt;
use usage_worker::{Outcome, UsageWorker, handle_batch};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn worker(stripe: &MockServer) -> UsageWorker {
    integration_tests::worker(
        "app_usage",
        &[("STRIPE_SECRET_KEY", SECRET_KEY.into()), ("STRIPE_API_BASE", stripe.uri())],
    )
    .await
}

async fn meter_events_for(stripe: &MockServer, record: Uuid) -> Vec<wiremock::Request> {
    stripe
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.url.path() == "/v1/billing/meter_events" && form_of(r).get("identifier") == Some(&record.to_string())
        })
        .collect()
}

async fn record_of(workspace_id: Uuid) -> (Uuid, Option<time::OffsetDateTime>, time::OffsetDateTime) {
    sqlx::query_as("SELECT id, reported_at, occurred_at FROM usage_records WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(&service_pool().await)
        .await
        .expect("one usage record")
}

async fn customer_of(workspace_id: Uuid) -> String {
    sqlx::query_scalar("SELECT stripe_customer_id FROM workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap()
}

async fn run_once(app: &TestApp, t: &Tenant) {
    let body = json!({"tool": "proposal_draft", "input": {"brief": "Landing page"}});
    app.post(&t.member, &format!("{}/ai/runs", t.path()), body).await.expect(StatusCode::CREATED);
}

#[tokio::test]
async fn a_usage_record_is_reported_once_as_a_meter_event() {
    let app = TestApp::new().await;
    let t = app.tenant("meter").await;
    run_once(&app, &t).await;
    let (record, _, occurred_at) = record_of(t.id).await;
    let stripe = meter_events_server().await;
    let worker = worker(&stripe).await;
    assert_eq!(worker.report(&record.to_string()).await.unwrap(), Outcome::Reported);
    let sent = meter_events_for(&stripe, record).await;
    assert_eq!(sent.len(), 1);
    let form = form_of(&sent[0]);
    assert_eq!(form["event_name"], "ai_tool_runs");
    assert_eq!(form["payload[stripe_customer_id]"], customer_of(t.id).await);
    assert_eq!(form["payload[value]"], "1");
    assert_eq!(form["timestamp"], occurred_at.unix_timestamp().to_string(), "the run's timestamp");
    assert_eq!(sent[0].headers.get("idempotency-key").unwrap(), format!("meter-event:{record}").as_str());
    assert!(record_of(t.id).await.1.is_some(), "marked reported");

    // A retry, and two concurrent deliveries, send nothing more.
    assert_eq!(worker.report(&record.to_string()).await.unwrap(), Outcome::AlreadyReported);
    let id = record.to_string();
    let (a, b) = tokio::join!(worker.report(&id), worker.report(&id));
    assert_eq!((a.unwrap(), b.unwrap()), (Outcome::AlreadyReported, Outcome::AlreadyReported));
    assert_eq!(meter_events_for(&stripe, record).await.len(), 1);
}

#[tokio::test]
async fn concurrent_first_deliveries_still_bill_once() {
    let app = TestApp::new().await;
    let t = app.tenant("meter-race").await;
    run_once(&app, &t).await;
    let (record, ..) = record_of(t.id).await;
    let stripe = meter_events_server().await;
    let worker = worker(&stripe).await;
    let id = record.to_string();
    let results = futures::future::join_all((0..5).map(|_| worker.report(&id))).await;
    let reported = results.iter().filter(|r| matches!(r, Ok(Outcome::Reported))).count();
    assert_eq!(reported, 1, "{results:?}");
    assert_eq!(meter_events_for(&stripe, record).await.len(), 1);
}

#[tokio::test]
async fn a_redelivered_message_sends_no_second_meter_event() {
    let queue_url = create_queue("usage", &[]).await;
    let queue = Queue::new(SqsClient::new(&local_aws().await), &queue_url);
    let app = TestApp::new().await;
    let t = app.tenant("redeliver").await;
    run_once(&app, &t).await;
    let (record, ..) = record_of(t.id).await;
    for _ in 0..3 {
        queue.send(&record.to_string(), &[]).await.unwrap();
    }
    let stripe = meter_events_server().await;
    let worker = worker(&stripe).await;
    let mut received = 0;
    for _ in 0..4 {
        received += queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap().received;
    }
    assert_eq!(received, 3);
    assert_eq!(meter_events_for(&stripe, record).await.len(), 1);
}

#[tokio::test]
async fn usage_without_a_customer_is_kept_and_reported_once_one_exists() {
    let queue_url = create_queue("usage", &[]).await;
    let queue = Queue::new(SqsClient::new(&local_aws().await), &queue_url);
    let app = TestApp::new().await;
    let t = app.tenant("no-customer").await;
    let customer = customer_of(t.id).await;
    let pool = service_pool().await;
    sqlx::query("UPDATE workspaces SET stripe_customer_id = NULL WHERE id = $1")
        .bind(t.id)
        .execute(&pool)
        .await
        .unwrap();
    run_once(&app, &t).await;
    let (record, ..) = record_of(t.id).await;
    let stripe = meter_events_server().await;
    let worker = worker(&stripe).await;
    assert_eq!(worker.report(&record.to_string()).await.unwrap(), Outcome::NoCustomer);
    assert!(meter_events_for(&stripe, record).await.is_empty());
    let sweeper: ai_sweeper::Sweeper =
        integration_tests::worker("app_sweeper", &[("USAGE_QUEUE_URL", queue.url().to_owned())]).await;
    sqlx::query("UPDATE usage_records SET created_at = now() - interval '5 minutes' WHERE id = $1")
        .bind(record)
        .execute(&pool)
        .await
        .unwrap();
    sweeper.sweep().await.unwrap();
    let first = queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
    assert!(meter_events_for(&stripe, record).await.is_empty(), "still no customer: nothing sent ({first:?})");
    // The customer appears (a checkout); the next sweep sends the record, and it is billed once.
    sqlx::query("UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1")
        .bind(t.id)
        .bind(&customer)
        .execute(&pool)
        .await
        .unwrap();
    let resent = sweeper.sweep().await.unwrap();
    assert_eq!(resent.usage_resent, 1, "{resent:?}");
    // Drained until it is reported (a busy machine's local queue can take a few polls), then
    // once more: billed exactly once.
    for _ in 0..10 {
        queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
        if record_of(t.id).await.1.is_some() {
            break;
        }
    }
    queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
    assert_eq!(meter_events_for(&stripe, record).await.len(), 1);
    assert!(record_of(t.id).await.1.is_some());
}

#[tokio::test]
async fn usage_whose_enqueue_failed_is_recovered_by_the_sweeper() {
    let good_url = create_queue("usage", &[]).await;
    let sqs = SqsClient::new(&local_aws().await);
    let broken_url = good_url.replace("/usage-", "/missing-");
    let app = TestApp::new().await;
    let t = app.tenant("outbox").await;
    let settings = integration_tests::settings(&[
        ("AI_PROVIDER_API_KEY", integration_tests::ai::API_KEY.into()),
        ("AI_PROVIDER_BASE_URL", app.provider.uri()),
        ("AI_MODEL", "claude-test".into()),
        ("AI_MAX_TOKENS", "100".into()),
        ("AI_TIME_BUDGET_MS", "3000".into()),
        ("USAGE_QUEUE_URL", broken_url),
    ]);
    let ai = ai_runs::AiState::with_app(app.state.clone(), &settings).await.unwrap();
    let ai_app = shared::runtime::app::<ai_runs::Function>(ai);
    let response = ai_app
        .oneshot(
            Request::post(format!("{}/ai/runs", t.path()))
                .header("authorization", format!("Bearer {}", t.member.token))
                .header("content-type", "application/json")
                .body(Body::from(json!({"tool": "proposal_draft", "input": {"brief": "x"}}).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "the run succeeds even though its usage could not be queued");
    let (record, reported, _) = record_of(t.id).await;
    assert!(reported.is_none());
    let enqueued: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT enqueued_at FROM usage_records WHERE id = $1")
            .bind(record)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert!(enqueued.is_none(), "the failed enqueue is not marked as sent");

    sqlx::query("UPDATE usage_records SET created_at = now() - interval '5 minutes' WHERE id = $1")
        .bind(record)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let queue = Queue::new(sqs, &good_url);
    let sweeper: ai_sweeper::Sweeper =
        integration_tests::worker("app_sweeper", &[("USAGE_QUEUE_URL", queue.url().to_owned())]).await;
    assert!(sweeper.sweep().await.unwrap().usage_resent >= 1);
    let stripe = meter_events_server().await;
    let worker = worker(&stripe).await;
    for _ in 0..3 {
        queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
    }
    assert_eq!(meter_events_for(&stripe, record).await.len(), 1);
    // A later sweep finds nothing left to send for it.
    sweeper.sweep().await.unwrap();
    for _ in 0..2 {
        queue.drain_once(1, |batch| handle_batch(&worker, batch)).await.unwrap();
    }
    assert_eq!(meter_events_for(&stripe, record).await.len(), 1);
}

#[tokio::test]
async fn a_failed_run_leaves_nothing_to_bill() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&provider)
        .await;
    let mut settings = integration_tests::base_settings();
    settings.push(("AI_PROVIDER_BASE_URL".into(), provider.uri()));
    let app = TestApp::with_settings(settings).await;
    let t = app.tenant("failed-bill").await;
    let response = app
        .post(&t.member, &format!("{}/ai/runs", t.path()), json!({"tool": "proposal_draft", "input": {"brief": "x"}}))
        .await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(integration_tests::count(&service_pool().await, "usage_records", t.id).await, 0);
}

#[tokio::test]
async fn abandoned_pending_runs_are_failed_and_their_quota_released() {
    let app = TestApp::new().await;
    let t = app.tenant("abandoned").await;
    let pool = service_pool().await;
    let period = time::OffsetDateTime::now_utc().date().replace_day(1).unwrap();
    let (old, fresh) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, age) in [(old, "10 minutes"), (fresh, "5 seconds")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO ai_runs (id, workspace_id, tool, input, status, request_hash, quota_period, created_at)
             VALUES ($1, $2, 'proposal_draft', '{{}}', 'pending', 'h', $3, now() - interval '{age}')"
        )))
        .bind(id)
        .bind(t.id)
        .bind(period)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, $2, 2)")
        .bind(t.id)
        .bind(period)
        .execute(&pool)
        .await
        .unwrap();
    let queue = Queue::new(SqsClient::new(&local_aws().await), create_queue("usage", &[]).await);
    let sweeper = ai_sweeper::Sweeper {
        pool: integration_tests::worker_pool("app_sweeper").await,
        usage_queue: queue,
        stuck_after_secs: 120,
        resend_after_secs: 900,
    };
    assert!(sweeper.sweep().await.unwrap().abandoned_runs >= 1);
    let statuses: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM ai_runs WHERE workspace_id = $1 AND id IN ($2, $3) ORDER BY id")
            .bind(t.id)
            .bind(old)
            .bind(fresh)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(statuses, vec![(old, "failed".to_owned()), (fresh, "pending".to_owned())]);
    let reserved: i32 = sqlx::query_scalar("SELECT reserved FROM ai_quota_usage WHERE workspace_id = $1")
        .bind(t.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reserved, 1, "the abandoned run's reservation is released");
    let _: Value = json!(null);
}

//! Every file in `events/` is a valid event for the function it names, parsed exactly as that
//! function's runtime parses it, and succeeds against the seeded demo workspace.

use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::http::StatusCode;
use integration_tests::stripe::{SubscriptionState, now};
use integration_tests::{TestApp, base_settings, create_queue, local_aws, owner_pool, service_pool, worker};
use tower::ServiceExt;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn events() -> Vec<(String, String)> {
    let dir = events_dir();
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The usage record `events/usage-worker-sqs.json` names, and a run the sweeper must fail.
const SAMPLE_USAGE_RECORD: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000a1a1");
/// A deleted workspace's subscription waiting to be canceled (Stripe no longer has it: done).
const PENDING_CANCELLATION: &str = "sub_of_a_deleted_workspace";
const ABANDONED_RUN: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000a1a2");
/// The activity entry `events/activity-fanout-sqs.json` names.
const SAMPLE_ACTIVITY: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000ac01");
/// The webhook delivery `events/webhook-dispatcher-sqs.json` names.
const SAMPLE_DELIVERY: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000d1d1");
/// The outbox mail `events/email-worker-sqs.json` names.
const SAMPLE_EMAIL: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000e1e1");

/// The ready file `events/projects-files-download.json` names, and the object of a deleted one
/// that `events/files-worker-sweep.json` deletes.
const SAMPLE_FILE: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000f11e");
const DELETED_FILE: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000f00d");

/// The export `events/export-worker-sqs.json` names.
const SAMPLE_EXPORT: Uuid = uuid::uuid!("01935c00-0000-7000-8000-00000000e0e0");

/// Gives each scheduled and queued sample event something to do: a succeeded run whose usage
/// record was never reported, a run abandoned while pending, and a demo subscription that
/// drifted from the local Stripe's.
async fn arrange_scheduled_work(app: &TestApp) {
    let owner = owner_pool().await;
    sqlx::query(
        "INSERT INTO emails (id, workspace_id, to_address, template, params)
         VALUES ($1, $2, 'invitee@demo.test', 'team_invitation',
                 '{\"workspace\": \"Demo\", \"role\": \"member\", \"token\": \"inv_sample\"}')",
    )
    .bind(SAMPLE_EMAIL)
    .bind(local_stack::demo::WORKSPACE_ID)
    .execute(&owner)
    .await
    .unwrap();
    let demo = local_stack::demo::WORKSPACE_ID;
    sqlx::query(
        "INSERT INTO files (id, workspace_id, project_id, deliverable_id, name, content_type, size_bytes,
                                        state, upload_expires_at, confirmed_at)
         VALUES ($1, $2, $3, $4, 'Style guide v2.pdf', 'application/pdf', 4, 'ready', now(), now()),
                ($5, $2, $3, $4, 'Old draft.pdf', 'application/pdf', 4, 'ready', now(), now())",
    )
    .bind(SAMPLE_FILE)
    .bind(demo)
    .bind(local_stack::demo::PROJECT_ID)
    .bind(local_stack::demo::DELIVERABLE_ID)
    .bind(DELETED_FILE)
    .execute(&owner)
    .await
    .unwrap();
    integration_tests::files::bucket().await;
    integration_tests::files::put_object(
        &shared::files::object_key(demo, DELETED_FILE),
        b"%PDF".to_vec(),
        "application/pdf",
    )
    .await;
    sqlx::query("DELETE FROM files WHERE id = $1").bind(DELETED_FILE).execute(&owner).await.unwrap();
    sqlx::query("INSERT INTO workspace_exports (id, workspace_id) VALUES ($1, $2)")
        .bind(SAMPLE_EXPORT)
        .bind(demo)
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO activity (id, workspace_id, kind, message, verb) VALUES ($1, $2, 'comment', 'A sample.', 'comment.added')",
    )
    .bind(SAMPLE_ACTIVITY)
    .bind(demo)
    .execute(&owner)
    .await
    .unwrap();
    let succeeded = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ai_runs (id, workspace_id, tool, input, status, request_hash, quota_period, created_at, finished_at)
         VALUES ($1, $3, 'proposal_draft', '{}', 'succeeded', 'h1', date_trunc('month', now())::date,
                 now() - interval '10 minutes', now() - interval '10 minutes'),
                ($2, $3, 'proposal_draft', '{}', 'pending', 'h2', date_trunc('month', now())::date,
                 now() - interval '1 hour', NULL)",
    )
    .bind(succeeded)
    .bind(ABANDONED_RUN)
    .bind(demo)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, date_trunc('month', now())::date, 2)
         ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = ai_quota_usage.reserved + 2",
    )
    .bind(demo)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO usage_records (id, workspace_id, run_id, quantity, occurred_at, created_at)
         VALUES ($1, $2, $3, 1, now() - interval '10 minutes', now() - interval '10 minutes')",
    )
    .bind(SAMPLE_USAGE_RECORD)
    .bind(demo)
    .bind(succeeded)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscription_cancellations (stripe_subscription_id, workspace_id, stripe_customer_id, reason)
         VALUES ($1, gen_random_uuid(), 'cus_gone', 'workspace deleted')",
    )
    .bind(PENDING_CANCELLATION)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query("UPDATE subscriptions SET plan_id = 'pro', cancel_at_period_end = true WHERE workspace_id = $1")
        .bind(demo)
        .execute(&owner)
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"object": "billing.meter_event"})))
        .mount(&app.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"object": "list", "data": [], "has_more": false})),
        )
        .mount(&app.stripe)
        .await;
}

async fn requests_to(server: &wiremock::MockServer, to: &str) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == to).collect()
}

#[tokio::test]
async fn every_sample_event_is_served_by_its_function() {
    let mut settings = base_settings();
    settings.push(("AUTH_HS256_SECRET".into(), local_stack::DEV_HS256_SECRET.into()));
    settings.push(("BILLING_REDIRECT_ORIGINS".into(), "http://127.0.0.1:3000".into()));
    let auth_settings = settings.clone();
    let app = TestApp::with_settings(settings).await;
    local_stack::demo::seed(&app.state.pool, &service_pool().await).await.expect("seed the demo workspace");
    // Stripe holds the demo workspace's subscription as the seed records it.
    app.stripe_account.put(&SubscriptionState {
        subscription: "sub_demo".into(),
        customer: "cus_demo".into(),
        workspace_id: local_stack::demo::WORKSPACE_ID,
        status: "active",
        lookup_key: "studio_monthly",
        period_end: now() + 2_592_000,
        cancel_at_period_end: false,
    });

    arrange_scheduled_work(&app).await;

    let mut served = Vec::new();
    for (name, text) in events() {
        let function = name.split('-').next().unwrap();
        match function {
            "workspaces" | "projects" | "checkout" | "portal" | "ai" if !name.starts_with("ai-sweeper") => {
                let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                let response = app.send(request.map(|body| Body::from(body.to_vec()))).await;
                if name == "checkout-create" {
                    // The demo workspace already subscribes; checkout sends it to the portal.
                    assert_eq!(response.problem(StatusCode::CONFLICT), "subscription_exists");
                } else if name == "portal-subscription-change" {
                    // A change is confirmed with a fresh preview's token, which no file can hold.
                    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
                    assert_eq!(response.body["errors"][0]["field"], "preview_token", "{name}");
                } else if name == "workspaces-me-delete" {
                    // The demo owner is the last owner of a workspace with members: refused.
                    assert_eq!(response.problem(StatusCode::CONFLICT), "last_owner");
                } else {
                    assert!(response.status.is_success(), "{name}: {} {}", response.status, response.body);
                }
                assert_eq!(response.headers.get("x-request-id").unwrap(), format!("evt-{name}").as_str(), "{name}");
            }
            "stripe" => {
                let queue_url = create_queue("events-webhook", &[]).await;
                // Signed now, as `local-stack sign-stripe-event` signs it for `cargo lambda
                // invoke`, and checked with the deployed tolerance (300 s).
                let webhook = integration_tests::stripe_webhook(local_stack::DEV_WEBHOOK_SECRET, &queue_url, &[]).await;
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let stale =
                    local_stack::events::sign_stripe_event(&text, local_stack::DEV_WEBHOOK_SECRET, now - 301).unwrap();
                let stale =
                    lambda_http::request::from_str(&stale.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
                let response = webhook.clone().oneshot(stale.map(|body| Body::from(body.to_vec()))).await.unwrap();
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}: signed 301 s ago is too old");
                let signed =
                    local_stack::events::sign_stripe_event(&text, local_stack::DEV_WEBHOOK_SECRET, now).unwrap();
                let request = lambda_http::request::from_str(&signed.to_string()).unwrap();
                let response = webhook.oneshot(request.map(|body| Body::from(body.to_vec()))).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{name}");
            }
            "billing" if name.starts_with("billing-worker") => {
                let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                let worker = app.billing_worker(7).await;
                let response = billing_worker::handle_batch(&worker, event).await;
                assert!(response.batch_item_failures.is_empty(), "{name}");
                let outcome: String =
                    sqlx::query_scalar("SELECT outcome FROM stripe_events WHERE id = 'evt_demo_subscription_updated'")
                        .fetch_one(&service_pool().await)
                        .await
                        .unwrap();
                assert_eq!(outcome, "applied", "{name}");
            }
            "usage" => {
                let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                let worker: usage_worker::UsageWorker = worker(
                    "app_usage",
                    &[("STRIPE_SECRET_KEY", "sk_test_unused".into()), ("STRIPE_API_BASE", app.stripe.uri())],
                )
                .await;
                let response = usage_worker::handle_batch(&worker, event).await;
                assert!(response.batch_item_failures.is_empty(), "{name}");
                // The record the event names (seeded above) was reported as one meter event.
                let sent = requests_to(&app.stripe, "/v1/billing/meter_events").await;
                assert_eq!(sent.len(), 1, "{name}");
                let form: std::collections::HashMap<String, String> =
                    serde_urlencoded::from_bytes(&sent[0].body).unwrap();
                assert_eq!(form["identifier"], SAMPLE_USAGE_RECORD.to_string(), "{name}");
                assert_eq!(form["payload[stripe_customer_id]"], "cus_demo", "{name}");
                assert_eq!(form["payload[value]"], "1", "{name}");
                let reported: bool =
                    sqlx::query_scalar("SELECT reported_at IS NOT NULL FROM usage_records WHERE id = $1")
                        .bind(SAMPLE_USAGE_RECORD)
                        .fetch_one(&service_pool().await)
                        .await
                        .unwrap();
                assert!(reported, "{name}");
            }
            "ai" if name == "ai-sweeper-schedule" => {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
                let usage_queue_url = create_queue("events-usage", &[]).await;
                let client = aws_sdk_sqs::Client::new(&local_aws().await);
                let sweeper: ai_sweeper::Sweeper =
                    worker("app_sweeper", &[("USAGE_QUEUE_URL", usage_queue_url.clone())]).await;
                let report = shared::runtime::handle_event(&sweeper, event).await.unwrap();
                assert_eq!(report, serde_json::json!({"abandoned_runs": 1, "usage_resent": 1}), "{name}");
                let status: String = sqlx::query_scalar("SELECT status FROM ai_runs WHERE id = $1")
                    .bind(ABANDONED_RUN)
                    .fetch_one(&service_pool().await)
                    .await
                    .unwrap();
                assert_eq!(status, "failed", "{name}");
                let sent = client.receive_message().queue_url(&usage_queue_url).send().await.unwrap();
                assert_eq!(sent.messages()[0].body(), Some(SAMPLE_USAGE_RECORD.to_string().as_str()), "{name}");
            }
            "billing" if name == "billing-reconcile-outbox" => {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let mut settings = app.billing_settings(7);
                settings.push(("STRIPE_EVENTS_QUEUE_URL", create_queue("events-billing", &[]).await));
                let reconciler: billing_reconcile::Reconciler = worker("app_billing", &settings).await;
                let report = shared::runtime::handle_event(&reconciler, event).await.unwrap();
                // Only the cancellation arranged above is sent; no reconciliation runs.
                assert_eq!(
                    report["cancellations"]["canceled"],
                    serde_json::json!([PENDING_CANCELLATION]),
                    "{name}: {report}"
                );
                assert_eq!(report["seat_syncs_queued"], 0, "{name}: {report}");
                assert!(report.get("reconciliation").is_none(), "{name}: {report}");
            }
            "billing" if name == "billing-reconcile-schedule" => {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
                let mut settings = app.billing_settings(7);
                settings.push(("STRIPE_EVENTS_QUEUE_URL", create_queue("events-billing", &[]).await));
                let reconciler: billing_reconcile::Reconciler = worker("app_billing", &settings).await;
                let answer = shared::runtime::handle_event(&reconciler, event).await.unwrap();
                let report = &answer["reconciliation"];
                // The drift injected above is found and repaired.
                assert_eq!(report["drift"][0]["workspace_id"], local_stack::demo::WORKSPACE_ID.to_string(), "{name}");
                let fields: Vec<&str> = report["drift"][0]["differences"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|d| d["field"].as_str())
                    .collect();
                assert!(fields.contains(&"plan") && fields.contains(&"cancel_at_period_end"), "{name}: {report}");
                let (plan, cancelling): (String, bool) =
                    sqlx::query_as("SELECT plan_id, cancel_at_period_end FROM subscriptions WHERE workspace_id = $1")
                        .bind(local_stack::demo::WORKSPACE_ID)
                        .fetch_one(&service_pool().await)
                        .await
                        .unwrap();
                assert_eq!((plan.as_str(), cancelling), ("studio", false), "{name}");
            }
            "email" => {
                let config = integration_tests::local_aws().await;
                let ses = aws_sdk_sesv2::Client::new(&config);
                ses.create_email_identity().email_identity("no-reply@demo.test").send().await.unwrap();
                let queue_url = create_queue("events-email", &[]).await;
                let mailer: email_worker::Mailer = worker(
                    "app_mailer",
                    &[
                        ("EMAIL_FROM", "no-reply@demo.test".into()),
                        ("APP_BASE_URL", "http://127.0.0.1:3000".into()),
                        ("EMAIL_QUEUE_URL", queue_url),
                    ],
                )
                .await;
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let answer = shared::runtime::handle_event(&mailer, event).await.unwrap();
                if name == "email-worker-sqs" {
                    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{name}: {answer}");
                    let sent: bool = sqlx::query_scalar("SELECT sent_at IS NOT NULL FROM emails WHERE id = $1")
                        .bind(SAMPLE_EMAIL)
                        .fetch_one(&service_pool().await)
                        .await
                        .unwrap();
                    assert!(sent, "{name}");
                } else {
                    assert!(answer["enqueued"].as_u64().is_some(), "{name}: {answer}");
                }
            }
            "export" => {
                let queue_url = create_queue("events-exports", &[]).await;
                let bucket = integration_tests::create_bucket("events-exports").await;
                let exporter = integration_tests::exporter(&bucket, Some(&queue_url)).await;
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let answer = shared::runtime::handle_event(&exporter, event).await.unwrap();
                if name == "export-worker-sqs" {
                    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{name}: {answer}");
                    let status: String = sqlx::query_scalar("SELECT status FROM workspace_exports WHERE id = $1")
                        .bind(SAMPLE_EXPORT)
                        .fetch_one(&service_pool().await)
                        .await
                        .unwrap();
                    assert_eq!(status, "succeeded", "{name}");
                } else {
                    assert!(answer["enqueued"].as_u64().is_some(), "{name}: {answer}");
                }
            }
            "files" => {
                let worker = integration_tests::files::worker().await;
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let answer = shared::runtime::handle_event(&worker, event).await.unwrap();
                assert!(answer["objects_deleted"].as_u64().is_some_and(|n| n >= 1), "{name}: {answer}");
                let key = shared::files::object_key(local_stack::demo::WORKSPACE_ID, DELETED_FILE);
                assert_eq!(
                    integration_tests::files::object(&key).await,
                    None,
                    "{name}: the deleted file's object is gone"
                );
            }
            "admin" => {
                let mut admin_settings = auth_settings.clone();
                admin_settings.push(("ADMIN_SUBJECTS".into(), "demo-operator".into()));
                let state = integration_tests::admin_state(admin_settings)
                    .await
                    .with_stripe(integration_tests::stripe::reader(&app.stripe.uri()));
                let router = shared::runtime::app::<admin::Function>(state);
                let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                let response = router.oneshot(request.map(|body| Body::from(body.to_vec()))).await.unwrap();
                // The demo subscription is active, not in a trial: refused before Stripe.
                let expected = if name == "admin-workspaces-trial" { StatusCode::CONFLICT } else { StatusCode::OK };
                assert_eq!(response.status(), expected, "{name}");
            }
            "realtime" => {
                use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
                let parse = |text: &str| -> ApiGatewayWebsocketProxyRequest {
                    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"))
                };
                let connect = parse(&std::fs::read_to_string(events_dir().join("realtime-connect.json")).unwrap());
                let connection = connect.request_context.connection_id.clone().unwrap();
                let realtime =
                    realtime::Realtime::with_app(app.state.clone(), local_stack::realtime::LocalSockets::default());
                let service = service_pool().await;
                sqlx::query("DELETE FROM realtime_connections WHERE id = $1")
                    .bind(&connection)
                    .execute(&service)
                    .await
                    .unwrap();
                if name != "realtime-connect" {
                    assert_eq!(realtime::handle(&realtime, connect).await.status_code, 200, "{name}");
                }
                let answer = realtime::handle(&realtime, parse(&text)).await;
                assert_eq!(answer.status_code, 200, "{name}");
                let (connections, subscriptions): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM realtime_connections WHERE id = $1),
                            (SELECT count(*) FROM realtime_subscriptions WHERE connection_id = $1)",
                )
                .bind(&connection)
                .fetch_one(&service)
                .await
                .unwrap();
                let expected = match name.as_str() {
                    "realtime-connect" => (1, 0),
                    "realtime-subscribe" => (1, 1),
                    _ => (0, 0),
                };
                assert_eq!((connections, subscriptions), expected, "{name}");
            }
            "activity" => {
                let settings = integration_tests::worker_settings(
                    "app_fanout",
                    &[
                        ("ACTIVITY_QUEUE_URL", create_queue("events-activity", &[]).await),
                        ("FANOUT_SWEEP_SECONDS", "1".into()),
                        ("FANOUT_POLL_MS", "50".into()),
                    ],
                );
                let fanout = activity_fanout::Fanout::build(&settings, local_stack::realtime::LocalSockets::default())
                    .await
                    .unwrap();
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let answer = shared::runtime::handle_event(&fanout, event).await.unwrap();
                if name == "activity-fanout-sqs" {
                    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{name}: {answer}");
                } else {
                    assert!(answer["queued"].as_u64().is_some(), "{name}: {answer}");
                }
            }
            "webhook" => {
                // The delivery the sample names, to an endpoint of the demo workspace at a local receiver.
                let receiver = wiremock::MockServer::start().await;
                wiremock::Mock::given(wiremock::matchers::method("POST"))
                    .respond_with(wiremock::ResponseTemplate::new(204))
                    .mount(&receiver)
                    .await;
                let owner = owner_pool().await;
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, workspace_id, url, events, secret)
                     VALUES ($1, $2, $3, '{project.created}', 'whsec_c2FtcGxlLXNlY3JldA==') ON CONFLICT (id) DO NOTHING",
                )
                .bind(SAMPLE_DELIVERY)
                .bind(local_stack::demo::WORKSPACE_ID)
                .bind(receiver.uri())
                .execute(&owner)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO webhook_events (id, workspace_id, type, payload)
                     VALUES ($1, $2, 'webhook.test', '{\"type\": \"webhook.test\", \"data\": {}}') ON CONFLICT (id) DO NOTHING",
                )
                .bind(SAMPLE_DELIVERY)
                .bind(local_stack::demo::WORKSPACE_ID)
                .execute(&owner)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id) VALUES ($1, $2, $1, $1)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(SAMPLE_DELIVERY)
                .bind(local_stack::demo::WORKSPACE_ID)
                .execute(&owner)
                .await
                .unwrap();
                let dispatcher: webhook_dispatcher::Dispatcher = worker(
                    "app_webhooks",
                    &[
                        ("WEBHOOK_QUEUE_URL", create_queue("events-webhooks", &[]).await),
                        ("WEBHOOKS_ALLOW_LOOPBACK_HTTP", "true".into()),
                        ("WEBHOOK_DISABLE_AFTER_HOURS", "1".into()),
                    ],
                )
                .await;
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let answer = shared::runtime::handle_event(&dispatcher, event).await.unwrap();
                if name == "webhook-dispatcher-sqs" {
                    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{name}: {answer}");
                    let status: String = sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE id = $1")
                        .bind(SAMPLE_DELIVERY)
                        .fetch_one(&service_pool().await)
                        .await
                        .unwrap();
                    assert_eq!(status, "succeeded", "{name}");
                    assert_eq!(receiver.received_requests().await.unwrap().len(), 1, "{name}");
                } else {
                    assert!(answer["enqueued"].as_u64().is_some(), "{name}: {answer}");
                }
            }
            "authorizer" => {
                let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                // The last value of a setting wins, as in the app's own settings.
                let lookup = |name: &str| auth_settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                let config = shared::config::AuthConfig::from_lookup(&lookup).unwrap();
                let answer = authorizer::Authorizer::new(&config).decide(&event).await;
                assert!(answer.is_authorized, "{name}: {:?}", answer.context);
            }
            other => panic!("{name}: no function {other}"),
        }
        served.push(name);
    }
    assert!(served.len() >= 32, "only {served:?}");
}

//! Every file in `events/` is a valid event for the function it names, parsed exactly as that
//! function's runtime parses it, and succeeds against the seeded demo workspace.

use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::http::StatusCode;
use integration_tests::stripe::{SubscriptionState, now};
use integration_tests::{TestApp, base_settings, create_queue, local_aws, service_pool};
use secrecy::SecretString;
use shared::queue::Queue;
use tower::ServiceExt;

fn events() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
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

#[tokio::test]
async fn every_sample_event_is_served_by_its_function() {
    let mut settings = base_settings();
    settings.push(("AUTH_HS256_SECRET".into(), local_stack::DEV_HS256_SECRET.into()));
    settings.push(("BILLING_REDIRECT_ORIGINS".into(), "http://127.0.0.1:3000".into()));
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
                } else {
                    assert!(response.status.is_success(), "{name}: {} {}", response.status, response.body);
                }
                assert_eq!(response.headers.get("x-request-id").unwrap(), format!("evt-{name}").as_str(), "{name}");
            }
            "stripe" => {
                let queue_url = create_queue("events-webhook", &[]).await;
                let config = stripe_webhook::WebhookConfig {
                    signing_secrets: vec![SecretString::from(local_stack::DEV_WEBHOOK_SECRET)],
                    // The file's signature is from when it was generated; only its correctness is checked here.
                    tolerance_secs: i64::MAX / 2,
                    queue_url: queue_url.clone(),
                    max_body_bytes: 512 * 1024,
                };
                let queue = Queue::new(aws_sdk_sqs::Client::new(&local_aws().await), &queue_url);
                let webhook = stripe_webhook::app(stripe_webhook::WebhookState::new(&config, queue), &config);
                let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
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
                let worker = usage_worker::UsageWorker {
                    pool: service_pool().await,
                    stripe: shared::stripe::StripeClient::new(
                        SecretString::from("sk_test_unused"),
                        Some(app.stripe.uri()),
                    ),
                    event_name: "ai_tool_runs".into(),
                };
                let response = usage_worker::handle_batch(&worker, event).await;
                assert!(response.batch_item_failures.is_empty(), "{name}");
            }
            "billing" | "ai" => {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
            }
            other => panic!("{name}: no function {other}"),
        }
        served.push(name);
    }
    assert!(served.len() >= 21, "only {served:?}");
}

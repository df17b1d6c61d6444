//! The CloudWatch metrics the functions write (Embedded Metric Format): each outcome the
//! dashboard and alarms read is recorded once, with its dimension, where it happens. Every test
//! here captures the metric lines instead of printing them (one process-wide sink, so this file
//! is a test binary of its own).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use integration_tests::stripe::{SubscriptionState, WEBHOOK_SECRET, now, sample_subscription_event, signature_header};
use integration_tests::{TestApp, create_queue};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

fn capture() {
    shared::metrics::capture();
}

/// How many captured lines record `name` with `dimension` = `value` (or any, for `None`).
fn recorded(name: &str, dimension: Option<(&str, &str)>) -> usize {
    shared::metrics::captured()
        .iter()
        .filter(|line| line.get(name).is_some())
        .filter(|line| dimension.is_none_or(|(key, value)| line[key] == value))
        .count()
}

#[tokio::test]
async fn the_webhook_counts_what_it_accepts_and_what_it_rejects() {
    capture();
    let queue_url = create_queue("metrics-webhook", &[]).await;
    let app =
        integration_tests::stripe_webhook(WEBHOOK_SECRET, &queue_url, &[("WEBHOOK_MAX_BODY_BYTES", "65536".into())])
            .await;
    let (accepted, rejected) = (
        recorded("StripeWebhook", Some(("result", "accepted"))),
        recorded("StripeWebhook", Some(("result", "rejected"))),
    );
    let payload = sample_subscription_event(Uuid::new_v4());
    for signature in [signature_header(WEBHOOK_SECRET, now(), &payload), "t=1,v1=00".to_owned()] {
        let request = Request::post("/v1/stripe/webhook")
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(Body::from(payload.clone()))
            .unwrap();
        app.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(recorded("StripeWebhook", Some(("result", "accepted"))), accepted + 1);
    assert_eq!(recorded("StripeWebhook", Some(("result", "rejected"))), rejected + 1);
    let line = shared::metrics::captured().into_iter().rev().find(|l| l.get("StripeWebhook").is_some()).unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Dimensions"], serde_json::json!([["function", "result"]]));
    assert_eq!(directive["Metrics"][0]["Unit"], "Count");
}

#[tokio::test]
async fn the_billing_worker_counts_each_outcome_and_its_queue_lag() {
    capture();
    let app = TestApp::new().await;
    let owner = app.user("metrics-billing").await;
    let ws = app.workspace(&owner, "Metrics").await;
    let worker = app.billing_worker(7).await;
    let payload = sample_subscription_event(ws);
    app.stripe_account.put(&SubscriptionState {
        subscription: serde_json::from_str::<Value>(&payload).unwrap()["data"]["object"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        customer: "cus_metrics".into(),
        workspace_id: ws,
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 1000,
        cancel_at_period_end: false,
    });
    let (applied, duplicate, lag) = (
        recorded("StripeEvents", Some(("outcome", "applied"))),
        recorded("StripeEvents", Some(("outcome", "duplicate"))),
        recorded("QueueLag", None),
    );
    let sent = (time::OffsetDateTime::now_utc() - Duration::from_millis(1500)).unix_timestamp_nanos() / 1_000_000;
    let message = |id: &str| {
        serde_json::json!({"messageId": id, "body": payload, "attributes": {"SentTimestamp": sent.to_string()},
                           "eventSource": "aws:sqs"})
    };
    let batch: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(serde_json::json!({"Records": [message("m1"), message("m2")]})).unwrap();
    let response = billing_worker::handle_batch(&worker, batch).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(recorded("StripeEvents", Some(("outcome", "applied"))), applied + 1);
    assert_eq!(recorded("StripeEvents", Some(("outcome", "duplicate"))), duplicate + 1);
    assert_eq!(recorded("QueueLag", None), lag + 2);
    let waited = shared::metrics::captured().into_iter().rev().find(|l| l.get("QueueLag").is_some()).unwrap();
    assert!(waited["QueueLag"].as_f64().unwrap() >= 1500.0, "{waited}");
    assert_eq!(waited["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds");
}

#[tokio::test]
async fn a_rate_limited_request_is_counted() {
    capture();
    let app = TestApp::new().await;
    let owner = app.user("metrics-limit").await;
    let ws = app.workspace(&owner, "Limited").await;
    // The free plan allows 300 requests a minute; the 301st is refused.
    let before = recorded("RateLimited", None);
    let path = format!("/v1/workspaces/{ws}/projects");
    let mut limited = 0;
    for _ in 0..310 {
        if app.get(&owner, &path).await.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited > 0);
    assert_eq!(recorded("RateLimited", None), before + limited);
}

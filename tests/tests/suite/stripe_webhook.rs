//! The stripe-webhook function over the real SQS wire protocol (moto): only correctly signed
//! events are enqueued, 200 only after the queue has them, 5xx when it cannot; and the whole
//! path webhook -> queue -> worker -> entitlements, with poison messages reaching the DLQ.

use aws_sdk_sqs::types::QueueAttributeName;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use billing_worker::handle_batch;
use http_body_util::BodyExt;
use integration_tests::stripe::{
    OLD_WEBHOOK_SECRET, SubscriptionState, WEBHOOK_SECRET, now, signature_header, subscription_event,
};
use integration_tests::{TestApp, create_queue, local_aws};
use serde_json::{Value, json};
use shared::queue::Queue;
use tower::ServiceExt;
use uuid::Uuid;

async fn webhook(queue_url: &str) -> Router {
    let secrets = format!("{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}");
    integration_tests::stripe_webhook(&secrets, queue_url, &[("WEBHOOK_MAX_BODY_BYTES", "65536".into())]).await
}

async fn post(app: &Router, payload: &str, signature: Option<String>) -> (StatusCode, Value) {
    let mut request = Request::post("/v1/stripe/webhook").header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    send(app, request.body(Body::from(payload.to_owned())).unwrap()).await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn queued(queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let client = aws_sdk_sqs::Client::new(&local_aws().await);
    let output = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    output.messages.unwrap_or_default()
}

fn sample_event() -> String {
    integration_tests::stripe::sample_subscription_event(Uuid::new_v4())
}

#[tokio::test]
async fn a_signed_event_is_enqueued_byte_for_byte_before_200() {
    let queue_url = create_queue("stripe-events", &[]).await;
    let app = webhook(&queue_url).await;
    let payload = sample_event();
    let (status, body) = post(&app, &payload, Some(signature_header(WEBHOOK_SECRET, now(), &payload))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"received": true})));
    let messages = queued(&queue_url).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some(payload.as_str()));
    let attributes = messages[0].message_attributes().unwrap();
    assert_eq!(attributes["event_type"].string_value(), Some("customer.subscription.created"));
}

#[tokio::test]
async fn every_bad_signature_is_a_400_and_enqueues_nothing() {
    let queue_url = create_queue("stripe-events", &[]).await;
    let app = webhook(&queue_url).await;
    let payload = sample_event();
    let t = now();
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("wrong secret", payload.clone(), Some(signature_header("whsec_attacker", t, &payload))),
        ("tampered body", payload.replace("active", "trialing"), Some(signature_header(WEBHOOK_SECRET, t, &payload))),
        ("stale timestamp", payload.clone(), Some(signature_header(WEBHOOK_SECRET, t - 301, &payload))),
        ("future timestamp", payload.clone(), Some(signature_header(WEBHOOK_SECRET, t + 301, &payload))),
        ("missing header", payload.clone(), None),
        ("malformed header", payload.clone(), Some("sha256=abc".into())),
        ("no v1", payload.clone(), Some(format!("t={t},v0=abc"))),
        // A stranger's load: the smallest timestamp (it overflowed a subtraction), and 900
        // signatures over a large body (one HMAC each, 20 s to refuse).
        ("t = i64::MIN", payload.clone(), Some(format!("t=-9223372036854775808,v1={}", "0".repeat(64)))),
        ("900 signatures", "x".repeat(15_000), Some(format!("t={t}{}", format!(",v1={}", "a".repeat(64)).repeat(900)))),
    ];
    for (name, body, signature) in cases {
        let (status, problem) = post(&app, &body, signature).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(problem["code"], "invalid_signature", "{name}");
    }
    // Several v1 signatures, one valid; and the previous secret during rotation.
    let several = format!(
        "{},v1={}",
        signature_header("whsec_other", t, &payload),
        stripe_webhook::signature::sign(WEBHOOK_SECRET, t, payload.as_bytes())
    );
    assert_eq!(post(&app, &payload, Some(several)).await.0, StatusCode::OK);
    assert_eq!(post(&app, &payload, Some(signature_header(OLD_WEBHOOK_SECRET, t, &payload))).await.0, StatusCode::OK);
    assert_eq!(queued(&queue_url).await.len(), 2, "only the two valid deliveries were enqueued");
}

#[tokio::test]
async fn oversized_and_non_event_bodies_are_refused() {
    let queue_url = create_queue("stripe-events", &[]).await;
    let app = webhook(&queue_url).await;
    let big = json!({"id": "evt_big", "type": "x", "pad": "a".repeat(70_000)}).to_string();
    let (status, problem) = post(&app, &big, Some(signature_header(WEBHOOK_SECRET, now(), &big))).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let not_event = r#"{"hello": "world"}"#;
    let (status, problem) = post(&app, not_event, Some(signature_header(WEBHOOK_SECRET, now(), not_event))).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_event")));
    assert!(queued(&queue_url).await.is_empty());
}

#[tokio::test]
async fn when_the_queue_is_unavailable_stripe_gets_a_5xx_to_retry() {
    let existing = create_queue("stripe-events", &[]).await;
    let missing = existing.replace("stripe-events-", "deleted-queue-");
    let app = webhook(&missing).await;
    let payload = sample_event();
    let (status, problem) = post(&app, &payload, Some(signature_header(WEBHOOK_SECRET, now(), &payload))).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("service_unavailable")));
}

#[tokio::test]
async fn a_base64_encoded_function_url_event_is_verified_over_the_decoded_bytes() {
    let queue_url = create_queue("stripe-events", &[]).await;
    let app = webhook(&queue_url).await;
    let payload = sample_event();
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json; charset=utf-8", "stripe-signature": signature_header(WEBHOOK_SECRET, now(), &payload),
                    "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
        "requestContext": {"accountId": "anonymous", "apiId": "fnurl", "domainName": "fnurl.lambda-url.us-east-1.on.aws",
                           "domainPrefix": "fnurl", "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                           "sourceIp": "3.18.12.63", "userAgent": "Stripe/1.0"}, "requestId": "fnurl-req-1",
                           "routeKey": "$default", "stage": "$default", "time": "22/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_348_800_000_i64},
        "body": base64::engine::general_purpose::STANDARD.encode(&payload),
        "isBase64Encoded": true
    });
    let request = lambda_http::request::from_str(&event.to_string()).unwrap().map(|b| Body::from(b.to_vec()));
    assert_eq!(send(&app, request).await.0, StatusCode::OK);
    assert_eq!(queued(&queue_url).await[0].body(), Some(payload.as_str()));
}

#[tokio::test]
async fn webhook_to_queue_to_worker_changes_entitlements_and_poison_reaches_the_dlq() {
    let dlq_url = create_queue("stripe-events-dlq", &[]).await;
    let client = aws_sdk_sqs::Client::new(&local_aws().await);
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string();
    let queue_url = create_queue(
        "stripe-events",
        &[(QueueAttributeName::RedrivePolicy, redrive), (QueueAttributeName::VisibilityTimeout, "1".into())],
    )
    .await;
    let app_http = TestApp::new().await;
    let owner = app_http.user("e2e").await;
    let ws = app_http.workspace(&owner, "End to end").await;
    let webhook = webhook(&queue_url).await;

    let subscription = SubscriptionState {
        subscription: format!("sub_{}", ws.simple()),
        customer: format!("cus_{}", ws.simple()),
        workspace_id: ws,
        status: "active",
        lookup_key: "studio_monthly",
        period_end: now() + 2_592_000,
        cancel_at_period_end: false,
    };
    app_http.stripe_account.put(&subscription);
    let good = subscription_event("evt_e2e_good", "customer.subscription.created", now(), &subscription)
        .to_string()
        .replace("evt_e2e_good", &format!("evt_good_{}", ws.simple()));
    // Signed by Stripe but unusable: a subscription event whose object has no subscription.
    let poison = json!({"id": format!("evt_poison_{}", ws.simple()), "type": "customer.subscription.updated", "created": now(), "data": {"object": {"id": 42}}}).to_string();
    for payload in [&good, &poison] {
        let (status, _) = post(&webhook, payload, Some(signature_header(WEBHOOK_SECRET, now(), payload))).await;
        assert_eq!(status, StatusCode::OK);
    }

    let worker = app_http.billing_worker(7).await;
    let queue = Queue::new(client.clone(), &queue_url);
    let mut failures = 0;
    for _ in 0..8 {
        let drained = queue.drain_once(1, |event| handle_batch(&worker, event)).await.unwrap();
        failures += drained.failed;
        if drained.received == 0 && failures >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let billing = app_http.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!(billing.body["plan"], "studio", "the good event reached the worker through SQS");
    assert_eq!(failures, 2, "the poison message failed on each of its two receives, and only it");
    let dead = queued(&dlq_url).await;
    assert_eq!(dead.len(), 1, "the poison message is in the dead-letter queue");
    assert_eq!(dead[0].body(), Some(poison.as_str()));
    assert!(queued(&queue_url).await.is_empty());
}

//! The `stripe-webhook` function, behind a Lambda Function URL: verifies `Stripe-Signature` over
//! the raw body, enqueues the event on the stripe-events queue, and answers 200 only once the
//! queue has it. Anything else is 5xx, so Stripe retries; nothing is applied here.

pub mod signature;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::config::{ConfigError, Settings, parse_or};
use shared::http::extract::RawBody;
use shared::openapi::OpenApiRouter;
use shared::queue::Queue;

pub use signature::{SignatureError, Verifier};
use utoipa::ToSchema;
use utoipa_axum::routes;

pub const FUNCTION: &str = "stripe-webhook";

/// Webhook settings; see docs/configuration.md.
pub struct WebhookConfig {
    /// Endpoint signing secrets: the current one, plus the previous one while rolling it.
    pub signing_secrets: Vec<SecretString>,
    pub tolerance_secs: i64,
    pub queue_url: String,
    pub max_body_bytes: usize,
}

impl WebhookConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let lookup = |name: &str| settings.get(name);
        let signing_secrets: Vec<SecretString> = settings
            .require("STRIPE_WEBHOOK_SECRETS")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect();
        if signing_secrets.is_empty() {
            return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRETS"));
        }
        Ok(Self {
            signing_secrets,
            tolerance_secs: parse_or(&lookup, "STRIPE_WEBHOOK_TOLERANCE_SECS", 300)?,
            queue_url: settings.require("STRIPE_EVENTS_QUEUE_URL")?,
            max_body_bytes: parse_or(&lookup, "WEBHOOK_MAX_BODY_BYTES", 512 * 1024)?,
        })
    }
}

#[derive(Clone)]
pub struct WebhookState(Arc<Inner>);

struct Inner {
    verifier: Verifier,
    queue: Queue,
    max_body_bytes: usize,
}

impl WebhookState {
    pub fn new(config: &WebhookConfig, queue: Queue) -> Self {
        Self(Arc::new(Inner {
            verifier: Verifier::new(config.signing_secrets.clone(), config.tolerance_secs),
            queue,
            max_body_bytes: config.max_body_bytes,
        }))
    }
}

/// The webhook verifies and enqueues: no database, Stripe or AI credential belongs in its
/// secrets (refused at start-up).
impl shared::runtime::FromSettings for WebhookState {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        settings.refuse_in_secrets(&[
            "SERVICE_DATABASE_URL",
            "DATABASE_URL",
            "STRIPE_SECRET_KEY",
            "AI_PROVIDER_API_KEY",
        ])?;
        let config = WebhookConfig::from_settings(settings)?;
        let queue = Queue::connect(config.queue_url.clone()).await;
        Ok(Self::new(&config, queue))
    }
}

/// The webhook answers at the Function URL's root and, for the local stack, under `/v1`.
pub fn router() -> OpenApiRouter<WebhookState> {
    OpenApiRouter::new().routes(routes!(receive_at_root)).routes(routes!(receive))
}

shared::http_function!(WebhookState, |state| {
    let max_body_bytes = state.0.max_body_bytes;
    shared::http::finish_with(router(), state, FUNCTION, max_body_bytes)
});

/// The few fields the webhook reads; the rest of the event is the worker's business.
#[derive(Deserialize)]
struct EventHeader {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, ToSchema)]
struct Received {
    received: bool,
}

/// `receive`, at the Function URL's root (where Stripe is pointed on AWS).
#[utoipa::path(post, path = "/", operation_id = "stripe_webhook_root", tag = "stripe", security(()),
    params(("Stripe-Signature" = String, Header)), request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Received), (status = 400), (status = 413), (status = 503)))]
async fn receive_at_root(
    state: State<WebhookState>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<Received>, ApiError> {
    receive(state, headers, body).await
}

/// Stripe's webhook: verifies `Stripe-Signature` over the raw body and queues the event; 200
/// only once the queue has it (anything else makes Stripe retry).
#[utoipa::path(post, path = "/v1/stripe/webhook", operation_id = "stripe_webhook", tag = "stripe", security(()),
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature of the raw body.")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, as Stripe sends it."),
    responses((status = 200, body = Received), (status = 400), (status = 413), (status = 503)))]
async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Received>, ApiError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    if let Err(error) = state.0.verifier.verify(&body, signature, now) {
        tracing::warn!(%error, "webhook signature rejected");
        shared::metrics::count("StripeWebhook", Some(("result", "rejected")));
        return Err(ApiError::BadRequest {
            code: "invalid_signature",
            detail: format!("Signature verification failed: {error}."),
        });
    }
    // Verified bytes from Stripe; anything but a JSON event with an id and a type is refused.
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest { code: "invalid_event", detail: "The event is not UTF-8 JSON.".into() })?;
    let event: EventHeader = serde_json::from_str(text).map_err(|_| {
        shared::metrics::count("StripeWebhook", Some(("result", "malformed")));
        ApiError::BadRequest { code: "invalid_event", detail: "The event lacks an id or a type.".into() }
    })?;
    let message_id =
        state.0.queue.send(text, &[("event_id", &event.id), ("event_type", &event.kind)]).await.map_err(|error| {
            tracing::error!(%error, event_id = %event.id, "could not enqueue the event");
            ApiError::ServiceUnavailable("The event could not be queued; Stripe will retry.".into())
        })?;
    tracing::info!(event_id = %event.id, event_type = %event.kind, %message_id, "event enqueued");
    shared::metrics::count("StripeWebhook", Some(("result", "accepted")));
    Ok(Json(Received { received: true }))
}

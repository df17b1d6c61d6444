//! Stripe, through async-stripe: the client every Stripe-calling function builds once, and how
//! its requests are sent. Each function builds its requests with async-stripe's typed builders
//! from the request crates and features it needs (checkout: sessions, customers, prices; portal:
//! portal sessions; usage worker: meter events; billing worker: subscriptions, invoices, refunds,
//! events), so a function links only those.
//!
//! Answers are read as JSON, not as async-stripe's typed objects, which would reject a shape
//! their pinned API version does not know: a field Stripe adds or moves never breaks a call.
//! Every write carries an idempotency key derived from what it does, the same on every attempt,
//! so a retry (ours, or a redelivered message's) never creates a second object. async-stripe's
//! own retry strategies draw a random key per call, which cannot protect a retried message; so
//! writes are retried here, with the caller's key, and reads through its exponential backoff.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com/";
/// The API version of every request: the one async-stripe pins (the checkout test checks the
/// header); events are read tolerantly whatever version they were sent with.
pub const API_VERSION: &str = "2026-09-30.endive";
/// Per attempt: a function answering a person, or a worker retried through SQS, need not wait
/// longer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
/// Attempts per call, with exponential backoff between them.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused the request (4xx other than 409/429): our request or the account's setup
    /// is wrong; retrying the same request will not help.
    #[error("Stripe refused the request ({status}): {message}")]
    Refused { status: u16, code: Option<String>, message: String },
    /// Stripe could not be reached, timed out, or kept answering 409/429/5xx: retry later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected Stripe response: {0}")]
    Unexpected(String),
    /// The idempotency key was used before with other parameters: the caller sent its own
    /// `Idempotency-Key` again for a different request.
    #[error("Stripe refused an idempotency key reused with other parameters")]
    IdempotencyKeyReused,
}

impl StripeError {
    /// Stripe answered that it has no such object.
    pub fn is_missing(&self) -> bool {
        matches!(self, StripeError::Refused { status: 404, code, .. } if code.as_deref().is_none_or(|c| c == "resource_missing"))
    }
}

/// The Stripe client of one execution environment (cheap to clone).
#[derive(Clone)]
pub struct StripeClient {
    client: stripe::Client,
}

impl StripeClient {
    /// `api_base` replaces `https://api.stripe.com/` (the local Stripe in tests and development).
    pub fn new(secret_key: &SecretString, api_base: Option<&str>) -> Result<Self, StripeError> {
        let base = api_base.unwrap_or(DEFAULT_API_BASE);
        // async-stripe appends `v1/...` to the base as is.
        let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
        let client = stripe::ClientBuilder::new(secret_key.expose_secret())
            .url(base)
            .request_strategy(RequestStrategy::ExponentialBackoff(ATTEMPTS))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| StripeError::Unavailable(format!("cannot build the Stripe client: {e}")))?;
        Ok(Self { client })
    }

    /// A read, retried with backoff (reading twice changes nothing).
    pub async fn get(&self, request: impl StripeRequest) -> Result<Value, StripeError> {
        let raw: miniserde::json::Value = request.build().customize().send(&self.client).await.map_err(classify)?;
        json(raw)
    }

    /// A write, sent with `key` as its idempotency key on every attempt: retried after a
    /// connection failure, a timeout, 409, 429 or 5xx, never after a refusal.
    pub async fn post(&self, request: impl StripeRequest, key: &str) -> Result<Value, StripeError> {
        let key = IdempotencyKey::new(key).map_err(|e| StripeError::Unexpected(e.to_string()))?;
        let mut attempt = 0;
        loop {
            let sent: Result<miniserde::json::Value, stripe::StripeError> = request
                .build()
                .customize()
                .request_strategy(RequestStrategy::Idempotent(key.clone()))
                .send(&self.client)
                .await;
            match sent.map_err(classify) {
                Ok(raw) => return json(raw),
                Err(StripeError::Unavailable(reason)) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(attempt, %reason, "Stripe write failed; retrying with the same idempotency key");
                    tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt - 1))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn json(raw: miniserde::json::Value) -> Result<Value, StripeError> {
    serde_json::from_str(&miniserde::json::to_string(&raw)).map_err(|e| StripeError::Unexpected(e.to_string()))
}

/// Stripe's transient answers (409 is an idempotency conflict with a request still running, 424
/// an outside dependency) are worth retrying; other 4xx are refusals. An answer that is not
/// Stripe's JSON (async-stripe cannot read it, and keeps no status) comes from something in
/// front of Stripe failing, so it is treated as unavailability too.
fn classify(error: stripe::StripeError) -> StripeError {
    match error {
        stripe::StripeError::Stripe(error, 400) if error.type_.as_str() == "idempotency_error" => {
            StripeError::IdempotencyKeyReused
        }
        stripe::StripeError::Stripe(error, status) if !matches!(status, 409 | 424 | 429 | 500..) => {
            StripeError::Refused {
                status,
                code: error.code.as_ref().map(|c| c.as_str().to_owned()),
                message: error.message.clone().unwrap_or_else(|| format!("HTTP {status}")),
            }
        }
        other => StripeError::Unavailable(other.to_string()),
    }
}

/// An id field that Stripe sends either as a string or, when expanded, as an object with an id.
pub fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Object(object) => object.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The item that carries the plan: the first one whose price is not metered (usage-based prices
/// ride along on the same subscription).
pub fn plan_item(subscription: &Value) -> Option<&Value> {
    let items = subscription.pointer("/items/data")?.as_array()?;
    items.iter().find(|item| item.pointer("/price/recurring/usage_type").and_then(Value::as_str) != Some("metered"))
}

/// The first object of a list answer (`data[0]`).
pub fn first_of_list(list: Value) -> Result<Option<Value>, StripeError> {
    match list {
        Value::Object(mut object) => match object.remove("data") {
            Some(Value::Array(data)) => Ok(data.into_iter().next()),
            _ => Err(StripeError::Unexpected("a list without `data`".into())),
        },
        _ => Err(StripeError::Unexpected("a list that is not an object".into())),
    }
}

/// A Stripe timestamp (Unix seconds), or `None` for anything else.
pub fn timestamp(value: &Value) -> Option<time::OffsetDateTime> {
    value.as_i64().and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
}

/// An invoice's tax: newer API versions list the taxes (`total_taxes`), older ones had one `tax`
/// amount.
pub fn invoice_tax(invoice: &Value) -> i64 {
    match invoice["total_taxes"].as_array() {
        Some(taxes) => taxes.iter().filter_map(|t| t["amount"].as_i64()).sum(),
        None => invoice["tax"].as_i64().unwrap_or(0),
    }
}

/// A string field of an answer (`id`, `url`, ...).
pub fn text(object: &Value, field: &str) -> Result<String, StripeError> {
    object
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StripeError::Unexpected(format!("no `{field}` in Stripe's answer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_fields_are_read_tolerantly() {
        let list = json!({"object": "list", "data": [{"id": "price_1", "new_field": {"x": 1}}], "has_more": false});
        let first = first_of_list(list).unwrap().unwrap();
        assert_eq!(text(&first, "id").unwrap(), "price_1");
        assert!(text(&first, "url").is_err());
        assert_eq!(first_of_list(json!({"data": []})).unwrap(), None);
        assert!(first_of_list(json!([])).is_err());
    }
}

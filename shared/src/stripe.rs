//! A small Stripe API client for the writes checkout, portal and the usage worker make: prices
//! by lookup key, customers, Checkout Sessions, Customer Portal sessions and billing meter
//! events. Reads of billing state go through async-stripe (`billing_sync::stripe_state`); these
//! calls are to move there too, once its cost in binary size and cold start is measured per
//! function (BENCHMARKS.md).
//!
//! Every POST carries an `Idempotency-Key`, so retrying one (after a timeout, 429 or 5xx) can
//! never create a second object; GETs are retried freely.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// The API version requests are made with; the webhook and worker read events tolerantly.
pub const API_VERSION: &str = "2026-09-30.endive";
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused the request (4xx): our request or the account's setup is wrong.
    #[error("Stripe refused the request ({status}): {message}")]
    Refused { status: u16, code: Option<String>, message: String },
    /// Stripe could not be reached or kept failing (timeouts, 429, 5xx): retry later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected Stripe response: {0}")]
    Unexpected(String),
}

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret_key: SecretString,
}

/// Form parameters in Stripe's bracket notation (`line_items[0][price]`).
#[derive(Debug, Default, Clone)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.0).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    pub lookup_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    pub id: String,
    #[serde(default)]
    pub url: Option<String>,
    /// Unix seconds; Checkout Sessions expire (24 hours after creation by default).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    code: Option<String>,
}

impl StripeClient {
    pub fn new(secret_key: SecretString, base: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(8))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let base = base.unwrap_or_else(|| DEFAULT_API_BASE.to_owned()).trim_end_matches('/').to_owned();
        Self { http, base, secret_key }
    }

    /// The active price sold under a lookup key.
    pub async fn price_by_lookup_key(&self, lookup_key: &str) -> Result<Option<Price>, StripeError> {
        let query = Form::new().field("lookup_keys[]", lookup_key).field("active", "true").field("limit", "1");
        let list: List<Price> = self.get("/v1/prices", &query).await?;
        Ok(list.data.into_iter().next())
    }

    pub async fn create_customer(&self, form: Form, idempotency_key: &str) -> Result<Created, StripeError> {
        self.post("/v1/customers", &form, idempotency_key).await
    }

    pub async fn create_checkout_session(&self, form: Form, idempotency_key: &str) -> Result<Created, StripeError> {
        self.post("/v1/checkout/sessions", &form, idempotency_key).await
    }

    pub async fn create_portal_session(&self, form: Form, idempotency_key: &str) -> Result<Created, StripeError> {
        self.post("/v1/billing_portal/sessions", &form, idempotency_key).await
    }

    /// Reports usage to a Billing Meter (`POST /v1/billing/meter_events`).
    pub async fn create_meter_event(
        &self,
        form: Form,
        idempotency_key: &str,
    ) -> Result<serde_json::Value, StripeError> {
        self.post("/v1/billing/meter_events", &form, idempotency_key).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &Form) -> Result<T, StripeError> {
        let url = format!("{}{path}?{}", self.base, query.encode());
        self.send(|| self.http.get(&url)).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &Form,
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let url = format!("{}{path}", self.base);
        let body = form.encode();
        self.send(|| {
            self.http
                .post(&url)
                .header("Idempotency-Key", idempotency_key)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.clone())
        })
        .await
    }

    /// Sends with retries on connection errors, 429 and 5xx (exponential backoff; safe because
    /// GETs change nothing and POSTs carry an idempotency key).
    async fn send<T: DeserializeOwned>(&self, request: impl Fn() -> reqwest::RequestBuilder) -> Result<T, StripeError> {
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            }
            let response = request()
                .bearer_auth(self.secret_key.expose_secret())
                .header("Stripe-Version", API_VERSION)
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    last_error = error.to_string();
                    continue;
                }
            };
            let status = response.status();
            let text = response.text().await.map_err(|e| StripeError::Unavailable(e.to_string()))?;
            if status.is_success() {
                return serde_json::from_str(&text).map_err(|e| StripeError::Unexpected(e.to_string()));
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                last_error = format!("HTTP {status}");
                continue;
            }
            let detail = serde_json::from_str::<ErrorBody>(&text).ok().map(|b| b.error);
            return Err(StripeError::Refused {
                status: status.as_u16(),
                code: detail.as_ref().and_then(|d| d.code.clone()),
                message: detail.and_then(|d| d.message).unwrap_or_else(|| format!("HTTP {status}")),
            });
        }
        Err(StripeError::Unavailable(last_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_use_stripes_bracket_notation() {
        let form = Form::new().field("line_items[0][price]", "price_1").field("metadata[workspace_id]", "w 1");
        assert_eq!(form.encode(), "line_items%5B0%5D%5Bprice%5D=price_1&metadata%5Bworkspace_id%5D=w+1");
    }
}

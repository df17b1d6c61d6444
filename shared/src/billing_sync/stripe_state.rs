//! Stripe's current billing state, read through async-stripe: one subscription, every live
//! subscription, and the event log. Events are signals; these reads are the truth the worker
//! and reconciliation apply. One write lives here too: ending a duplicate subscription (cancel
//! it, refund what it charged), the only change the worker ever makes in Stripe.
//!
//! Requests are built by async-stripe's typed request builders, but responses are read as JSON
//! and handed to the same tolerant reader the webhook events go through (`event::Subscription`),
//! so a field Stripe adds or moves never turns into a dropped update.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::invoice::RetrieveInvoice;
use stripe_billing::subscription::{
    CancelSubscription, ListSubscription, RetrieveSubscription, UpdateSubscription,
    UpdateSubscriptionProrationBehavior, UpdateSubscriptionTrialEnd,
};
use stripe_core::event::ListEvent;
use stripe_core::refund::{CreateRefund, CreateRefundReason};

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com/";
/// Per-attempt limit; a worker retries through SQS, so an attempt need not wait long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per read (reads are safe to repeat), with async-stripe's exponential backoff.
const ATTEMPTS: u32 = 3;
const PAGE_SIZE: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum StripeReadError {
    /// Stripe could not be reached, timed out, or answered 429/5xx after every attempt, or
    /// refused our credentials: the caller retries later and applies nothing now.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// Stripe answered with something that is not the JSON object it documents.
    #[error("unexpected Stripe response: {0}")]
    Unexpected(String),
}

/// A reader of Stripe's billing state, built once per execution environment.
#[derive(Clone)]
pub struct StripeState {
    client: stripe::Client,
}

impl StripeState {
    /// `api_base` replaces `https://api.stripe.com/` (a local Stripe in tests and development).
    pub fn new(secret_key: &SecretString, api_base: Option<&str>) -> Result<Self, StripeReadError> {
        let base = api_base.unwrap_or(DEFAULT_API_BASE);
        // async-stripe appends `v1/...` to the base as is.
        let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
        let client = stripe::ClientBuilder::new(secret_key.expose_secret())
            .url(base)
            .request_strategy(RequestStrategy::ExponentialBackoff(ATTEMPTS))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| StripeReadError::Unavailable(format!("cannot build the Stripe client: {e}")))?;
        Ok(Self { client })
    }

    /// The subscription as Stripe holds it now (with its items and their prices), or `None`
    /// when Stripe has no such subscription.
    #[tracing::instrument(skip(self))]
    pub async fn subscription(&self, id: &str) -> Result<Option<Value>, StripeReadError> {
        match self.send(RetrieveSubscription::new(id)).await {
            Ok(object) => Ok(Some(object)),
            Err(StripeError::Stripe(error, 404))
                if error.code.as_ref().is_none_or(|c| c.as_str() == "resource_missing") =>
            {
                Ok(None)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Every subscription that is not canceled (Stripe's default list), following pagination.
    pub async fn live_subscriptions(&self) -> Result<Vec<Value>, StripeReadError> {
        self.every_page(|after| {
            let request = ListSubscription::new().limit(PAGE_SIZE);
            match after {
                Some(after) => request.starting_after(after),
                None => request,
            }
        })
        .await
    }

    /// Events of the given types created at or after `created_since` (unix seconds), oldest
    /// first, following pagination. Stripe keeps events for 30 days.
    pub async fn events_since(&self, created_since: i64, types: &[&str]) -> Result<Vec<Value>, StripeReadError> {
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        let mut all = self
            .every_page(|after| {
                let request = ListEvent::new()
                    .limit(PAGE_SIZE)
                    .created(stripe_types::RangeQueryTs::gte(created_since))
                    .types(types.clone());
                match after {
                    Some(after) => request.starting_after(after),
                    None => request,
                }
            })
            .await?;
        // Stripe lists newest first; applying oldest first keeps the trails in order.
        all.sort_by_key(|event| event.get("created").and_then(Value::as_i64).unwrap_or_default());
        Ok(all)
    }

    /// Cancels a duplicate subscription now (no proration, no final invoice) and refunds the
    /// payment of its latest invoice. Both carry idempotency keys derived from the subscription,
    /// so a retried message cancels and refunds once. Returns the refund's id and amount, if
    /// anything had been paid.
    #[tracing::instrument(skip(self))]
    pub async fn end_duplicate(&self, id: &str) -> Result<Option<(String, i64)>, StripeReadError> {
        // Already gone from Stripe: nothing left to cancel or to refund.
        let Some(canceled) = self.cancel_now(id, &format!("cancel-duplicate:{id}")).await? else { return Ok(None) };
        let Some(invoice_id) = canceled.get("latest_invoice").and_then(super::event::id_of) else { return Ok(None) };
        let invoice = self
            .send(RetrieveInvoice::new(invoice_id.as_str()).expand(vec!["payments".to_owned()]))
            .await
            .map_err(unavailable)?;
        let paid = invoice.get("amount_paid").and_then(Value::as_i64).unwrap_or(0);
        let Some(payment_intent) = paid_payment_intent(&invoice).filter(|_| paid > 0) else { return Ok(None) };
        let refund = CreateRefund::new().payment_intent(payment_intent).reason(CreateRefundReason::Duplicate);
        let refund = self.send_once(refund, &format!("refund-duplicate:{id}")).await.map_err(unavailable)?;
        let refund_id = refund.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Some((refund_id, refund.get("amount").and_then(Value::as_i64).unwrap_or(paid))))
    }

    /// Follows a list's pages: `page` builds the request for the page after the given id.
    async fn every_page<R: StripeRequest>(
        &self,
        page: impl Fn(Option<String>) -> R,
    ) -> Result<Vec<Value>, StripeReadError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (data, has_more) = list_page(self.send(page(after.take())).await.map_err(unavailable)?)?;
            after = data.last().and_then(|item| item.get("id")).and_then(Value::as_str).map(str::to_owned);
            all.extend(data);
            if !has_more || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Cancels a subscription now, without proration or a final invoice; `None` if Stripe has no
    /// such subscription. `key` makes a retry cancel once.
    pub async fn cancel_now(&self, id: &str, key: &str) -> Result<Option<Value>, StripeReadError> {
        let cancel = CancelSubscription::new(id).prorate(false).invoice_now(false);
        match self.send_once(cancel, key).await {
            Ok(object) => Ok(Some(object)),
            Err(StripeError::Stripe(error, 404))
                if error.code.as_ref().is_none_or(|c| c.as_str() == "resource_missing") =>
            {
                Ok(None)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Moves a subscription's trial end to `trial_end` (unix seconds) without proration; `None`
    /// if Stripe has no such subscription. `key` makes a retry move it once.
    #[tracing::instrument(skip(self))]
    pub async fn extend_trial(&self, id: &str, trial_end: i64, key: &str) -> Result<Option<Value>, StripeReadError> {
        let update = UpdateSubscription::new(id)
            .trial_end(UpdateSubscriptionTrialEnd::Timestamp(trial_end))
            .proration_behavior(UpdateSubscriptionProrationBehavior::None);
        match self.send_once(update, key).await {
            Ok(object) => Ok(Some(object)),
            Err(StripeError::Stripe(error, 404))
                if error.code.as_ref().is_none_or(|c| c.as_str() == "resource_missing") =>
            {
                Ok(None)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// A POST, sent once with an idempotency key (a retry of the message sends the same key).
    async fn send_once(&self, request: impl StripeRequest, key: &str) -> Result<Value, StripeError> {
        let key = IdempotencyKey::new(key).map_err(|e| StripeError::ClientError(e.to_string()))?;
        let raw: miniserde::json::Value =
            request.build().customize().request_strategy(RequestStrategy::Idempotent(key)).send(&self.client).await?;
        serde_json::from_str(&miniserde::json::to_string(&raw)).map_err(|e| StripeError::JSONDeserialize(e.to_string()))
    }

    /// Sends a typed request and reads the answer as JSON (not as async-stripe's typed object,
    /// which would reject a shape it does not know).
    async fn send(&self, request: impl StripeRequest) -> Result<Value, StripeError> {
        let raw: miniserde::json::Value = request.build().customize().send(&self.client).await?;
        serde_json::from_str(&miniserde::json::to_string(&raw)).map_err(|e| StripeError::JSONDeserialize(e.to_string()))
    }
}

/// The payment intent that paid an invoice: in its `payments` list (API versions from 2025 on),
/// or the invoice's own `payment_intent` (older ones).
fn paid_payment_intent(invoice: &Value) -> Option<String> {
    let from_payments = invoice.pointer("/payments/data").and_then(Value::as_array).and_then(|payments| {
        payments
            .iter()
            .filter(|p| p.get("status").and_then(Value::as_str).is_none_or(|s| s == "paid"))
            .find_map(|p| p.pointer("/payment/payment_intent").and_then(super::event::id_of))
    });
    from_payments.or_else(|| invoice.get("payment_intent").and_then(super::event::id_of))
}

fn list_page(page: Value) -> Result<(Vec<Value>, bool), StripeReadError> {
    let has_more = page.get("has_more").and_then(Value::as_bool).unwrap_or(false);
    match page {
        Value::Object(mut object) => match object.remove("data") {
            Some(Value::Array(data)) => Ok((data, has_more)),
            _ => Err(StripeReadError::Unexpected("a list without `data`".into())),
        },
        _ => Err(StripeReadError::Unexpected("a list that is not an object".into())),
    }
}

fn unavailable(error: StripeError) -> StripeReadError {
    match error {
        StripeError::JSONDeserialize(reason) => StripeReadError::Unexpected(reason),
        StripeError::Stripe(error, status) => StripeReadError::Unavailable(format!(
            "HTTP {status} {}: {}",
            error.code.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            error.message.unwrap_or_default()
        )),
        other => StripeReadError::Unavailable(other.to_string()),
    }
}

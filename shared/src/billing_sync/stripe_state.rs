//! Stripe's current billing state, read through async-stripe: one subscription, every live
//! subscription, and the event log. Events are signals; these reads are the truth the worker
//! and reconciliation apply. The writes the workers and operators make live here too: ending a
//! duplicate subscription (cancel it, refund what it charged), canceling a deleted workspace's,
//! and extending a trial.
//!
//! Requests are built by async-stripe's typed request builders, but responses are read as JSON
//! and handed to the same tolerant reader the webhook events go through (`event::Subscription`),
//! so a field Stripe adds or moves never turns into a dropped update.

use serde_json::Value;
use stripe::StripeRequest;
use stripe_billing::invoice::RetrieveInvoice;
use stripe_billing::subscription::{
    CancelSubscription, ListSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior, UpdateSubscriptionTrialEnd,
};
use stripe_core::event::ListEvent;
use stripe_core::refund::{CreateRefund, CreateRefundReason};

use crate::stripe::{StripeClient, StripeError};

pub use crate::stripe::DEFAULT_API_BASE;
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

impl From<StripeError> for StripeReadError {
    fn from(error: StripeError) -> Self {
        match error {
            StripeError::Unexpected(reason) => StripeReadError::Unexpected(reason),
            other => StripeReadError::Unavailable(other.to_string()),
        }
    }
}

/// A reader of Stripe's billing state, built once per execution environment.
#[derive(Clone)]
pub struct StripeState {
    client: StripeClient,
}

impl StripeState {
    /// `api_base` replaces `https://api.stripe.com/` (a local Stripe in tests and development).
    pub fn new(secret_key: &secrecy::SecretString, api_base: Option<&str>) -> Result<Self, StripeReadError> {
        Ok(Self { client: StripeClient::new(secret_key, api_base)? })
    }

    /// The subscription as Stripe holds it now (with its items and their prices), or `None`
    /// when Stripe has no such subscription.
    #[tracing::instrument(skip(self))]
    pub async fn subscription(&self, id: &str) -> Result<Option<Value>, StripeReadError> {
        missing_is_none(self.client.get(RetrieveSubscription::new(id)).await)
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
        let invoice =
            self.client.get(RetrieveInvoice::new(invoice_id.as_str()).expand(vec!["payments".to_owned()])).await?;
        let paid = invoice.get("amount_paid").and_then(Value::as_i64).unwrap_or(0);
        let Some(payment_intent) = paid_payment_intent(&invoice).filter(|_| paid > 0) else { return Ok(None) };
        let refund = CreateRefund::new().payment_intent(payment_intent).reason(CreateRefundReason::Duplicate);
        let refund = self.client.post(refund, &format!("refund-duplicate:{id}")).await?;
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
            let (data, has_more) = list_page(self.client.get(page(after.take())).await?)?;
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
        missing_is_none(self.client.post(cancel, key).await)
    }

    /// Moves a subscription's trial end to `trial_end` (unix seconds) without proration; `None`
    /// if Stripe has no such subscription. `key` makes a retry move it once.
    #[tracing::instrument(skip(self))]
    pub async fn extend_trial(&self, id: &str, trial_end: i64, key: &str) -> Result<Option<Value>, StripeReadError> {
        let update = UpdateSubscription::new(id)
            .trial_end(UpdateSubscriptionTrialEnd::Timestamp(trial_end))
            .proration_behavior(UpdateSubscriptionProrationBehavior::None);
        missing_is_none(self.client.post(update, key).await)
    }
}

impl StripeState {
    /// Sets the quantity of a subscription's item (the seats of a per-seat plan), prorated on
    /// the next invoice. `key` makes a retry set it once.
    #[tracing::instrument(skip(self))]
    pub async fn set_quantity(&self, id: &str, item: &str, quantity: i32, key: &str) -> Result<Value, StripeReadError> {
        let mut change = UpdateSubscriptionItems::new();
        change.id = Some(item.to_owned());
        change.quantity = Some(u64::try_from(quantity.max(1)).unwrap_or(1));
        let update = UpdateSubscription::new(id)
            .items(vec![change])
            .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations);
        Ok(self.client.post(update, key).await?)
    }

    /// As `set_quantity`, for a subscription whose plan item is not known yet: read from Stripe.
    pub async fn set_plan_quantity(&self, id: &str, quantity: i32, key: &str) -> Result<Value, StripeReadError> {
        let subscription = self
            .subscription(id)
            .await?
            .ok_or_else(|| StripeReadError::Unexpected(format!("Stripe has no subscription {id}")))?;
        let item = super::event::plan_item(&subscription)
            .and_then(|item| item.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| StripeReadError::Unexpected(format!("subscription {id} has no plan item")))?
            .to_owned();
        self.set_quantity(id, &item, quantity, key).await
    }
}

fn missing_is_none(answer: Result<Value, StripeError>) -> Result<Option<Value>, StripeReadError> {
    match answer {
        Ok(object) => Ok(Some(object)),
        Err(error) if error.is_missing() => Ok(None),
        Err(error) => Err(error.into()),
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

//! Syncing Stripe's billing state into the database: the billing worker applies webhook events
//! with it, and reconciliation applies Stripe's current subscriptions with the same rules.

pub mod apply;
pub mod event;

pub use apply::{ApplyError, Outcome, Worker};

/// The event types the worker acts on; reconciliation replays exactly these.
pub const HANDLED_EVENT_TYPES: [&str; 11] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.deleted",
    "customer.subscription.pending_update_applied",
];

/// One event that reconciliation found missing and applied.
#[derive(Debug, serde::Serialize)]
pub struct Repair {
    pub event_id: String,
    pub event_type: String,
    pub outcome: &'static str,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ReconcileReport {
    /// Events Stripe listed.
    pub checked: usize,
    /// Events that had never been applied (missed webhooks), now applied.
    pub repaired: Vec<Repair>,
    /// Events that could not be applied (malformed); retried on the next run.
    pub failed: Vec<String>,
}

/// Applies every listed event that was never applied. Already-applied events are duplicates and
/// change nothing, so running this any number of times is safe.
pub async fn reconcile(worker: &Worker, events: Vec<serde_json::Value>) -> Result<ReconcileReport, ApplyError> {
    let mut report = ReconcileReport { checked: events.len(), ..Default::default() };
    for event in events {
        let id = event.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let kind = event.get("type").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        match worker.apply(&event.to_string()).await {
            Ok(Outcome::Duplicate) => {}
            Ok(outcome) => report.repaired.push(Repair { event_id: id, event_type: kind, outcome: outcome.as_str() }),
            Err(ApplyError::Malformed(reason)) => {
                tracing::error!(event_id = %id, %reason, "event cannot be applied");
                report.failed.push(id);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(report)
}

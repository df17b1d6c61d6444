//! The `billing-worker` function: drains the stripe-events SQS queue and applies each event to
//! the database, reading the subscription's current state from Stripe (see
//! `shared::billing_sync::apply` for exactly-once and why events are only signals). Each message
//! succeeds or fails on its own; failures are reported as batch item failures, so a poison
//! message is retried alone and reaches the dead-letter queue when its receives run out. Once
//! Stripe proves unavailable, the rest of the batch is handed back without asking it again:
//! each read may take its retries and timeouts, and a batch must not outlive the function's
//! timeout waiting on an outage.
//!
//! The same queue carries seat syncs (`{"seat_sync": "<workspace id>"}`, put there by the
//! reconciliation's frequent pass): the quantity of a per-seat subscription set to the
//! workspace's billable seats (`shared::billing_sync::seats`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use shared::config::Settings;
use shared::runtime::batch::{self, Policy};
use shared::runtime::{FromSettings, NoTask};

pub use shared::billing_sync::{ApplyError, Outcome, SeatSync, SeatSyncMessage, StripeState, Worker};

pub const FUNCTION: &str = "billing-worker";

/// Applies each message of a batch; the failed ones are reported for redelivery, and once
/// Stripe is down the rest of the batch is handed back untried.
pub async fn handle_batch(worker: &Worker, batch: SqsEvent) -> SqsBatchResponse {
    let stripe_down: fn(&ApplyError) -> bool = |error| matches!(error, ApplyError::Stripe(_));
    batch::each(batch, "stripe event", Policy::StopOnOutage(stripe_down), |body| async move {
        match SeatSyncMessage::parse(&body) {
            Some(message) => worker.sync_seats(message.seat_sync).await.map(|_| ()),
            None => worker.apply(&body).await.map(|_| ()),
        }
    })
    .await
}

/// The function: the billing worker, fed by the stripe-events queue only.
pub struct BillingWorker(pub Worker);

impl FromSettings for BillingWorker {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        Ok(Self(Worker::from_settings(settings).await?))
    }
}

impl shared::runtime::Worker for BillingWorker {
    const NAME: &'static str = FUNCTION;
    type Task = NoTask;

    async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        handle_batch(&self.0, batch).await
    }

    async fn run_task(&self, task: NoTask) -> Result<serde_json::Value, shared::runtime::Error> {
        match task {}
    }
}

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
use lambda_runtime::{LambdaEvent, service_fn};
use shared::config::Settings;

pub use shared::billing_sync::{ApplyError, Outcome, SeatSync, SeatSyncMessage, StripeState, Worker};

pub const FUNCTION: &str = "billing-worker";

/// Applies each message of a batch; the failed ones are reported for redelivery.
pub async fn handle_batch(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut stripe_down = false;
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        shared::metrics::queue_lag(&record.attributes);
        if stripe_down {
            response.add_failure(message_id);
            continue;
        }
        let result = match record.body.as_deref() {
            Some(body) => match SeatSyncMessage::parse(body) {
                Some(message) => worker.sync_seats(message.seat_sync).await.map(|_| ()),
                None => worker.apply(body).await.map(|_| ()),
            },
            None => Err(ApplyError::Malformed("empty message".into())),
        };
        if let Err(error) = result {
            stripe_down = matches!(error, ApplyError::Stripe(_));
            let receives = record.attributes.get("ApproximateReceiveCount").map(String::as_str).unwrap_or("?");
            tracing::error!(%message_id, %error, retryable = error.is_retryable(), receives, "event not applied");
            response.add_failure(message_id);
        }
    }
    response
}

/// The Lambda entry point.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init(FUNCTION);
    let settings = Settings::load().await?;
    let worker = Worker::from_settings(&settings).await?;
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(handle_batch(worker, event.payload).await)
    }))
    .await
}

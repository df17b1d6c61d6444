//! One runner for every SQS batch: each message handled by the function's own step, under the
//! policy the worker needs, answered as partial batch failures, so the messages that failed are
//! retried by SQS (and dead-lettered once their receives run out) while the rest are deleted.
//! A poison message never blocks its batch.

use std::fmt::{Debug, Display};
use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;

/// How a batch's messages are handled.
pub enum Policy<E> {
    /// One at a time, in the batch's order.
    Sequential,
    /// All at once (a batch is at most ten messages): for independent messages that mostly
    /// wait on the network.
    Concurrent,
    /// One at a time; once a failure says an outside service is down (the predicate), the rest
    /// of the batch is failed untried, to be retried when it may be up again.
    StopOnOutage(fn(&E) -> bool),
}

/// Handles each message body of `batch` with `handle` under `policy`. `what` names a message
/// in the logs ("mail", "delivery", ...).
pub async fn each<T, E, F, Fut>(batch: SqsEvent, what: &'static str, policy: Policy<E>, handle: F) -> SqsBatchResponse
where
    T: Debug,
    E: Display,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut response = SqsBatchResponse::default();
    match policy {
        Policy::Sequential => {
            for record in batch.records {
                let (message_id, result) = one(record, what, &handle).await;
                if result.is_err() {
                    response.add_failure(message_id);
                }
            }
        }
        Policy::Concurrent => {
            let handled = join_all(batch.records.into_iter().map(|record| one(record, what, &handle))).await;
            for (message_id, result) in handled {
                if result.is_err() {
                    response.add_failure(message_id);
                }
            }
        }
        Policy::StopOnOutage(is_outage) => {
            let mut outage = false;
            for record in batch.records {
                if outage {
                    let message_id = record.message_id.unwrap_or_default();
                    tracing::warn!(%message_id, what, "left for a retry: an outside service is down");
                    response.add_failure(message_id);
                    continue;
                }
                let (message_id, result) = one(record, what, &handle).await;
                if let Err(error) = &result {
                    outage = is_outage(error);
                    response.add_failure(message_id);
                }
            }
        }
    }
    response
}

/// Handles one message and logs its outcome (a failure with how often SQS has handed it over).
async fn one<T, E, F, Fut>(record: SqsMessage, what: &'static str, handle: &F) -> (String, Result<T, E>)
where
    T: Debug,
    E: Display,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let message_id = record.message_id.clone().unwrap_or_default();
    crate::metrics::queue_lag(&record.attributes);
    let receives = record.attributes.get("ApproximateReceiveCount").cloned();
    let result = handle(record.body.unwrap_or_default()).await;
    match &result {
        Ok(outcome) => tracing::info!(%message_id, ?outcome, what, "message handled"),
        Err(error) => {
            let receives = receives.as_deref().unwrap_or("?");
            tracing::error!(%message_id, %error, what, receives, "message failed");
        }
    }
    (message_id, result)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn batch(bodies: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let mut record = SqsMessage::default();
                record.message_id = Some(format!("m{i}"));
                record.body = Some((*body).to_owned());
                record
            })
            .collect();
        event
    }

    fn failed(response: &SqsBatchResponse) -> Vec<&str> {
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
    }

    async fn step(body: String) -> Result<(), String> {
        match body.as_str() {
            "ok" => Ok(()),
            other => Err(other.to_owned()),
        }
    }

    #[tokio::test]
    async fn only_the_failed_messages_are_reported_under_every_policy() {
        let bodies = ["ok", "poison", "ok", "down", "ok"];
        for policy in [Policy::Sequential, Policy::Concurrent] {
            assert_eq!(failed(&each(batch(&bodies), "test", policy, step).await), ["m1", "m3"]);
        }
    }

    #[tokio::test]
    async fn an_outage_fails_the_rest_of_the_batch_untried() {
        let tried = AtomicUsize::new(0);
        let response = each(
            batch(&["ok", "poison", "down", "ok", "ok"]),
            "test",
            Policy::StopOnOutage(|e: &String| e == "down"),
            |body| {
                tried.fetch_add(1, Ordering::SeqCst);
                step(body)
            },
        )
        .await;
        assert_eq!(failed(&response), ["m1", "m2", "m3", "m4"]);
        assert_eq!(tried.load(Ordering::SeqCst), 3, "nothing is tried after the outage");
    }
}

//! SQS queues: sending messages; and, for the local stack and the tests only (`dev`), draining a
//! queue into a worker's batch handler the way Lambda's SQS event source mapping does.
//!
//! The endpoint, region and credentials come from the standard AWS configuration chain, so
//! `AWS_ENDPOINT_URL` points it at a local AWS-compatible server (moto).

use aws_config::BehaviorVersion;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("could not send to {queue}: {reason}")]
    Send { queue: String, reason: String },
    #[error("could not receive from {queue}: {reason}")]
    Receive { queue: String, reason: String },
}

#[derive(Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    /// A client from the standard AWS configuration; build once per execution environment.
    pub async fn connect(url: impl Into<String>) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(aws_sdk_sqs::Client::new(&config), url)
    }

    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many messages wait in the queue (SQS's approximate count of visible messages).
    pub async fn approximate_depth(&self) -> Result<u64, QueueError> {
        let name = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| QueueError::Receive { queue: self.url.clone(), reason: DisplayErrorContext(e).to_string() })?;
        let count = output.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse().ok());
        count.ok_or_else(|| QueueError::Receive { queue: self.url.clone(), reason: "no message count".into() })
    }

    /// Sends one message; its string attributes travel with it. Returns the SQS message id.
    pub async fn send(&self, body: &str, attributes: &[(&str, &str)]) -> Result<String, QueueError> {
        let mut request = self.client.send_message().queue_url(&self.url).message_body(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| QueueError::Send { queue: self.url.clone(), reason: e.to_string() })?;
            request = request.message_attributes(*name, value);
        }
        let output = request
            .send()
            .await
            .map_err(|e| QueueError::Send { queue: self.url.clone(), reason: DisplayErrorContext(e).to_string() })?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }

    /// Sends many messages, ten per request (SQS's batch limit). Fails if any was refused (the
    /// caller sends again: its consumers handle duplicates).
    pub async fn send_all(&self, bodies: &[String]) -> Result<(), QueueError> {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| QueueError::Send { queue: self.url.clone(), reason: e.to_string() })?;
            let output =
                self.client.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await.map_err(
                    |e| QueueError::Send { queue: self.url.clone(), reason: DisplayErrorContext(e).to_string() },
                )?;
            if let Some(failed) = output.failed().first() {
                return Err(QueueError::Send {
                    queue: self.url.clone(),
                    reason: format!(
                        "{} of a batch refused: {}",
                        output.failed().len(),
                        failed.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Sends one message that becomes visible after `delay_secs` (at most 900, SQS's limit).
    pub async fn send_delayed(&self, body: &str, delay_secs: u32) -> Result<String, QueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_secs.min(900) as i32)
            .send()
            .await
            .map_err(|e| QueueError::Send { queue: self.url.clone(), reason: DisplayErrorContext(e).to_string() })?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }
}

/// Draining a queue by hand, as Lambda's event source mapping does: the local stack feeds its
/// workers and the tests theirs this way. Development only (`dev`); on AWS Lambda drains.
#[cfg(feature = "dev")]
mod drain {
    use std::future::Future;

    use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
    use aws_sdk_sqs::error::DisplayErrorContext;
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

    use super::{Queue, QueueError};

    /// What one drain of the queue did.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct Drained {
        pub received: usize,
        pub failed: usize,
    }

    impl Queue {
        /// Receives one batch (waiting up to `wait_secs`), hands it to `handler` as Lambda would,
        /// and deletes every message except those the handler reports as failed, which become
        /// visible again after the queue's visibility timeout (and reach its dead-letter queue once
        /// their receives run out).
        pub async fn drain_once<F, Fut>(&self, wait_secs: i32, handler: F) -> Result<Drained, QueueError>
        where
            F: FnOnce(SqsEvent) -> Fut,
            Fut: Future<Output = SqsBatchResponse>,
        {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait_secs)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| QueueError::Receive {
                    queue: self.url.clone(),
                    reason: DisplayErrorContext(e).to_string(),
                })?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(Drained::default());
            }
            let mut event = SqsEvent::default();
            event.records = messages.iter().map(to_lambda_record).collect();
            let response = handler(event).await;
            let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
            let done: Vec<DeleteMessageBatchRequestEntry> = messages
                .iter()
                .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            if !done.is_empty() {
                self.client.delete_message_batch().queue_url(&self.url).set_entries(Some(done)).send().await.map_err(
                    |e| QueueError::Receive { queue: self.url.clone(), reason: DisplayErrorContext(e).to_string() },
                )?;
            }
            Ok(Drained { received: messages.len(), failed: failed.len() })
        }
    }

    fn to_lambda_record(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id().map(str::to_owned);
        record.receipt_handle = message.receipt_handle().map(str::to_owned);
        record.body = message.body().map(str::to_owned);
        record.event_source = Some("aws:sqs".to_owned());
        record.attributes = message
            .attributes()
            .map(|attributes| attributes.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
            .unwrap_or_default();
        record
    }
}

#[cfg(feature = "dev")]
pub use drain::Drained;

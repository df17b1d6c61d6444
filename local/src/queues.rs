//! The local stripe-events queue (in moto): created with its dead-letter queue and redrive
//! policy as template.yaml declares them, and drained into the workers as Lambda's SQS event
//! source mapping would.

use std::future::Future;

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::queue::Queue;

/// Creates (or finds) `name` and `name-dlq` with a redrive policy; returns the queue.
pub async fn ensure_with_dlq(name: &str) -> Result<Queue> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let dlq =
        client.create_queue().queue_name(format!("{name}-dlq")).send().await.context("create the dead-letter queue")?;
    let dlq_url = dlq.queue_url().context("dead-letter queue url")?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("read the dead-letter queue's ARN")?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("dead-letter queue ARN")?;
    let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}"#);
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .context("create the queue")?;
    Ok(Queue::new(client, queue.queue_url().context("queue url")?))
}

/// The local queues' dead-letter queues that exist (named as their queue), for the admin totals.
pub async fn dead_letter_queues() -> Vec<(String, Queue)> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let mut found = Vec::new();
    for name in ["stripe-events", "usage", "email", "webhooks", "activity", "exports"] {
        if let Ok(queue) = client.get_queue_url().queue_name(format!("{name}-dlq")).send().await
            && let Some(url) = queue.queue_url()
        {
            found.push((name.to_owned(), Queue::new(client.clone(), url)));
        }
    }
    found
}

/// Feeds a worker's batch handler from the queue forever, like an SQS event source mapping.
pub async fn feed<F, Fut>(queue: Queue, worker: &'static str, handler: F)
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    loop {
        match queue.drain_once(10, &handler).await {
            Ok(drained) if drained.received > 0 => {
                tracing::info!(worker, received = drained.received, failed = drained.failed, "drained a batch");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(worker, %error, "could not poll the local queue; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

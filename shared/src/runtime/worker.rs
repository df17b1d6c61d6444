//! Functions fed by SQS batches and by schedules: one dispatcher for "SQS records, or a
//! scheduled task", typed on both sides.

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Error, FromSettings, start};

/// A worker: its batches (see [`super::batch::each`]) and the tasks its schedules send.
pub trait Worker: Send + Sync + 'static {
    /// For logs and metrics.
    const NAME: &'static str;

    /// What the function's schedules send, e.g. `{"task": "sweep"}` as an enum tagged by `task`;
    /// [`NoTask`] for a function that only a queue feeds.
    type Task: DeserializeOwned + Send;

    /// One SQS batch, answered as partial batch failures.
    fn handle_batch(&self, batch: SqsEvent) -> impl Future<Output = SqsBatchResponse> + Send {
        async move {
            // No queue is wired to a function that does not handle batches; fail them loudly
            // rather than delete them.
            tracing::error!(function = Self::NAME, "a batch reached a function no queue feeds");
            let mut response = SqsBatchResponse::default();
            for record in batch.records {
                response.add_failure(record.message_id.unwrap_or_default());
            }
            response
        }
    }

    /// One scheduled task; its answer is the invocation's result (logged by Lambda).
    fn run_task(&self, task: Self::Task) -> impl Future<Output = Result<Value, Error>> + Send;
}

/// The tasks of a function that no schedule invokes: no event parses as one.
#[derive(Debug, Deserialize)]
pub enum NoTask {}

/// The task of a worker whose schedule sweeps its outbox: `{"task": "sweep"}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Sweep {
    /// Put what is due and was never queued on the queue.
    Sweep,
}

/// The [`Worker`] of a function fed by its queue and swept by its schedule: batches go to
/// `$handle_batch(&worker, batch)`, `{"task": "sweep"}` to the worker's own `sweep()`, answered
/// `{"enqueued": n}`. `shared::sweeping_worker!(Mailer, FUNCTION, handle_batch);`
#[macro_export]
macro_rules! sweeping_worker {
    ($worker:ty, $name:expr, $handle_batch:path) => {
        impl $crate::runtime::Worker for $worker {
            const NAME: &'static str = $name;
            type Task = $crate::runtime::Sweep;

            async fn handle_batch(&self, batch: $crate::runtime::SqsEvent) -> $crate::runtime::SqsBatchResponse {
                $handle_batch(self, batch).await
            }

            async fn run_task(
                &self,
                $crate::runtime::Sweep::Sweep: $crate::runtime::Sweep,
            ) -> Result<$crate::runtime::Value, $crate::runtime::Error> {
                Ok($crate::runtime::Value::from(
                    [("enqueued".to_owned(), $crate::runtime::Value::from(self.sweep().await?))]
                        .into_iter()
                        .collect::<$crate::runtime::Map<String, $crate::runtime::Value>>(),
                ))
            }
        }
    };
}

/// An invocation of a worker.
#[derive(Debug)]
pub enum Event<T> {
    Batch(SqsEvent),
    Task(T),
}

impl<T: DeserializeOwned> Event<T> {
    /// SQS sends `{"Records": [...]}`; anything else is the schedule's input.
    pub fn parse(payload: Value) -> Result<Self, Error> {
        if payload.get("Records").is_some() {
            return Ok(Self::Batch(serde_json::from_value(payload)?));
        }
        serde_json::from_value(payload.clone())
            .map(Self::Task)
            .map_err(|error| format!("neither an SQS batch nor a task of this function ({error}): {payload}").into())
    }
}

/// Handles one invocation's payload, as Lambda hands it over.
pub async fn handle_event<W: Worker>(worker: &W, payload: Value) -> Result<Value, Error> {
    match Event::<W::Task>::parse(payload)? {
        Event::Batch(batch) => Ok(serde_json::to_value(worker.handle_batch(batch).await)?),
        Event::Task(task) => worker.run_task(task).await,
    }
}

/// Starts `W` on Lambda: batches and tasks through [`handle_event`].
pub async fn worker<W: Worker + FromSettings>() -> Result<(), Error> {
    let settings = start(W::NAME).await?;
    let worker: &'static W = Box::leak(Box::new(W::from_settings(&settings).await?));
    lambda_http::lambda_runtime::run(lambda_http::lambda_runtime::service_fn(
        move |event: lambda_http::lambda_runtime::LambdaEvent<Value>| handle_event(worker, event.payload),
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "task", rename_all = "snake_case")]
    enum Task {
        Sweep,
    }

    #[test]
    fn records_are_a_batch_and_anything_else_a_task_or_an_error() {
        let batch = serde_json::json!({"Records": [{"messageId": "m1", "body": "x"}]});
        assert!(matches!(Event::<Task>::parse(batch).unwrap(), Event::Batch(b) if b.records.len() == 1));
        assert!(matches!(
            Event::<Task>::parse(serde_json::json!({"task": "sweep"})).unwrap(),
            Event::Task(Task::Sweep)
        ));
        assert!(Event::<Task>::parse(serde_json::json!({"task": "explode"})).is_err());
        assert!(Event::<NoTask>::parse(serde_json::json!({"task": "sweep"})).is_err());
    }
}

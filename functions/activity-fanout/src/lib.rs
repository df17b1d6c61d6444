//! The `activity-fanout` function: pushes new activity entries to the WebSocket connections
//! subscribed to their workspace and allowed to read them at that moment.
//!
//! The activity table is the outbox. The sweep (`{"task": "sweep"}`, every minute, which then
//! keeps sweeping every `poll` until shortly before its time is up) puts new entries of
//! workspaces with live subscribers on the queue (entries of workspaces nobody watches are just
//! marked) and marks them after sending, so a crash sends again rather than never. Each SQS
//! message names one entry: its recipients are decided at send time by the database
//! (`app.realtime_recipients`: members, working API keys, and contacts of the client owning the
//! project for client-visible entries; contacts dropped when the plan lost the portal), pushed
//! concurrently; a connection that is gone is forgotten; any other failure fails the message,
//! which SQS retries (recipients already reached may get it twice: at-least-once, with the
//! entry's id to deduplicate on).

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::StreamExt;
use serde_json::Value;
use shared::activity::ActivityView;
use shared::config::{DatabaseConfig, Settings};
use shared::queue::Queue;
use shared::realtime::{ApiGatewayTransport, Frame, PushError, Transport};
use shared::runtime::Sweep;
use sqlx::PgPool;
use uuid::Uuid;

pub const FUNCTION: &str = "activity-fanout";

/// Pushes in flight at once for one entry.
const CONCURRENT_PUSHES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pushed {
    pub delivered: usize,
    /// Connections found closed and forgotten.
    pub gone: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("not an activity id: {0}")]
    Malformed(String),
    #[error("{failed} of {total} pushes failed: {first}")]
    Push { failed: usize, total: usize, first: String },
    #[error(transparent)]
    Queue(#[from] shared::queue::QueueError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Fanout<T> {
    pub pool: PgPool,
    pub transport: T,
    pub queue: Option<Queue>,
    /// How long a scheduled sweep keeps sweeping, and how often.
    pub sweep: Duration,
    pub poll: Duration,
}

impl<T: Transport> Fanout<T> {
    /// Pushes one entry to every connection that may read it now.
    #[tracing::instrument(skip(self))]
    pub async fn fan_out(&self, activity_id: &str) -> Result<Pushed, FanoutError> {
        let id: Uuid =
            activity_id.trim().parse().map_err(|_| FanoutError::Malformed(activity_id.chars().take(64).collect()))?;
        // The entry and what its workspace's plan allows, in one statement.
        let entry = sqlx::query!(
            r#"SELECT id, verb, message, actor_id, actor, subject_type, subject_id, subject_name, project_id,
                      client_id, client_visible, data, created_at, workspace_id,
                      app.effective_plan(workspace_id) AS "plan!", app.active_overrides(workspace_id) AS "overrides!"
               FROM activity WHERE id = $1"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(entry) = entry else { return Ok(Pushed::default()) };
        let (workspace_id, plan, overrides) = (entry.workspace_id, entry.plan, entry.overrides);
        let activity = ActivityView {
            id: entry.id,
            verb: entry.verb,
            message: entry.message,
            actor_id: entry.actor_id,
            actor: entry.actor,
            subject_type: entry.subject_type,
            subject_id: entry.subject_id,
            subject_name: entry.subject_name,
            project_id: entry.project_id,
            client_id: entry.client_id,
            client_visible: entry.client_visible,
            data: entry.data,
            created_at: entry.created_at,
        };
        let portal = shared::plans::by_id(&plan).with_overrides(&overrides).features.client_portal;
        let recipients: Vec<String> = sqlx::query!(
            r#"SELECT connection_id AS "connection_id!", via AS "via!" FROM app.realtime_recipients($1)"#,
            id
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .filter(|recipient| portal || recipient.via != "contact")
        .map(|recipient| recipient.connection_id)
        .collect();
        let frame = Frame::Activity { workspace_id, activity: &activity }.to_text();
        let results: Vec<(String, Result<(), PushError>)> = futures_util::stream::iter(recipients)
            .map(|connection| {
                let frame = &frame;
                async move {
                    let result = self.transport.push(&connection, frame).await;
                    (connection, result)
                }
            })
            .buffer_unordered(CONCURRENT_PUSHES)
            .collect()
            .await;
        let total = results.len();
        let mut pushed = Pushed::default();
        let mut gone = Vec::new();
        let mut failures = Vec::new();
        for (connection, result) in results {
            match result {
                Ok(()) => pushed.delivered += 1,
                Err(PushError::Gone) => gone.push(connection),
                Err(PushError::Failed(reason)) => failures.push(reason),
            }
        }
        if !gone.is_empty() {
            pushed.gone = gone.len();
            sqlx::query!("DELETE FROM realtime_connections WHERE id = ANY($1)", &gone).execute(&self.pool).await?;
        }
        if let Some(first) = failures.first() {
            return Err(FanoutError::Push { failed: failures.len(), total, first: first.clone() });
        }
        Ok(pushed)
    }

    /// Queues the entries not queued yet: those of workspaces with subscribers go on the queue,
    /// the rest are only marked. Answers how many went on the queue.
    pub async fn sweep(&self) -> Result<usize, FanoutError> {
        let Some(queue) = &self.queue else { return Ok(0) };
        let mut tx = self.pool.begin().await?;
        let entries = sqlx::query!(
            r#"SELECT a.id,
                      EXISTS (SELECT 1 FROM realtime_subscriptions s WHERE s.workspace_id = a.workspace_id) AS "watched!"
               FROM activity a WHERE a.fanout_queued_at IS NULL
               ORDER BY a.id LIMIT 500 FOR UPDATE OF a SKIP LOCKED"#,
        )
        .fetch_all(&mut *tx)
        .await?;
        let watched: Vec<String> = entries.iter().filter(|e| e.watched).map(|e| e.id.to_string()).collect();
        queue.send_all(&watched).await?;
        let queued = watched.len();
        let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
        sqlx::query!("UPDATE activity SET fanout_queued_at = now() WHERE id = ANY($1)", &ids).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Sweeps every `poll` for `duration` (the scheduled invocation keeps the latency from a
    /// change to its push well under a second without an SQS client in the API functions).
    pub async fn sweep_for(&self, duration: Duration, poll: Duration) -> Result<usize, FanoutError> {
        let started = std::time::Instant::now();
        let mut total = 0;
        loop {
            total += self.sweep().await?;
            if started.elapsed() + poll >= duration {
                return Ok(total);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// Pushes the entries of a batch in the order they happened (ids are time-ordered; SQS's own
/// order is best effort), each to its recipients concurrently; a failed one is retried by SQS,
/// then dead-lettered (the others are not).
pub async fn handle_batch<T: Transport>(fanout: &Fanout<T>, mut event: SqsEvent) -> SqsBatchResponse {
    event.records.sort_by(|a, b| a.body.cmp(&b.body));
    shared::runtime::batch::each(event, "activity", shared::runtime::batch::Policy::Sequential, |body| async move {
        fanout.fan_out(&body).await
    })
    .await
}

impl<T: Transport> Fanout<T> {
    /// Reads `SERVICE_DATABASE_URL` (an `app_fanout` login), `ACTIVITY_QUEUE_URL`,
    /// `FANOUT_SWEEP_SECONDS` (default 50) and `FANOUT_POLL_MS` (default 250); pushes through
    /// `transport` (API Gateway's Management API on AWS, the local stack's own sockets locally).
    pub async fn build(settings: &Settings, transport: T) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        let sweep_secs: u64 = shared::config::parse_or(&lookup, "FANOUT_SWEEP_SECONDS", 50)?;
        let poll_ms: u64 = shared::config::parse_or(&lookup, "FANOUT_POLL_MS", 250)?;
        Ok(Self {
            pool: shared::db::connect_as(&database, FUNCTION).await?,
            transport,
            queue: match settings.get("ACTIVITY_QUEUE_URL") {
                Some(url) => Some(Queue::connect(url).await),
                None => None,
            },
            sweep: Duration::from_secs(sweep_secs),
            poll: Duration::from_millis(poll_ms),
        })
    }
}

/// On AWS: pushes through the WebSocket stage's Management API (`REALTIME_ENDPOINT`).
impl shared::runtime::FromSettings for Fanout<ApiGatewayTransport> {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        Self::build(settings, ApiGatewayTransport::new(settings.require("REALTIME_ENDPOINT")?)).await
    }
}

impl<T: Transport + Send + Sync + 'static> shared::runtime::Worker for Fanout<T> {
    const NAME: &'static str = FUNCTION;
    /// The schedule's `{"task": "sweep"}` sweeps the outbox for `sweep`, every `poll`.
    type Task = Sweep;

    async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        handle_batch(self, batch).await
    }

    async fn run_task(&self, Sweep::Sweep: Sweep) -> Result<Value, shared::runtime::Error> {
        Ok(serde_json::json!({ "queued": self.sweep_for(self.sweep, self.poll).await? }))
    }
}

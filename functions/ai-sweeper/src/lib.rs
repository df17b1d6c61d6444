//! The `ai-sweeper` function, on a schedule: nothing is lost between an AI run and its bill.
//! - Runs left pending by a function that died are failed and their quota released.
//! - Usage records not yet reported (their enqueue failed, or their workspace had no Stripe
//!   customer yet) are sent to the usage queue again.

use serde::Serialize;
use shared::config::{DatabaseConfig, Settings, parse_or};
use shared::queue::{Queue, QueueError};
use sqlx::PgPool;
use uuid::Uuid;

pub const FUNCTION: &str = "ai-sweeper";

pub struct Sweeper {
    pub pool: PgPool,
    pub usage_queue: Queue,
    /// A pending run older than this is abandoned (well past the function's timeout).
    pub stuck_after_secs: i64,
    /// An enqueued but unreported record is sent again after this long.
    pub resend_after_secs: i64,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub abandoned_runs: i64,
    pub usage_resent: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl Sweeper {
    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let abandoned_runs: i64 = sqlx::query_scalar!(
            r#"WITH stuck AS (
                 UPDATE ai_runs SET status = 'failed', finished_at = now(),
                        error = 'the run was interrupted before it finished; nothing was billed'
                 WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
                 RETURNING workspace_id, quota_period, overage),
             released AS (
                 UPDATE ai_quota_usage q SET reserved = greatest(q.reserved - s.included, 0),
                                             overage = greatest(q.overage - s.over, 0)
                 FROM (SELECT workspace_id, quota_period, count(*) FILTER (WHERE NOT overage) AS included,
                              count(*) FILTER (WHERE overage) AS over
                       FROM stuck GROUP BY 1, 2) s
                 WHERE q.workspace_id = s.workspace_id AND q.period = s.quota_period
                 RETURNING 1)
             SELECT count(*) AS "abandoned!" FROM stuck"#,
            self.stuck_after_secs as f64,
        )
        .fetch_one(&self.pool)
        .await?;

        // Unreported usage whose workspace can be billed, not sent recently (a fresh record is
        // left to its own function's enqueue for a minute).
        let due: Vec<Uuid> = sqlx::query_scalar!(
            "SELECT u.id FROM usage_records u JOIN workspaces w ON w.id = u.workspace_id
             WHERE u.reported_at IS NULL AND w.stripe_customer_id IS NOT NULL
               AND u.created_at < now() - interval '1 minute'
               AND (u.enqueued_at IS NULL OR u.enqueued_at < now() - make_interval(secs => $1))
             ORDER BY u.created_at LIMIT 500",
            self.resend_after_secs as f64,
        )
        .fetch_all(&self.pool)
        .await?;
        for id in &due {
            self.usage_queue.send(&id.to_string(), &[("kind", "usage_record")]).await?;
            sqlx::query!("UPDATE usage_records SET enqueued_at = now() WHERE id = $1", id).execute(&self.pool).await?;
        }
        let report = SweepReport { abandoned_runs, usage_resent: due.len() };
        tracing::info!(abandoned_runs = report.abandoned_runs, usage_resent = report.usage_resent, "swept");
        Ok(report)
    }
}

impl shared::runtime::FromSettings for Sweeper {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        Ok(Self {
            pool: shared::db::connect_as(&database, "ai-sweeper").await?,
            usage_queue: Queue::connect(settings.require("USAGE_QUEUE_URL")?).await,
            stuck_after_secs: parse_or(&lookup, "AI_STUCK_AFTER_SECS", 120)?,
            resend_after_secs: parse_or(&lookup, "USAGE_RESEND_AFTER_SECS", 900)?,
        })
    }
}

/// Every scheduled invocation sweeps, whatever its input (EventBridge's scheduled event).
impl shared::runtime::Worker for Sweeper {
    const NAME: &'static str = FUNCTION;
    type Task = serde::de::IgnoredAny;

    async fn run_task(&self, _: serde::de::IgnoredAny) -> Result<serde_json::Value, shared::runtime::Error> {
        Ok(serde_json::to_value(self.sweep().await?)?)
    }
}

//! The `files-worker` function, every minute: no object outlives its file.
//! - Uploads requested and never confirmed are discarded once their form has long expired
//!   (their reserved storage released, their object, if any, queued for deletion).
//! - The objects queued in `file_deletions` (by a file's deletion, or its deliverable's,
//!   project's or workspace's) are deleted from the bucket, up to 1,000 per request; a failure
//!   is retried later, backing off, and the sweep reports it so its alarm sees it.

use std::time::Duration;

use serde::Serialize;
use shared::config::{DatabaseConfig, Settings, parse_or};
use shared::files::FileStore;
use sqlx::PgPool;

pub const FUNCTION: &str = "files-worker";

/// The most keys one DeleteObjects request takes.
const BATCH: i64 = 1000;
/// Batches per sweep: bounded so one sweep ends well within the function's timeout.
const MOST_BATCHES: usize = 20;

pub struct FilesWorker {
    pub pool: PgPool,
    pub store: FileStore,
    /// How long after its form expired a pending upload is discarded.
    pub pending_grace: Duration,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub abandoned_uploads: i64,
    pub objects_deleted: usize,
    pub deletions_failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{failed} objects could not be deleted (retried later): {first}")]
    Deletions { failed: usize, first: String },
}

struct Due {
    id: i64,
    object_key: String,
}

impl FilesWorker {
    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let abandoned_uploads = sqlx::query_scalar!(
            r#"WITH gone AS (
                 DELETE FROM files
                 WHERE state = 'pending' AND upload_expires_at < now() - make_interval(secs => $1)
                 RETURNING 1)
               SELECT count(*) AS "abandoned!" FROM gone"#,
            self.pending_grace.as_secs_f64(),
        )
        .fetch_one(&self.pool)
        .await?;
        let mut report = SweepReport { abandoned_uploads, ..SweepReport::default() };
        let mut first_failure = None;
        for _ in 0..MOST_BATCHES {
            let (deleted, failures, claimed) = self.delete_due_batch().await?;
            report.objects_deleted += deleted;
            report.deletions_failed += failures.len();
            first_failure = first_failure.or(failures.into_iter().next());
            if claimed < BATCH as usize {
                break;
            }
        }
        tracing::info!(
            abandoned_uploads = report.abandoned_uploads,
            objects_deleted = report.objects_deleted,
            deletions_failed = report.deletions_failed,
            "files swept"
        );
        match first_failure {
            Some(first) => Err(SweepError::Deletions { failed: report.deletions_failed, first }),
            None => Ok(report),
        }
    }

    /// One batch of due deletions, claimed so that a concurrent sweep takes others: deleted
    /// from the bucket, then from the outbox; what failed is rescheduled with its reason.
    async fn delete_due_batch(&self) -> Result<(usize, Vec<String>, usize), SweepError> {
        let mut tx = self.pool.begin().await?;
        let due = sqlx::query_as!(
            Due,
            "SELECT id, object_key FROM file_deletions WHERE next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok((0, Vec::new(), 0));
        }
        let keys: Vec<String> = due.iter().map(|d| d.object_key.clone()).collect();
        let failed: Vec<(String, String)> = match self.store.delete(&keys).await {
            Ok(failed) => failed,
            Err(error) => keys.iter().map(|key| (key.clone(), error.to_string())).collect(),
        };
        let reason_of = |due: &Due| failed.iter().find(|(key, _)| key == &due.object_key).map(|(_, reason)| reason);
        let done: Vec<i64> = due.iter().filter(|d| reason_of(d).is_none()).map(|d| d.id).collect();
        let (retry_ids, reasons): (Vec<i64>, Vec<String>) =
            due.iter().filter_map(|d| reason_of(d).map(|reason| (d.id, reason.clone()))).unzip();
        sqlx::query!("DELETE FROM file_deletions WHERE id = ANY($1)", &done).execute(&mut *tx).await?;
        sqlx::query!(
            "UPDATE file_deletions d
             SET attempts = d.attempts + 1, last_error = left(f.reason, 1000),
                 next_attempt_at = now() + least(interval '1 minute' * power(2, d.attempts), interval '6 hours')
             FROM unnest($1::bigint[], $2::text[]) AS f(id, reason)
             WHERE d.id = f.id",
            &retry_ids,
            &reasons,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let failures = failed.into_iter().map(|(key, reason)| format!("{key}: {reason}")).collect();
        Ok((done.len(), failures, due.len()))
    }
}

impl shared::runtime::FromSettings for FilesWorker {
    /// Reads `SERVICE_DATABASE_URL` (an `app_files` login), `FILES_BUCKET` and
    /// `FILES_PENDING_GRACE_SECS` (default an hour).
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        Ok(Self {
            pool: shared::db::connect_as(&database, FUNCTION).await?,
            store: FileStore::connect(settings.require("FILES_BUCKET")?).await,
            pending_grace: Duration::from_secs(parse_or(&lookup, "FILES_PENDING_GRACE_SECS", 3600)?),
        })
    }
}

/// Every scheduled invocation sweeps, whatever its input (EventBridge's scheduled event).
impl shared::runtime::Worker for FilesWorker {
    const NAME: &'static str = FUNCTION;
    type Task = serde::de::IgnoredAny;

    async fn run_task(&self, _: serde::de::IgnoredAny) -> Result<serde_json::Value, shared::runtime::Error> {
        Ok(serde_json::to_value(self.sweep().await?)?)
    }
}

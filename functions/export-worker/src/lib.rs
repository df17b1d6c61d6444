//! The `export-worker` function: writes a workspace's archive to S3.
//!
//! SQS messages carry an export id. The worker claims the export (pending, or running past the
//! time a worker can live), reads every table of the workspace in one read-only snapshot
//! (`REPEATABLE READ`), streams each row as a JSON line into a gzip multipart upload, then writes
//! the manifest and marks the export succeeded. Which tables and columns go in comes from the
//! catalog and the export role's grants, so a new tenant table is exported once it is granted,
//! and a secret column never is. On its schedule (`{"task": "sweep"}`) it puts open exports on
//! the queue: the API writes the request and holds no SQS client.

pub mod archive;
mod files;
mod tables;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};
use shared::config::{DatabaseConfig, Settings, parse_or};
use shared::exports;
use shared::queue::Queue;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::archive::{ArchiveError, ArchiveWriter};
use crate::tables::Table;

pub const FUNCTION: &str = "export-worker";
/// A running export older than this (in seconds) lost its worker (Lambda stops at 15 minutes).
const STALE_AFTER_SECS: f64 = 16.0 * 60.0;
/// Attempts before an export is marked failed.
pub const MAX_ATTEMPTS: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exported {
        rows: u64,
        bytes: u64,
    },
    /// Finished before (a redelivered message) or failed for good.
    Settled,
    /// Another worker is writing it.
    Running,
    /// No such export (its workspace was deleted with it).
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not an export id: {0}")]
    Malformed(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Catalog(String),
}

pub struct Exporter {
    /// An `app_exporter` login.
    pub pool: PgPool,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// Where the sweep puts open exports.
    pub queue: Option<Queue>,
    /// Compressed bytes per uploaded part (at least S3's 5 MiB).
    pub part_bytes: usize,
    /// The files bucket, whose ready files each archive copies; without one an archive holds
    /// the file rows only.
    pub files_bucket: Option<String>,
}

struct Claimed {
    workspace_id: Uuid,
    attempts: i32,
}

impl Exporter {
    #[tracing::instrument(skip(self))]
    pub async fn export(&self, export_id: &str) -> Result<Outcome, ExportError> {
        let id: Uuid =
            export_id.trim().parse().map_err(|_| ExportError::Malformed(export_id.chars().take(64).collect()))?;
        let claimed: Option<Claimed> = sqlx::query_as!(
            Claimed,
            "UPDATE workspace_exports
             SET status = 'running', started_at = now(), attempts = attempts + 1, error = NULL
             WHERE id = $1 AND attempts < $2
               AND (status = 'pending' OR (status = 'running' AND started_at < now() - make_interval(secs => $3)))
             RETURNING workspace_id, attempts",
            id,
            MAX_ATTEMPTS,
            STALE_AFTER_SECS,
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(claimed) = claimed else {
            let status: Option<String> = sqlx::query_scalar!("SELECT status FROM workspace_exports WHERE id = $1", id)
                .fetch_optional(&self.pool)
                .await?;
            return Ok(match status.as_deref() {
                None => Outcome::Gone,
                Some("running") => Outcome::Running,
                Some(_) => Outcome::Settled,
            });
        };
        match self.write_archive(id, claimed.workspace_id).await {
            Ok(summary) => {
                sqlx::query!(
                    "UPDATE workspace_exports
                     SET status = 'succeeded', finished_at = now(), data_key = $2, manifest_key = $3, bytes = $4,
                         row_count = $5, tables = $6, expires_at = now() + make_interval(days => $7)
                     WHERE id = $1",
                    id,
                    &summary.data_key,
                    &summary.manifest_key,
                    summary.bytes as i64,
                    summary.rows as i64,
                    &summary.tables,
                    exports::RETENTION_DAYS as i32,
                )
                .execute(&self.pool)
                .await?;
                Ok(Outcome::Exported { rows: summary.rows, bytes: summary.bytes })
            }
            Err(error) => {
                // Retried by SQS and the sweep until the attempts run out.
                let final_attempt = claimed.attempts >= MAX_ATTEMPTS;
                sqlx::query!(
                    "UPDATE workspace_exports
                     SET status = CASE WHEN $3 THEN 'failed' ELSE 'pending' END, error = left($2, 500),
                         finished_at = CASE WHEN $3 THEN now() END
                     WHERE id = $1",
                    id,
                    error.to_string(),
                    final_attempt,
                )
                .execute(&self.pool)
                .await?;
                Err(error)
            }
        }
    }

    /// Streams the workspace's rows into the data object from one snapshot, then writes the
    /// manifest.
    async fn write_archive(&self, export_id: Uuid, workspace_id: Uuid) -> Result<Summary, ExportError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        // A big table streams for longer than a request's statement may run.
        let snapshot_at: OffsetDateTime = sqlx::query_scalar!(
            r#"SELECT now() AS "snapshot_at!" FROM (SELECT set_config('app.export_workspace', $1, true),
                                       set_config('statement_timeout', '840s', true)) settings"#,
            workspace_id.to_string(),
        )
        .fetch_one(&mut *tx)
        .await?;
        let catalog = tables::catalog(&mut tx).await?;
        let data_key = exports::data_key(workspace_id, export_id);
        let mut writer = ArchiveWriter::start(&self.s3, &self.bucket, data_key.clone(), self.part_bytes).await?;
        let mut counts = Vec::with_capacity(catalog.exported.len());
        for table in &catalog.exported {
            match stream_table(&mut tx, &mut writer, table, workspace_id).await {
                Ok(rows) => counts.push(rows),
                Err(error) => {
                    writer.abort().await;
                    return Err(error);
                }
            }
        }
        let ready_files = match &self.files_bucket {
            Some(_) => files::ready(&mut tx, workspace_id).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        let stored = writer.finish().await?;
        let files = match &self.files_bucket {
            Some(files_bucket) => {
                files::copy_into_archive(&self.s3, files_bucket, &self.bucket, workspace_id, export_id, &ready_files)
                    .await?
            }
            None => json!({"content": "not included: this deployment has no files bucket", "count": 0, "items": []}),
        };
        let rows: u64 = counts.iter().sum();
        let manifest = json!({
            "format": exports::FORMAT,
            "export_id": export_id,
            "workspace_id": workspace_id,
            "snapshot_at": snapshot_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "data": {
                "object": "data.jsonl.gz",
                "compression": "gzip",
                "content": "one JSON object per line: {\"table\": <name>, \"row\": <the row's columns>}",
                "bytes": stored.bytes,
                "sha256": stored.sha256,
                "lines": stored.lines,
            },
            "tables": catalog.exported.iter().zip(&counts).map(|(t, rows)| json!({
                "name": t.name, "rows": rows, "columns": t.columns, "withheld_columns": t.withheld,
            })).collect::<Vec<_>>(),
            "files": files,
            "not_exported": catalog.not_exported.iter().map(|name| json!({
                "table": name, "reason": tables::why_not_exported(name),
            })).collect::<Vec<_>>(),
        });
        let manifest_key = exports::manifest_key(workspace_id, export_id);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&manifest_key)
            .content_type("application/json")
            .body(serde_json::to_vec_pretty(&manifest).unwrap_or_default().into())
            .send()
            .await
            .map_err(|e| ArchiveError::S3 {
                step: "PutObject",
                reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            })?;
        let tables = catalog.exported.iter().zip(&counts).map(|(t, rows)| (t.name.clone(), json!(rows))).collect();
        Ok(Summary { data_key, manifest_key, bytes: stored.bytes, rows, tables: Value::Object(tables) })
    }

    /// Puts open exports on the queue (new ones, and those whose worker is gone), and settles
    /// those whose attempts ran out.
    pub async fn sweep(&self) -> Result<usize, ExportError> {
        sqlx::query!(
            "UPDATE workspace_exports SET status = 'failed', finished_at = now(),
                    error = coalesce(error, 'the export did not finish in time')
             WHERE status = 'running' AND started_at < now() - make_interval(secs => $2) AND attempts >= $1",
            MAX_ATTEMPTS,
            STALE_AFTER_SECS,
        )
        .execute(&self.pool)
        .await?;
        let Some(queue) = &self.queue else { return Ok(0) };
        let ids: Vec<Uuid> = sqlx::query_scalar!(
            "UPDATE workspace_exports SET enqueued_at = now()
             WHERE id IN (SELECT id FROM workspace_exports
                          WHERE (status = 'pending' AND (enqueued_at IS NULL OR enqueued_at < now() - interval '5 minutes'))
                             OR (status = 'running' AND started_at < now() - make_interval(secs => $1))
                          ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            STALE_AFTER_SECS,
        )
        .fetch_all(&self.pool)
        .await?;
        let bodies: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        if let Err(error) = queue.send_all(&bodies).await {
            // Left marked: the sweep after the window tries again.
            tracing::warn!(%error, "could not enqueue exports");
        }
        Ok(ids.len())
    }
}

impl shared::runtime::FromSettings for Exporter {
    /// Reads `SERVICE_DATABASE_URL` (an `app_exporter` login), `EXPORTS_BUCKET`,
    /// `EXPORT_QUEUE_URL`, `EXPORT_PART_BYTES` (the multipart upload's part size: 8 MiB by
    /// default, at least S3's 5 MiB) and `FILES_BUCKET` (the files each archive copies).
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        let queue = match settings.get("EXPORT_QUEUE_URL") {
            Some(url) => Some(Queue::connect(url).await),
            None => None,
        };
        Ok(Self {
            pool: shared::db::connect_as(&database, FUNCTION).await?,
            s3: exports::client().await,
            bucket: settings.require("EXPORTS_BUCKET")?,
            queue,
            part_bytes: parse_or(&lookup, "EXPORT_PART_BYTES", 8 * 1024 * 1024)?,
            files_bucket: settings.get("FILES_BUCKET"),
        })
    }
}

struct Summary {
    data_key: String,
    manifest_key: String,
    bytes: u64,
    rows: u64,
    tables: Value,
}

/// Writes a table's rows of the workspace as lines; returns how many.
async fn stream_table(
    tx: &mut sqlx::PgConnection,
    writer: &mut ArchiveWriter<'_>,
    table: &Table,
    workspace_id: Uuid,
) -> Result<u64, ExportError> {
    let mut select = table.select_lines(workspace_id)?;
    let mut rows = select.build_query_scalar::<String>().fetch(&mut *tx);
    let mut count = 0;
    while let Some(line) = rows.try_next().await? {
        writer.write_line(line.as_bytes()).await?;
        count += 1;
    }
    Ok(count)
}

/// Exports each message's workspace; the failed ones are retried by SQS and dead-lettered.
pub async fn handle_batch(exporter: &Exporter, event: SqsEvent) -> SqsBatchResponse {
    shared::runtime::batch::each(event, "export", shared::runtime::batch::Policy::Sequential, |body| async move {
        exporter.export(&body).await
    })
    .await
}

shared::sweeping_worker!(Exporter, FUNCTION, handle_batch);

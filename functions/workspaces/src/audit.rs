//! A workspace's audit log, for its owners and admins: every change to its data, newest first,
//! with filters, a page at a time or as one NDJSON export. The rows are written by the database
//! (triggers), never by this code.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shared::auth::Caller;
use shared::db::TenantTx;
use shared::http::extract::{Path, Query};
use shared::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use shared::openapi::OpenApiRouter;
use shared::{ApiError, AppState};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    /// `user:<id>`, `api_key:<id>`, or a service such as `billing-worker`.
    actor: Option<String>,
    /// `<table>.<insert|update|delete>`, or a named action such as `subscription.changed`.
    action: Option<String>,
    table: Option<String>,
    row_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    format: Option<String>,
}

/// The filters, checked: what the query asks for beyond the page.
#[derive(Clone)]
struct Filters {
    actor: Option<String>,
    action: Option<String>,
    table: Option<String>,
    row_id: Option<String>,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
}

#[derive(Serialize, ToSchema)]
struct AuditEntry {
    /// The entry's position in the workspace's hash chain (1, 2, ...).
    seq: i64,
    id: Uuid,
    actor: String,
    action: String,
    table_name: Option<String>,
    row_id: Option<String>,
    /// `{field: {old, new}}` for a row change (only `new` for an insert, `old` for a delete).
    changes: Option<serde_json::Value>,
    details: serde_json::Value,
    request_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// This entry's link in the chain (hex SHA-256).
    hash: String,
}

#[derive(Serialize, ToSchema)]
struct AuditPage {
    items: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

/// Rows in one NDJSON step: the export never holds more than this in memory.
const EXPORT_BATCH: i64 = 500;

/// Every change in the workspace (owners and admins).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/audit-log", operation_id = "audit_log_list", tag = "audit-log", params(("workspace_id" = Uuid, Path), AuditQuery), responses((status = 200, description = "A page of entries, newest first; with `?format=ndjson` every matching entry, one per line.", content((AuditPage = "application/json"), (AuditEntry = "application/x-ndjson")))))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let before = query.cursor.as_deref().filter(|c| !c.is_empty()).map(parse_cursor).transpose()?;
    let export = match query.format.as_deref() {
        None | Some("json") => false,
        Some("ndjson") => true,
        Some(_) => return Err(ApiError::validation("format", "must be json or ndjson")),
    };
    if let (Some(since), Some(until)) = (query.since, query.until)
        && since > until
    {
        return Err(ApiError::validation("until", "must not be before since"));
    }
    let filters = Filters {
        actor: query.actor,
        action: query.action,
        table: query.table,
        row_id: query.row_id,
        since: query.since,
        until: query.until,
    };
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    if export {
        return Ok(ndjson(tx, workspace_id, filters, before));
    }
    let mut items = fetch(&mut tx, workspace_id, &filters, before, i64::from(limit) + 1).await?;
    tx.commit().await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(|entry| entry.seq.to_string()) } else { None };
    Ok(Json(AuditPage { items, next_cursor }).into_response())
}

fn parse_cursor(cursor: &str) -> Result<i64, ApiError> {
    cursor.parse::<i64>().ok().filter(|seq| *seq > 0).ok_or_else(|| ApiError::BadRequest {
        code: "invalid_cursor",
        detail: "The cursor is not one this API returned.".into(),
    })
}

async fn fetch(
    tx: &mut TenantTx,
    workspace_id: Uuid,
    filters: &Filters,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as!(
        AuditEntry,
        r#"SELECT seq, id, actor, action, table_name, row_id, changes, details, request_id, created_at,
                encode(hash, 'hex') AS "hash!"
         FROM audit_log
         WHERE workspace_id = $1 AND ($2::bigint IS NULL OR seq < $2)
           AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
           AND ($5::text IS NULL OR table_name = $5) AND ($6::text IS NULL OR row_id = $6)
           AND ($7::timestamptz IS NULL OR created_at >= $7) AND ($8::timestamptz IS NULL OR created_at < $8)
         ORDER BY seq DESC LIMIT $9"#,
        workspace_id,
        before,
        filters.actor.as_deref(),
        filters.action.as_deref(),
        filters.table.as_deref(),
        filters.row_id.as_deref(),
        filters.since,
        filters.until,
        limit,
    )
    .fetch_all(&mut **tx)
    .await
}

/// The whole filtered log, newest first, one JSON object per line, read in batches inside the
/// request's transaction (one consistent snapshot of the log).
fn ndjson(tx: TenantTx, workspace_id: Uuid, filters: Filters, before: Option<i64>) -> Response {
    struct Export {
        tx: Option<TenantTx>,
        before: Option<i64>,
    }
    let stream = futures_util::stream::unfold(Export { tx: Some(tx), before }, move |mut export| {
        let filters = filters.clone();
        async move {
            let mut tx = export.tx.take()?;
            match fetch(&mut tx, workspace_id, &filters, export.before, EXPORT_BATCH).await {
                Ok(rows) if rows.is_empty() => {
                    let _ = tx.commit().await;
                    None
                }
                Ok(rows) => {
                    let mut chunk = Vec::new();
                    for row in &rows {
                        // An entry is plain data; it always serializes.
                        if serde_json::to_writer(&mut chunk, row).is_ok() {
                            chunk.push(b'\n');
                        }
                    }
                    let next = Export { tx: Some(tx), before: rows.last().map(|row| row.seq) };
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(error) => {
                    // The status line is already sent: end the body early, and say so in the log.
                    tracing::error!(%error, "audit export failed mid-stream");
                    Some((Err(std::io::Error::other(error)), Export { tx: None, before: None }))
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

//! A workspace's data export: owners ask for an archive of everything and follow it until its
//! download links are ready. The export worker writes it (see `export-worker`); the links are
//! signed here, for a quarter of an hour, and only while the archive is kept.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::auth::Caller;
use shared::exports;
use shared::http::extract::{Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::openapi::OpenApiRouter;
use shared::{ApiError, AppState};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, request)).routes(routes!(show)).routes(routes!(archived_file))
}

#[derive(Deserialize)]
struct ExportPath {
    workspace_id: Uuid,
    export_id: Uuid,
}

#[derive(Deserialize)]
struct ArchivedFilePath {
    workspace_id: Uuid,
    export_id: Uuid,
    file_id: Uuid,
}

#[derive(Serialize, ToSchema)]
struct ArchivedFileLink {
    /// Downloads the file's copy in the archive, as an attachment under its name.
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    links_expire_at: OffsetDateTime,
}

struct Row {
    id: Uuid,
    status: String,
    requested_by: Option<Uuid>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    bytes: Option<i64>,
    row_count: Option<i64>,
    tables: Option<Value>,
    error: Option<String>,
    expires_at: Option<OffsetDateTime>,
    data_key: Option<String>,
    manifest_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct ExportView {
    id: Uuid,
    /// pending, running, succeeded, failed, or expired (succeeded, and its archive removed).
    status: String,
    requested_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    /// The compressed archive's size.
    bytes: Option<i64>,
    rows: Option<i64>,
    /// Rows per table.
    tables: Option<Value>,
    error: Option<String>,
    /// When the archive is removed.
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    download: Option<Download>,
}

#[derive(Serialize, ToSchema)]
struct Download {
    data_url: String,
    manifest_url: String,
    /// When these links stop working (ask again for fresh ones).
    #[serde(with = "time::serde::rfc3339")]
    links_expire_at: OffsetDateTime,
}

impl ExportView {
    fn from_row(row: Row, now: OffsetDateTime) -> (Self, Option<(String, String)>) {
        let kept = row.status == "succeeded" && row.expires_at.is_some_and(|at| at > now);
        let status = if row.status == "succeeded" && !kept { "expired".to_owned() } else { row.status };
        let keys = match (kept, row.data_key, row.manifest_key) {
            (true, Some(data), Some(manifest)) => Some((data, manifest)),
            _ => None,
        };
        let view = Self {
            id: row.id,
            status,
            requested_by: row.requested_by,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            bytes: row.bytes,
            rows: row.row_count,
            tables: row.tables,
            error: row.error,
            expires_at: row.expires_at,
            download: None,
        };
        (view, keys)
    }
}

fn bucket(state: &AppState) -> Result<&str, ApiError> {
    state
        .config
        .exports_bucket
        .as_deref()
        .ok_or_else(|| ApiError::ServiceUnavailable("Exports are not set up in this deployment.".into()))
}

/// Asks for an archive of the whole workspace (owners). One at a time: while one is being
/// written, another request is a conflict.
/// Asks for an archive of the whole workspace (owners; one at a time).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/exports", operation_id = "exports_create", tag = "exports", params(("workspace_id" = Uuid, Path)), responses((status = 202, body = ExportView), (status = 409)))]
async fn request(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    bucket(&state)?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_owner("export a workspace")?;
    let row = sqlx::query_as!(
        Row,
        "INSERT INTO workspace_exports (id, workspace_id, requested_by) VALUES ($2, $1, app.current_user_id())
         RETURNING id, status, requested_by, created_at, started_at, finished_at, bytes, row_count, tables, error,
                   expires_at, data_key, manifest_key",
        workspace_id,
        Uuid::now_v7(),
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(%workspace_id, export_id = %row.id, "export requested");
    Ok((StatusCode::ACCEPTED, Json(ExportView::from_row(row, OffsetDateTime::now_utc()).0)))
}

/// The workspace's exports, newest first (paged); links only on the export itself.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/exports", operation_id = "exports_list", tag = "exports", params(("workspace_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<ExportView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<ExportView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_owner("see a workspace's exports")?;
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, status, requested_by, created_at, started_at, finished_at, bytes, row_count, tables, error,
                expires_at, data_key, manifest_key
         FROM workspace_exports WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        workspace_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let now = OffsetDateTime::now_utc();
    let views = rows.into_iter().map(|row| ExportView::from_row(row, now).0).collect();
    Ok(Json(Page::from_rows(views, &page, |e: &ExportView| e.id)))
}

/// An export's state; once it succeeded, fresh download links for its data and manifest.
/// One export's state and, once written, download links for 15 minutes.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/exports/{export_id}", operation_id = "exports_read", tag = "exports", params(("workspace_id" = Uuid, Path), ("export_id" = Uuid, Path)), responses((status = 200, body = ExportView)))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ExportPath>,
) -> Result<Json<ExportView>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_owner("see a workspace's exports")?;
    let row = sqlx::query_as!(
        Row,
        "SELECT id, status, requested_by, created_at, started_at, finished_at, bytes, row_count, tables, error,
                    expires_at, data_key, manifest_key
             FROM workspace_exports WHERE workspace_id = $1 AND id = $2",
        path.workspace_id,
        path.export_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("export"))?;
    tx.commit().await?;
    let now = OffsetDateTime::now_utc();
    let (mut view, keys) = ExportView::from_row(row, now);
    if let Some((data_key, manifest_key)) = keys {
        let bucket = bucket(&state)?;
        let s3 = exports::shared_client().await;
        let data_url = exports::download_link(s3, bucket, &data_key).await.map_err(ApiError::internal)?;
        let manifest_url = exports::download_link(s3, bucket, &manifest_key).await.map_err(ApiError::internal)?;
        view.download = Some(Download { data_url, manifest_url, links_expire_at: now + exports::LINK_TTL });
    }
    Ok(Json(view))
}

/// A link to one file's copy in an export's archive (owners), for 15 minutes: the manifest's
/// `files.items` lists the files the archive holds.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/exports/{export_id}/files/{file_id}", operation_id = "exports_file_read", tag = "exports", params(("workspace_id" = Uuid, Path), ("export_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 200, body = ArchivedFileLink)))]
async fn archived_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ArchivedFilePath>,
) -> Result<Json<ArchivedFileLink>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_owner("see a workspace's exports")?;
    let kept = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspace_exports
                          WHERE workspace_id = $1 AND id = $2 AND status = 'succeeded' AND expires_at > now()) AS "kept!""#,
        path.workspace_id,
        path.export_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if !kept {
        return Err(ApiError::NotFound("export"));
    }
    let bucket = bucket(&state)?;
    let s3 = exports::shared_client().await;
    let key = exports::file_key(path.workspace_id, path.export_id, path.file_id);
    if !exports::holds(s3, bucket, &key).await.map_err(ApiError::internal)? {
        return Err(ApiError::NotFound("file"));
    }
    let url = exports::download_link(s3, bucket, &key).await.map_err(ApiError::internal)?;
    Ok(Json(ArchivedFileLink { url, links_expire_at: OffsetDateTime::now_utc() + exports::LINK_TTL }))
}

//! What each file route does, for a file of either parent (a deliverable or a comment).

use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::auth::Caller;
use shared::db::TenantTx;
use shared::files::upload_form::SignedForm;
use shared::files::{self, ContentType, FileName, FileStore, StoreError};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::Validator;
use shared::{ApiError, AppState};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::ItemPath;
use crate::projects::project_found;

/// What a file is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    Deliverable,
    Comment,
}

impl Parent {
    fn noun(self) -> &'static str {
        match self {
            Parent::Deliverable => "deliverable",
            Parent::Comment => "comment",
        }
    }

    /// The parent's id in the column of its kind, the other one empty.
    fn columns(self, id: Uuid) -> (Option<Uuid>, Option<Uuid>) {
        match self {
            Parent::Deliverable => (Some(id), None),
            Parent::Comment => (None, Some(id)),
        }
    }
}

/// Path of one file of a deliverable or a comment.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct FilePath {
    workspace_id: Uuid,
    project_id: Uuid,
    item_id: Uuid,
    file_id: Uuid,
}

impl FilePath {
    fn parent(&self) -> ItemPath {
        ItemPath { workspace_id: self.workspace_id, project_id: self.project_id, item_id: self.item_id }
    }

    fn object_key(&self) -> String {
        files::object_key(self.workspace_id, self.file_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "file_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Requested; not yet uploaded and confirmed. Only members see it.
    Pending,
    /// Confirmed: listed and downloadable.
    Ready,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    id: Uuid,
    project_id: Uuid,
    /// The deliverable it is attached to, or `null` for a comment's file.
    deliverable_id: Option<Uuid>,
    /// The comment it is attached to, or `null` for a deliverable's file.
    comment_id: Option<Uuid>,
    name: String,
    content_type: String,
    size_bytes: i64,
    state: FileState,
    uploaded_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Until when the upload form works (a pending file past it is discarded).
    #[serde(with = "time::serde::rfc3339")]
    upload_expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    confirmed_at: Option<OffsetDateTime>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name, as the download will offer it.
    #[schema(schema_with = FileName::schema)]
    name: String,
    #[schema(schema_with = ContentType::schema)]
    content_type: String,
    /// Exactly the bytes that will be uploaded.
    #[schema(minimum = 1, maximum = 5_368_709_120_i64)]
    size: u64,
}

struct ValidUpload {
    name: FileName,
    content_type: ContentType,
    size: i64,
}

impl UploadRequest {
    fn parse(&self) -> Result<ValidUpload, ApiError> {
        let mut v = Validator::default();
        let name = v.check(FileName::parse("name", &self.name));
        let content_type = v.check(ContentType::parse("content_type", &self.content_type));
        if !(1..=files::MAX_FILE_BYTES).contains(&self.size) {
            v.refuse("size", format!("must be from 1 to {} bytes (5 GiB)", files::MAX_FILE_BYTES));
        }
        let size = self.size as i64;
        v.finish(|| Some(ValidUpload { name: name?, content_type: content_type?, size }))
    }
}

/// The form to post the file with: `url`, then `fields` in any order, then the file itself
/// as the last field, named `file` (multipart/form-data). It works until `expires_at`, for this
/// exact size and content type only.
#[derive(Serialize, ToSchema)]
pub struct UploadForm {
    url: String,
    #[schema(value_type = Object)]
    fields: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct UploadAnswer {
    file: FileView,
    upload: UploadForm,
}

#[derive(Serialize, ToSchema)]
pub struct DownloadAnswer {
    file: FileView,
    /// A GET of this URL downloads the file as an attachment under its name.
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// The files bucket, or 503 in a deployment without one.
async fn store(state: &AppState) -> Result<&'static FileStore, ApiError> {
    match &state.config.files_bucket {
        Some(bucket) => Ok(FileStore::shared(bucket).await),
        None => Err(ApiError::ServiceUnavailable("Files are not set up in this deployment.".into())),
    }
}

fn unavailable(error: StoreError) -> ApiError {
    tracing::error!(%error, "the files bucket failed");
    ApiError::ServiceUnavailable("The file store did not answer; retry.".into())
}

/// The parent, if the caller can see it in this project (a contact: only when shared).
async fn require_parent(tx: &mut TenantTx, parent: Parent, path: ItemPath) -> Result<(), ApiError> {
    let (deliverable, comment) = parent.columns(path.item_id);
    let visible = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM deliverables WHERE workspace_id = $1 AND project_id = $2 AND id = $3)
               OR EXISTS (SELECT 1 FROM comments WHERE workspace_id = $1 AND project_id = $2 AND id = $4) AS "visible!""#,
        path.workspace_id,
        path.project_id,
        deliverable,
        comment,
    )
    .fetch_one(&mut **tx)
    .await?;
    if visible { Ok(()) } else { Err(ApiError::NotFound(parent.noun())) }
}

async fn find_file(tx: &mut TenantTx, parent: Parent, path: FilePath, for_update: bool) -> Result<FileView, ApiError> {
    let (deliverable, comment) = parent.columns(path.item_id);
    // Two statements rather than a formatted one: each is checked at compile time.
    let file = if for_update {
        sqlx::query_as!(
            FileView,
            r#"SELECT id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                      state AS "state: FileState", uploaded_by, created_at, upload_expires_at, confirmed_at
               FROM files
               WHERE workspace_id = $1 AND project_id = $2 AND id = $3
                 AND deliverable_id IS NOT DISTINCT FROM $4 AND comment_id IS NOT DISTINCT FROM $5
               FOR UPDATE"#,
            path.workspace_id,
            path.project_id,
            path.file_id,
            deliverable,
            comment,
        )
        .fetch_optional(&mut **tx)
        .await?
    } else {
        sqlx::query_as!(
            FileView,
            r#"SELECT id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                      state AS "state: FileState", uploaded_by, created_at, upload_expires_at, confirmed_at
               FROM files
               WHERE workspace_id = $1 AND project_id = $2 AND id = $3
                 AND deliverable_id IS NOT DISTINCT FROM $4 AND comment_id IS NOT DISTINCT FROM $5"#,
            path.workspace_id,
            path.project_id,
            path.file_id,
            deliverable,
            comment,
        )
        .fetch_optional(&mut **tx)
        .await?
    };
    file.ok_or(ApiError::NotFound("file"))
}

/// The parent's ready files, newest first; each parent's page walks its own index.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    parent: Parent,
    path: ItemPath,
    query: PageQuery,
) -> Result<Json<Page<FileView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, _access, project) = state.open_project(caller, path.workspace_id, path.project_id).await?;
    project_found(project)?;
    require_parent(&mut tx, parent, path).await?;
    let rows = match parent {
        Parent::Deliverable => {
            sqlx::query_as!(
                FileView,
                r#"SELECT id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                          state AS "state: FileState", uploaded_by, created_at, upload_expires_at, confirmed_at
                   FROM files
                   WHERE workspace_id = $1 AND deliverable_id = $2 AND project_id = $3 AND state = 'ready'
                     AND ($4::uuid IS NULL OR id < $4)
                   ORDER BY id DESC LIMIT $5"#,
                path.workspace_id,
                path.item_id,
                path.project_id,
                page.before,
                page.fetch_limit(),
            )
            .fetch_all(&mut *tx)
            .await?
        }
        Parent::Comment => {
            sqlx::query_as!(
                FileView,
                r#"SELECT id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                          state AS "state: FileState", uploaded_by, created_at, upload_expires_at, confirmed_at
                   FROM files
                   WHERE workspace_id = $1 AND comment_id = $2 AND project_id = $3 AND state = 'ready'
                     AND ($4::uuid IS NULL OR id < $4)
                   ORDER BY id DESC LIMIT $5"#,
                path.workspace_id,
                path.item_id,
                path.project_id,
                page.before,
                page.fetch_limit(),
            )
            .fetch_all(&mut *tx)
            .await?
        }
    };
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |f| f.id)))
}

/// Asks to upload a file (writers): the pending file and the signed form to post it with.
pub async fn request_upload(
    state: &AppState,
    caller: &Caller,
    parent: Parent,
    path: ItemPath,
    input: UploadRequest,
) -> Result<(StatusCode, Json<UploadAnswer>), ApiError> {
    let valid = input.parse()?;
    let store = store(state).await?;
    let (mut tx, access, project) = state.open_project(caller, path.workspace_id, path.project_id).await?;
    access.require_writer()?;
    project_found(project)?;
    require_parent(&mut tx, parent, path).await?;
    let id = Uuid::now_v7();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).map_err(ApiError::internal)?;
    let expires_at = now + files::UPLOAD_TTL;
    let (deliverable, comment) = parent.columns(path.item_id);
    let file = sqlx::query_as!(
        FileView,
        r#"INSERT INTO files (id, workspace_id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                              uploaded_by, upload_expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, app.current_user_id(), $9)
           RETURNING id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                     state AS "state: FileState", uploaded_by, created_at, upload_expires_at, confirmed_at"#,
        id,
        path.workspace_id,
        path.project_id,
        deliverable,
        comment,
        valid.name.as_str(),
        valid.content_type.as_str(),
        valid.size,
        expires_at,
    )
    .fetch_one(&mut *tx)
    .await?;
    // Signed before the row commits: a form that cannot be signed leaves no pending file.
    let SignedForm { url, fields } = store
        .upload_form(
            &files::object_key(path.workspace_id, id),
            valid.content_type.as_str(),
            valid.size as u64,
            expires_at,
        )
        .await
        .map_err(unavailable)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(UploadAnswer { file, upload: UploadForm { url, fields, expires_at } })))
}

/// Confirms an upload (writers): the object must be in the bucket, of the declared size and
/// content type, uploaded before the form expired. An upload that is not what was declared, or
/// came too late, is discarded (the file and its object); one not there yet changes nothing.
pub async fn confirm(
    state: &AppState,
    caller: &Caller,
    parent: Parent,
    path: FilePath,
) -> Result<Json<FileView>, ApiError> {
    let store = store(state).await?;
    let (mut tx, access, project) = state.open_project(caller, path.workspace_id, path.project_id).await?;
    access.require_writer()?;
    project_found(project)?;
    let file = find_file(&mut tx, parent, path, true).await?;
    if file.state == FileState::Ready {
        tx.commit().await?;
        return Ok(Json(file));
    }
    let key = path.object_key();
    let expires_at = file.upload_expires_at;
    let refusal = match store.head(&key).await.map_err(unavailable)? {
        None if OffsetDateTime::now_utc() <= expires_at => {
            return Err(ApiError::Conflict {
                code: "upload_not_found",
                detail: "Nothing was uploaded for this file yet: post the file through its form, then confirm.".into(),
            });
        }
        None => expired(),
        // S3 refuses a form past its expiry; a local S3 may not, so the time is checked here too.
        Some(object) if object.last_modified.is_some_and(|at| at > expires_at + CLOCK_SKEW) => expired(),
        Some(object) => mismatch(&file, object.size, object.content_type.as_deref()),
    };
    if let Some(refusal) = refusal {
        sqlx::query!("DELETE FROM files WHERE id = $1", path.file_id).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(file_id = %path.file_id, code = refusal.code(), "upload discarded");
        return Err(refusal);
    }
    let file = sqlx::query_as!(
        FileView,
        r#"UPDATE files SET state = 'ready', confirmed_at = now() WHERE id = $1
           RETURNING id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                     state AS "state: FileState", uploaded_by, created_at, upload_expires_at, confirmed_at"#,
        path.file_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    // Before the commit: an object whose file never became ready keeps the tag its lifecycle
    // rule expires it by.
    store.mark_confirmed(&key).await.map_err(unavailable)?;
    tx.commit().await?;
    Ok(Json(file))
}

/// The clocks of S3 and of this function may differ by this much.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

fn expired() -> Option<ApiError> {
    Some(ApiError::Gone {
        code: "upload_expired",
        detail: "The upload form expired before the file was uploaded; the file was discarded. Ask for a new upload."
            .into(),
    })
}

/// The refusal of an object that is not what its file declared.
fn mismatch(file: &FileView, size: i64, content_type: Option<&str>) -> Option<ApiError> {
    let stored_type = content_type.map(str::to_ascii_lowercase);
    let detail = if size != file.size_bytes {
        format!("{size} bytes were uploaded where {} were declared", file.size_bytes)
    } else if stored_type.as_deref() != Some(file.content_type.as_str()) {
        format!(
            "it was uploaded as {} where {} was declared",
            stored_type.as_deref().unwrap_or("no content type"),
            file.content_type
        )
    } else {
        return None;
    };
    Some(ApiError::Conflict {
        code: "upload_mismatch",
        detail: format!("The upload is not what was declared ({detail}); the file was discarded."),
    })
}

/// A link that downloads a ready file for a few minutes.
pub async fn download(
    state: &AppState,
    caller: &Caller,
    parent: Parent,
    path: FilePath,
) -> Result<Json<DownloadAnswer>, ApiError> {
    let store = store(state).await?;
    let (mut tx, _access, project) = state.open_project(caller, path.workspace_id, path.project_id).await?;
    project_found(project)?;
    let file = find_file(&mut tx, parent, path, false).await?;
    tx.commit().await?;
    if file.state != FileState::Ready {
        return Err(ApiError::Conflict {
            code: "file_not_ready",
            detail: "The file's upload is not confirmed yet.".into(),
        });
    }
    let expires_at = OffsetDateTime::now_utc() + files::DOWNLOAD_TTL;
    let url = store.download_link(&path.object_key(), &file.name, &file.content_type).await.map_err(unavailable)?;
    Ok(Json(DownloadAnswer { file, url, expires_at }))
}

/// Deletes a file (writers); its object is deleted from the bucket shortly after, by the files
/// worker. Idempotent.
pub async fn remove(state: &AppState, caller: &Caller, parent: Parent, path: FilePath) -> Result<StatusCode, ApiError> {
    let mut tx = crate::projects::open_item_for_writing(state, caller, path.parent()).await?;
    let (deliverable, comment) = parent.columns(path.item_id);
    sqlx::query!(
        "DELETE FROM files WHERE workspace_id = $1 AND project_id = $2 AND id = $3
           AND deliverable_id IS NOT DISTINCT FROM $4 AND comment_id IS NOT DISTINCT FROM $5",
        path.workspace_id,
        path.project_id,
        path.file_id,
        deliverable,
        comment,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Files on deliverables and on comments, uploaded and downloaded straight through S3.
//!
//! A writer asks for an upload (name, content type, size) and gets a form signed for exactly
//! that object; the file is `pending`, its declared size reserved against the workspace's
//! storage, until the writer confirms it: the object is checked (HeadObject: there, of the
//! declared size and type, uploaded before the form expired) and the file becomes `ready`.
//! Only ready files are listed and downloaded (a link signed for a few minutes, naming the file
//! in `Content-Disposition`); a client contact sees those of deliverables and comments shared
//! with them. The routes of each parent are thin: `handlers` does the work for both.

mod handlers;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use shared::auth::Caller;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::openapi::OpenApiRouter;
use shared::{ApiError, AppState};
use utoipa_axum::routes;

use self::handlers::{DownloadAnswer, FilePath, FileView, Parent, UploadAnswer, UploadRequest};
use crate::model::ItemPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deliverable_files, deliverable_upload))
        .routes(routes!(deliverable_file_remove))
        .routes(routes!(deliverable_file_confirm))
        .routes(routes!(deliverable_file_download))
        .routes(routes!(comment_files, comment_upload))
        .routes(routes!(comment_file_remove))
        .routes(routes!(comment_file_confirm))
        .routes(routes!(comment_file_download))
}

/// The deliverable's ready files, newest first (everyone who sees the deliverable).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files", operation_id = "deliverable_files_list", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<FileView>)))]
async fn deliverable_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<FileView>>, ApiError> {
    handlers::list(&state, &caller, Parent::Deliverable, path, query).await
}

/// Asks to upload a file to the deliverable (writers): answers the pending file and the signed form
/// to post it with. Its size is reserved against the workspace's storage until it is confirmed
/// or discarded.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files", operation_id = "deliverable_files_request_upload", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), request_body = UploadRequest, responses((status = 201, body = UploadAnswer)))]
async fn deliverable_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    extract::Json(input): extract::Json<UploadRequest>,
) -> Result<(StatusCode, Json<UploadAnswer>), ApiError> {
    handlers::request_upload(&state, &caller, Parent::Deliverable, path, input).await
}

/// Confirms an upload (writers): the object must be in the bucket, of the declared size and
/// content type, uploaded before the form expired; confirming a ready file answers it.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}/confirm", operation_id = "deliverable_files_confirm", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 200, body = FileView), (status = 409), (status = 410)))]
async fn deliverable_file_confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<FilePath>,
) -> Result<Json<FileView>, ApiError> {
    handlers::confirm(&state, &caller, Parent::Deliverable, path).await
}

/// A link that downloads a ready file for a few minutes (everyone who sees the file: members
/// of every role, API keys, and client contacts when the deliverable is shared with them).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}/download", operation_id = "deliverable_files_download", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 200, body = DownloadAnswer), (status = 409)))]
async fn deliverable_file_download(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<FilePath>,
) -> Result<Json<DownloadAnswer>, ApiError> {
    handlers::download(&state, &caller, Parent::Deliverable, path).await
}

/// Deletes a file (writers); its object follows within a minute, by the files worker.
/// Idempotent.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}", operation_id = "deliverable_files_delete", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 204)))]
async fn deliverable_file_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<FilePath>,
) -> Result<StatusCode, ApiError> {
    handlers::remove(&state, &caller, Parent::Deliverable, path).await
}

/// The comment's ready files, newest first (everyone who sees the comment).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files", operation_id = "comment_files_list", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<FileView>)))]
async fn comment_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<FileView>>, ApiError> {
    handlers::list(&state, &caller, Parent::Comment, path, query).await
}

/// Asks to upload a file to the comment (writers): answers the pending file and the signed form
/// to post it with. Its size is reserved against the workspace's storage until it is confirmed
/// or discarded.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files", operation_id = "comment_files_request_upload", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), request_body = UploadRequest, responses((status = 201, body = UploadAnswer)))]
async fn comment_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    extract::Json(input): extract::Json<UploadRequest>,
) -> Result<(StatusCode, Json<UploadAnswer>), ApiError> {
    handlers::request_upload(&state, &caller, Parent::Comment, path, input).await
}

/// Confirms an upload (writers): the object must be in the bucket, of the declared size and
/// content type, uploaded before the form expired; confirming a ready file answers it.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}/confirm", operation_id = "comment_files_confirm", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 200, body = FileView), (status = 409), (status = 410)))]
async fn comment_file_confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<FilePath>,
) -> Result<Json<FileView>, ApiError> {
    handlers::confirm(&state, &caller, Parent::Comment, path).await
}

/// A link that downloads a ready file for a few minutes (everyone who sees the file: members
/// of every role, API keys, and client contacts when the comment is shared with them).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}/download", operation_id = "comment_files_download", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 200, body = DownloadAnswer), (status = 409)))]
async fn comment_file_download(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<FilePath>,
) -> Result<Json<DownloadAnswer>, ApiError> {
    handlers::download(&state, &caller, Parent::Comment, path).await
}

/// Deletes a file (writers); its object follows within a minute, by the files worker.
/// Idempotent.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}", operation_id = "comment_files_delete", tag = "files", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path), ("file_id" = Uuid, Path)), responses((status = 204)))]
async fn comment_file_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<FilePath>,
) -> Result<StatusCode, ApiError> {
    handlers::remove(&state, &caller, Parent::Comment, path).await
}

//! Comments on a project. Members choose whether a comment is visible to the client; a client
//! contact reads and writes only client-visible comments on its client's projects. Authors edit
//! their own comments; owners and admins may delete any.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::access::Access;
use shared::auth::Caller;
use shared::db::TenantTx;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::{Text, Validator};
use shared::{ApiError, AppState};
use uuid::Uuid;

use crate::model::{CommentView, ItemPath, ProjectPath};
use crate::projects::{project_found, require_project};
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, edit, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentInput {
    #[schema(schema_with = Text::non_blank_schema)]
    body: String,
    /// Ignored for client contacts, whose comments are always client-visible.
    client_visible: Option<bool>,
}

impl CommentInput {
    fn parse(&self) -> Result<Text, ApiError> {
        let mut v = Validator::default();
        let body = v.check(Text::parse_non_blank("body", &self.body));
        v.finish(|| body)
    }

    fn visibility(&self, access: Access) -> Result<bool, ApiError> {
        match access {
            Access::ClientContact => Ok(true),
            Access::Member(_) => {
                access.require_writer()?;
                Ok(self.client_visible.unwrap_or(false))
            }
        }
    }
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments", operation_id = "comments_list", tag = "comments", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<CommentView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<CommentView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, _access, project) = state.open_project(&caller, path.workspace_id, path.project_id).await?;
    project_found(project)?;
    let rows = sqlx::query_as!(
        CommentView,
        r#"SELECT id, project_id, author_id, body, client_visible, created_at, updated_at
         FROM comments
         WHERE workspace_id = $1 AND project_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"#,
        path.workspace_id,
        path.project_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |c| c.id)))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments", operation_id = "comments_create", tag = "comments", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = CommentInput, responses((status = 201, body = CommentView)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    extract::Json(input): extract::Json<CommentInput>,
) -> Result<(StatusCode, Json<CommentView>), ApiError> {
    let body = input.parse()?;
    let (mut tx, access, project) = state.open_project(&caller, path.workspace_id, path.project_id).await?;
    let client_visible = input.visibility(access)?;
    project_found(project)?;
    let comment = sqlx::query_as!(
        CommentView,
        r#"INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible)
         VALUES ($1, $2, $3, app.current_user_id(), $4, $5)
         RETURNING id, project_id, author_id, body, client_visible, created_at, updated_at"#,
        Uuid::now_v7(),
        path.workspace_id,
        path.project_id,
        body.as_str(),
        client_visible,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}", operation_id = "comments_read", tag = "comments", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), responses((status = 200, body = CommentView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
) -> Result<Json<CommentView>, ApiError> {
    let (mut tx, _access) = state.open_workspace(&caller, path.workspace_id).await?;
    let comment = find(&mut tx, path).await?.ok_or(ApiError::NotFound("comment"))?;
    tx.commit().await?;
    Ok(Json(comment))
}

#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}", operation_id = "comments_replace", tag = "comments", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), request_body = CommentInput, responses((status = 200, body = CommentView)))]
async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    extract::Json(input): extract::Json<CommentInput>,
) -> Result<Json<CommentView>, ApiError> {
    let body = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    let client_visible = input.visibility(access)?;
    let existing = find(&mut tx, path).await?.ok_or(ApiError::NotFound("comment"))?;
    if existing.author_id != Some(caller.user_id) {
        return Err(ApiError::Forbidden("Only the author can edit a comment.".into()));
    }
    let comment = sqlx::query_as!(
        CommentView,
        r#"UPDATE comments SET body = $4, client_visible = $5, updated_at = now()
         WHERE workspace_id = $1 AND project_id = $2 AND id = $3
         RETURNING id, project_id, author_id, body, client_visible, created_at, updated_at"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
        body.as_str(),
        client_visible,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("comment"))?;
    tx.commit().await?;
    Ok(Json(comment))
}

/// Idempotent: deleting a comment that is gone succeeds.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}", operation_id = "comments_delete", tag = "comments", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    let Some(existing) = find(&mut tx, path).await? else {
        require_project(&mut tx, path.project()).await?;
        return Ok(StatusCode::NO_CONTENT);
    };
    let is_author = existing.author_id == Some(caller.user_id);
    // A viewer may have been a member when they wrote it; deleting is writing, so they no longer may.
    let author_may_write = match access {
        Access::ClientContact => true,
        Access::Member(role) => role.writes(),
    };
    let moderates = access.role().is_some_and(|role| role.manages());
    if !(moderates || (is_author && author_may_write)) {
        return Err(ApiError::Forbidden("Only the author, an owner or an admin can delete a comment.".into()));
    }
    sqlx::query!(
        r#"DELETE FROM comments WHERE workspace_id = $1 AND project_id = $2 AND id = $3"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(tx: &mut TenantTx, path: ItemPath) -> Result<Option<CommentView>, ApiError> {
    Ok(sqlx::query_as!(
        CommentView,
        r#"SELECT id, project_id, author_id, body, client_visible, created_at, updated_at
         FROM comments WHERE workspace_id = $1 AND project_id = $2 AND id = $3"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
    )
    .fetch_optional(&mut **tx)
    .await?)
}

//! Create, list, read, rename and delete workspaces.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::auth::Caller;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::openapi::OpenApiRouter;
use shared::validate::{Name, Validator};
use shared::{ApiError, AppState};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::views::WorkspaceView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, rename, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WorkspaceInput {
    #[schema(schema_with = Name::schema)]
    name: String,
}

impl WorkspaceInput {
    fn parse(&self) -> Result<Name, ApiError> {
        let mut v = Validator::default();
        let name = v.check(Name::parse("name", &self.name));
        v.finish(|| name)
    }
}

/// The workspace as the caller sees it (with their role), then a literal WHERE clause.
macro_rules! select_view {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            WorkspaceView,
            r#"SELECT w.id, w.name, w.created_at,
                    coalesce((SELECT m.role::text FROM workspace_members m
                              WHERE m.workspace_id = w.id AND m.user_id = app.current_user_id()),
                             -- An API key is no member: its role is the one it entered with.
                             CASE WHEN w.id = app.entered_workspace()
                                  THEN nullif(current_setting('app.entered_role', true), '') END,
                             'client') AS "role!"
             FROM workspaces w"# + $rest,
            $($arg),*
        )
    };
}

/// Creates a workspace; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/workspaces", operation_id = "workspaces_create", tag = "workspaces",
    request_body = WorkspaceInput, responses((status = 201, body = WorkspaceView)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    extract::Json(input): extract::Json<WorkspaceInput>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let name = input.parse()?;
    let id = Uuid::now_v7();
    let mut tx = state.open_personal(&caller).await?;
    sqlx::query!("SELECT app.create_workspace($1, $2)", id, name.as_str()).execute(&mut *tx).await?;
    let view = select_view!(" WHERE w.id = $1", id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(workspace_id = %id, "workspace created");
    Ok((StatusCode::CREATED, Json(view)))
}

/// The workspaces the caller belongs to (with the caller's `role`; `client` for a contact, and
/// only while the workspace's plan has the client portal).
#[utoipa::path(get, path = "/v1/workspaces", operation_id = "workspaces_list", tag = "workspaces",
    params(PageQuery), responses((status = 200, body = Page<WorkspaceView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<WorkspaceView>>, ApiError> {
    let page = query.page()?;
    let mut tx = state.open_personal(&caller).await?;
    let rows = select_view!(
        " WHERE ($1::uuid IS NULL OR w.id < $1) ORDER BY w.id DESC LIMIT $2",
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |w| w.id)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}", operation_id = "workspaces_read", tag = "workspaces",
    params(("workspace_id" = Uuid, Path)), responses((status = 200, body = WorkspaceView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
) -> Result<Json<WorkspaceView>, ApiError> {
    // Entered like every route inside it: a stranger gets 404, a contact of a workspace whose
    // plan lost the portal 402, as everywhere else in the workspace.
    let (mut tx, _) = state.open_workspace(&caller, workspace_id).await?;
    let view = select_view!(" WHERE w.id = $1", workspace_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ApiError::NotFound("workspace"))?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Renames the workspace (owners and admins).
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}", operation_id = "workspaces_rename", tag = "workspaces",
    params(("workspace_id" = Uuid, Path)), request_body = WorkspaceInput, responses((status = 200, body = WorkspaceView)))]
async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<WorkspaceInput>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let name = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let renamed =
        sqlx::query!("UPDATE workspaces SET name = $2, updated_at = now() WHERE id = $1", workspace_id, name.as_str(),)
            .execute(&mut *tx)
            .await?;
    if renamed.rows_affected() == 0 {
        return Err(ApiError::role_changed());
    }
    let view = select_view!(" WHERE w.id = $1", workspace_id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Deletes the workspace and everything in it (owners); its Stripe subscription is canceled.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}", operation_id = "workspaces_delete", tag = "workspaces",
    params(("workspace_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_owner("delete a workspace")?;
    let exported: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspace_exports WHERE workspace_id = $1) AS "exists!""#,
        workspace_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM workspaces WHERE id = $1", workspace_id).execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(%workspace_id, "workspace deleted");
    if exported && let Some(bucket) = &state.config.exports_bucket {
        // Best effort: what is left is removed by the bucket's lifecycle rule within 7 days.
        match shared::exports::delete_archives(shared::exports::shared_client().await, bucket, workspace_id).await {
            Ok(objects) => tracing::info!(%workspace_id, objects, "the workspace's export archives deleted"),
            Err(error) => tracing::warn!(%workspace_id, %error, "export archives left to the bucket's lifecycle rule"),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

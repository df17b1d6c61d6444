//! Milestones of a project: readable by whoever sees the project, written by owners, admins and
//! members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::auth::Caller;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::{Name, Text, Validator};
use shared::{ApiError, AppState};
use time::Date;
use uuid::Uuid;

use crate::model::{ItemPath, MilestoneStatus, MilestoneView, ProjectPath};
use crate::projects::{open_item_for_writing, project_found};
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, replace, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MilestoneInput {
    #[schema(schema_with = Name::schema)]
    title: String,
    #[serde(default)]
    #[schema(schema_with = Text::schema)]
    description: String,
    #[serde(default)]
    status: MilestoneStatus,
    due_date: Option<Date>,
}

impl MilestoneInput {
    fn parse(&self) -> Result<(Name, Text), ApiError> {
        let mut v = Validator::default();
        let title = v.check(Name::parse("title", &self.title));
        let description = v.check(Text::parse("description", &self.description));
        v.finish(|| Some((title?, description?)))
    }
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones", operation_id = "milestones_list", tag = "milestones", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<MilestoneView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<MilestoneView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, _access, project) = state.open_project(&caller, path.workspace_id, path.project_id).await?;
    project_found(project)?;
    let rows = sqlx::query_as!(
        MilestoneView,
        r#"SELECT id, project_id, title, description, status AS "status: MilestoneStatus", due_date, created_at, updated_at
         FROM milestones WHERE workspace_id = $1 AND project_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"#,
        path.workspace_id,
        path.project_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |m| m.id)))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones", operation_id = "milestones_create", tag = "milestones", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = MilestoneInput, responses((status = 201, body = MilestoneView)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    extract::Json(input): extract::Json<MilestoneInput>,
) -> Result<(StatusCode, Json<MilestoneView>), ApiError> {
    let (title, description) = input.parse()?;
    let (mut tx, access, project) = state.open_project(&caller, path.workspace_id, path.project_id).await?;
    access.require_writer()?;
    project_found(project)?;
    let milestone = sqlx::query_as!(
        MilestoneView,
        r#"INSERT INTO milestones (id, workspace_id, project_id, title, description, status, due_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, project_id, title, description, status AS "status: MilestoneStatus", due_date, created_at, updated_at"#,
        Uuid::now_v7(),
        path.workspace_id,
        path.project_id,
        title.as_str(),
        description.as_str(),
        input.status as MilestoneStatus,
        input.due_date,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(milestone)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones/{item_id}", operation_id = "milestones_read", tag = "milestones", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), responses((status = 200, body = MilestoneView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
) -> Result<Json<MilestoneView>, ApiError> {
    let (mut tx, _access) = state.open_workspace(&caller, path.workspace_id).await?;
    let milestone = sqlx::query_as!(
        MilestoneView,
        r#"SELECT id, project_id, title, description, status AS "status: MilestoneStatus", due_date, created_at, updated_at
         FROM milestones WHERE workspace_id = $1 AND project_id = $2 AND id = $3"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("milestone"))?;
    tx.commit().await?;
    Ok(Json(milestone))
}

#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones/{item_id}", operation_id = "milestones_replace", tag = "milestones", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), request_body = MilestoneInput, responses((status = 200, body = MilestoneView)))]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    extract::Json(input): extract::Json<MilestoneInput>,
) -> Result<Json<MilestoneView>, ApiError> {
    let (title, description) = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_writer()?;
    let milestone = sqlx::query_as!(
        MilestoneView,
        r#"UPDATE milestones SET title = $4, description = $5, status = $6, due_date = $7, updated_at = now()
         WHERE workspace_id = $1 AND project_id = $2 AND id = $3
         RETURNING id, project_id, title, description, status AS "status: MilestoneStatus", due_date, created_at, updated_at"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
        title.as_str(),
        description.as_str(),
        input.status as MilestoneStatus,
        input.due_date,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("milestone"))?;
    tx.commit().await?;
    Ok(Json(milestone))
}

/// Idempotent; deliverables of the milestone stay, detached from it.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones/{item_id}", operation_id = "milestones_delete", tag = "milestones", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = open_item_for_writing(&state, &caller, path).await?;
    sqlx::query!(
        "DELETE FROM milestones WHERE workspace_id = $1 AND project_id = $2 AND id = $3",
        path.workspace_id,
        path.project_id,
        path.item_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

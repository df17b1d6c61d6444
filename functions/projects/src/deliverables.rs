//! Deliverables of a project. Client contacts see only those marked `client_visible`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::auth::Caller;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::{HttpUrl, Name, Text, Validator, optional};
use shared::{ApiError, AppState};
use uuid::Uuid;

use crate::model::{DeliverableStatus, DeliverableView, ItemPath, ProjectPath};
use crate::projects::{open_item_for_writing, project_found};
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, replace, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeliverableInput {
    #[schema(schema_with = Name::schema)]
    title: String,
    #[serde(default)]
    #[schema(schema_with = Text::schema)]
    description: String,
    #[schema(schema_with = HttpUrl::optional_schema)]
    url: Option<String>,
    #[serde(default)]
    status: DeliverableStatus,
    #[serde(default)]
    client_visible: bool,
    milestone_id: Option<Uuid>,
}

struct ValidDeliverable {
    title: Name,
    description: Text,
    url: Option<HttpUrl>,
}

impl DeliverableInput {
    fn parse(&self) -> Result<ValidDeliverable, ApiError> {
        let mut v = Validator::default();
        let title = v.check(Name::parse("title", &self.title));
        let description = v.check(Text::parse("description", &self.description));
        let url = v.check(optional(self.url.as_deref(), |u| HttpUrl::parse("url", u)));
        v.finish(|| Some(ValidDeliverable { title: title?, description: description?, url: url? }))
    }
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables", operation_id = "deliverables_list", tag = "deliverables", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<DeliverableView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<DeliverableView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, _access, project) = state.open_project(&caller, path.workspace_id, path.project_id).await?;
    project_found(project)?;
    let rows = sqlx::query_as!(
        DeliverableView,
        r#"SELECT id, project_id, milestone_id, title, description, url, status AS "status: DeliverableStatus", client_visible, created_at, updated_at
         FROM deliverables WHERE workspace_id = $1 AND project_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"#,
        path.workspace_id,
        path.project_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |d| d.id)))
}

#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables", operation_id = "deliverables_create", tag = "deliverables", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = DeliverableInput, responses((status = 201, body = DeliverableView)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    extract::Json(input): extract::Json<DeliverableInput>,
) -> Result<(StatusCode, Json<DeliverableView>), ApiError> {
    let valid = input.parse()?;
    let (mut tx, access, project) = state.open_project(&caller, path.workspace_id, path.project_id).await?;
    access.require_writer()?;
    project_found(project)?;
    let deliverable = sqlx::query_as!(
        DeliverableView,
        r#"INSERT INTO deliverables
             (id, workspace_id, project_id, milestone_id, title, description, url, status, client_visible)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id, project_id, milestone_id, title, description, url, status AS "status: DeliverableStatus", client_visible, created_at, updated_at"#,
        Uuid::now_v7(),
        path.workspace_id,
        path.project_id,
        input.milestone_id,
        valid.title.as_str(),
        valid.description.as_str(),
        valid.url.as_ref().map(HttpUrl::as_str),
        input.status as DeliverableStatus,
        input.client_visible,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(deliverable)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}", operation_id = "deliverables_read", tag = "deliverables", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), responses((status = 200, body = DeliverableView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
) -> Result<Json<DeliverableView>, ApiError> {
    let (mut tx, _access) = state.open_workspace(&caller, path.workspace_id).await?;
    let deliverable = sqlx::query_as!(
        DeliverableView,
        r#"SELECT id, project_id, milestone_id, title, description, url, status AS "status: DeliverableStatus", client_visible, created_at, updated_at
         FROM deliverables WHERE workspace_id = $1 AND project_id = $2 AND id = $3"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("deliverable"))?;
    tx.commit().await?;
    Ok(Json(deliverable))
}

#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}", operation_id = "deliverables_replace", tag = "deliverables", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), request_body = DeliverableInput, responses((status = 200, body = DeliverableView)))]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
    extract::Json(input): extract::Json<DeliverableInput>,
) -> Result<Json<DeliverableView>, ApiError> {
    let valid = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_writer()?;
    let deliverable = sqlx::query_as!(
        DeliverableView,
        r#"UPDATE deliverables
         SET milestone_id = $4, title = $5, description = $6, url = $7, status = $8, client_visible = $9,
             updated_at = now()
         WHERE workspace_id = $1 AND project_id = $2 AND id = $3
         RETURNING id, project_id, milestone_id, title, description, url, status AS "status: DeliverableStatus", client_visible, created_at, updated_at"#,
        path.workspace_id,
        path.project_id,
        path.item_id,
        input.milestone_id,
        valid.title.as_str(),
        valid.description.as_str(),
        valid.url.as_ref().map(HttpUrl::as_str),
        input.status as DeliverableStatus,
        input.client_visible,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("deliverable"))?;
    tx.commit().await?;
    Ok(Json(deliverable))
}

/// Idempotent.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}", operation_id = "deliverables_delete", tag = "deliverables", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path), ("item_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = open_item_for_writing(&state, &caller, path).await?;
    sqlx::query!(
        "DELETE FROM deliverables WHERE workspace_id = $1 AND project_id = $2 AND id = $3",
        path.workspace_id,
        path.project_id,
        path.item_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

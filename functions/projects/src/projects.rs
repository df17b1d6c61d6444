//! Projects: everyone in the workspace reads (a client contact only its client's projects);
//! owners, admins and members write.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::access::Access;
use shared::auth::Caller;
use shared::db::TenantTx;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageRequest};
use shared::validate::{Name, Text, Validator};
use shared::{ApiError, AppState};
use time::Date;
use uuid::Uuid;

use crate::model::{ItemPath, ProjectPath, ProjectStatus, ProjectView};
use shared::openapi::OpenApiRouter;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, replace, remove))
}

/// Body of POST and PUT; PUT replaces every field, so omitted ones take these defaults.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProjectInput {
    #[schema(schema_with = Name::schema)]
    name: String,
    #[serde(default)]
    #[schema(schema_with = Text::schema)]
    description: String,
    #[serde(default)]
    status: ProjectStatus,
    client_id: Option<Uuid>,
    due_date: Option<Date>,
}

struct ValidProject {
    name: Name,
    description: Text,
}

impl ProjectInput {
    fn parse(&self) -> Result<ValidProject, ApiError> {
        let mut v = Validator::default();
        let name = v.check(Name::parse("name", &self.name));
        let description = v.check(Text::parse("description", &self.description));
        v.finish(|| Some(ValidProject { name: name?, description: description? }))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<ProjectStatus>,
    client_id: Option<Uuid>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A page of projects, newest first. A client contact's page is read through its clients'
/// index (the same rows row-level security allows, said to the planner), so its cost follows
/// the contact's projects, not the size of the agency's workspace.
/// Projects, newest first (a client contact sees its clients' projects only).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects", operation_id = "projects_list", tag = "projects", params(("workspace_id" = Uuid, Path), ListQuery), responses((status = 200, body = Page<ProjectView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<ProjectView>>, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    // Two literal statements (the macros check each against the schema): a client contact's
    // page also filters by the contact's clients, which lets the planner use that index.
    let rows = if access == Access::ClientContact {
        sqlx::query_as!(
            ProjectView,
            r#"SELECT id, workspace_id, client_id, name, description, status AS "status: ProjectStatus", due_date,
                      created_by, created_at, updated_at
               FROM projects
               WHERE workspace_id = $1
                 AND ($2::project_status IS NULL OR status = $2)
                 AND ($3::uuid IS NULL OR client_id = $3)
                 AND ($4::uuid IS NULL OR id < $4)
                 AND client_id = ANY ((SELECT app.contact_client_ids())::uuid[])
               ORDER BY id DESC LIMIT $5"#,
            workspace_id,
            query.status as Option<ProjectStatus>,
            query.client_id,
            page.before,
            page.fetch_limit(),
        )
        .fetch_all(&mut *tx)
        .await?
    } else {
        sqlx::query_as!(
            ProjectView,
            r#"SELECT id, workspace_id, client_id, name, description, status AS "status: ProjectStatus", due_date,
                      created_by, created_at, updated_at
               FROM projects
               WHERE workspace_id = $1
                 AND ($2::project_status IS NULL OR status = $2)
                 AND ($3::uuid IS NULL OR client_id = $3)
                 AND ($4::uuid IS NULL OR id < $4)
               ORDER BY id DESC LIMIT $5"#,
            workspace_id,
            query.status as Option<ProjectStatus>,
            query.client_id,
            page.before,
            page.fetch_limit(),
        )
        .fetch_all(&mut *tx)
        .await?
    };
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |p| p.id)))
}

/// Creates a project (owners, admins and members).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/projects", operation_id = "projects_create", tag = "projects", params(("workspace_id" = Uuid, Path)), request_body = ProjectInput, responses((status = 201, body = ProjectView)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<ProjectInput>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let valid = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_writer()?;
    let project = sqlx::query_as!(
        ProjectView,
        r#"INSERT INTO projects (id, workspace_id, client_id, name, description, status, due_date, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, app.current_user_id())
           RETURNING id, workspace_id, client_id, name, description, status AS "status: ProjectStatus", due_date,
                     created_by, created_at, updated_at"#,
        Uuid::now_v7(),
        workspace_id,
        input.client_id,
        valid.name.as_str(),
        valid.description.as_str(),
        input.status as ProjectStatus,
        input.due_date,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(project_id = %project.id, "project created");
    Ok((StatusCode::CREATED, Json(project)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/projects/{project_id}", operation_id = "projects_read", tag = "projects", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path)), responses((status = 200, body = ProjectView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
) -> Result<Json<ProjectView>, ApiError> {
    let (mut tx, _access) = state.open_workspace(&caller, path.workspace_id).await?;
    let project = sqlx::query_as!(
        ProjectView,
        r#"SELECT id, workspace_id, client_id, name, description, status AS "status: ProjectStatus", due_date,
                  created_by, created_at, updated_at
           FROM projects WHERE workspace_id = $1 AND id = $2"#,
        path.workspace_id,
        path.project_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("project"))?;
    tx.commit().await?;
    Ok(Json(project))
}

#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/projects/{project_id}", operation_id = "projects_replace", tag = "projects", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = ProjectInput, responses((status = 200, body = ProjectView)))]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
    extract::Json(input): extract::Json<ProjectInput>,
) -> Result<Json<ProjectView>, ApiError> {
    let valid = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_writer()?;
    let project = sqlx::query_as!(
        ProjectView,
        r#"UPDATE projects
           SET client_id = $3, name = $4, description = $5, status = $6, due_date = $7, updated_at = now()
           WHERE workspace_id = $1 AND id = $2
           RETURNING id, workspace_id, client_id, name, description, status AS "status: ProjectStatus", due_date,
                     created_by, created_at, updated_at"#,
        path.workspace_id,
        path.project_id,
        input.client_id,
        valid.name.as_str(),
        valid.description.as_str(),
        input.status as ProjectStatus,
        input.due_date,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("project"))?;
    tx.commit().await?;
    Ok(Json(project))
}

/// Idempotent: deleting a project that is already gone succeeds. Its milestones, deliverables
/// and comments go with it.
/// Deletes the project and everything in it.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/projects/{project_id}", operation_id = "projects_delete", tag = "projects", params(("workspace_id" = Uuid, Path), ("project_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ProjectPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_writer()?;
    sqlx::query!("DELETE FROM projects WHERE workspace_id = $1 AND id = $2", path.workspace_id, path.project_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 404 unless the caller can see the project (for the routes nested under it).
/// The refusal for a project the caller cannot see (learned by `AppState::open_project`).
pub fn project_found(visible: bool) -> Result<(), ApiError> {
    if visible { Ok(()) } else { Err(ApiError::NotFound("project")) }
}

pub async fn require_project(tx: &mut TenantTx, path: ProjectPath) -> Result<(), ApiError> {
    let visible = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM projects WHERE workspace_id = $1 AND id = $2) AS "visible!""#,
        path.workspace_id,
        path.project_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    if visible { Ok(()) } else { Err(ApiError::NotFound("project")) }
}

/// The transaction of a writer of the workspace, on an item of a project they can see (404
/// otherwise): where deleting an item starts.
pub async fn open_item_for_writing(state: &AppState, caller: &Caller, path: ItemPath) -> Result<TenantTx, ApiError> {
    let (mut tx, access) = state.open_workspace(caller, path.workspace_id).await?;
    access.require_writer()?;
    require_project(&mut tx, path.project()).await?;
    Ok(tx)
}

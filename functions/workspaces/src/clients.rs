//! A workspace's clients: members read them (a client contact reads only its own client);
//! owners and admins manage them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::access::Access;
use shared::auth::Caller;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::{Email, Name, Text, Validator, optional};
use shared::{ApiError, AppState};
use uuid::Uuid;

use crate::views::{ClientBody, ClientPortalView, ClientView};
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read, replace, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ClientInput {
    #[schema(schema_with = Name::schema)]
    name: String,
    #[schema(schema_with = Email::optional_schema)]
    email: Option<String>,
    #[serde(default)]
    #[schema(schema_with = Text::schema)]
    notes: String,
    #[serde(default)]
    #[schema(schema_with = Text::schema)]
    portal_note: String,
}

struct ValidClient {
    name: Name,
    email: Option<Email>,
    notes: Text,
    portal_note: Text,
}

impl ClientInput {
    fn parse(&self) -> Result<ValidClient, ApiError> {
        let mut v = Validator::default();
        let name = v.check(Name::parse("name", &self.name));
        let email = v.check(optional(self.email.as_deref(), |e| Email::parse("email", e)));
        let notes = v.check(Text::parse("notes", &self.notes));
        let portal_note = v.check(Text::parse("portal_note", &self.portal_note));
        v.finish(|| Some(ValidClient { name: name?, email: email?, notes: notes?, portal_note: portal_note? }))
    }
}

#[derive(Deserialize)]
pub struct ClientPath {
    pub workspace_id: Uuid,
    pub client_id: Uuid,
}

/// Members get the team's view; a client contact gets its own client's portal view, read from
/// `client_portal` (the database gives contacts nothing else of the clients table).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/clients", operation_id = "clients_list", tag = "clients", params(("workspace_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<ClientBody>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<ClientBody>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    let body = if access == Access::ClientContact {
        let rows = sqlx::query_as!(
            ClientPortalView,
            r#"SELECT id AS "id!", name AS "name!", portal_note AS "portal_note!" FROM client_portal
             WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"#,
            workspace_id,
            page.before,
            page.fetch_limit(),
        )
        .fetch_all(&mut *tx)
        .await?;
        Page::from_rows(rows, &page, |c| c.id).map(ClientBody::Portal)
    } else {
        let rows = sqlx::query_as!(
            ClientView,
            "SELECT id, name, email, notes, portal_note, created_at, updated_at FROM clients
             WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            workspace_id,
            page.before,
            page.fetch_limit(),
        )
        .fetch_all(&mut *tx)
        .await?;
        Page::from_rows(rows, &page, |c| c.id).map(ClientBody::Team)
    };
    tx.commit().await?;
    Ok(Json(body))
}

/// Creates a client (owners and admins).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/clients", operation_id = "clients_create", tag = "clients", params(("workspace_id" = Uuid, Path)), request_body = ClientInput, responses((status = 201, body = ClientView)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<ClientInput>,
) -> Result<(StatusCode, Json<ClientView>), ApiError> {
    let client = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let view = sqlx::query_as!(
        ClientView,
        "INSERT INTO clients (id, workspace_id, name, email, notes, portal_note) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, name, email, notes, portal_note, created_at, updated_at",
        Uuid::now_v7(),
        workspace_id,
        client.name.as_str(),
        client.email.as_ref().map(Email::as_str),
        client.notes.as_str(),
        client.portal_note.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/clients/{client_id}", operation_id = "clients_read", tag = "clients", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path)), responses((status = 200, body = ClientBody)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ClientPath>,
) -> Result<Json<ClientBody>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    let view = if access == Access::ClientContact {
        sqlx::query_as!(
            ClientPortalView,
            r#"SELECT id AS "id!", name AS "name!", portal_note AS "portal_note!" FROM client_portal
               WHERE workspace_id = $1 AND id = $2"#,
            path.workspace_id,
            path.client_id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(ClientBody::Portal)
    } else {
        sqlx::query_as!(
            ClientView,
            "SELECT id, name, email, notes, portal_note, created_at, updated_at FROM clients
             WHERE workspace_id = $1 AND id = $2",
            path.workspace_id,
            path.client_id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(ClientBody::Team)
    };
    tx.commit().await?;
    Ok(Json(view.ok_or(ApiError::NotFound("client"))?))
}

/// Replaces the client (owners and admins).
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/clients/{client_id}", operation_id = "clients_replace", tag = "clients", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path)), request_body = ClientInput, responses((status = 200, body = ClientView)))]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ClientPath>,
    extract::Json(input): extract::Json<ClientInput>,
) -> Result<Json<ClientView>, ApiError> {
    let client = input.parse()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    let view = sqlx::query_as!(
        ClientView,
        "UPDATE clients SET name = $3, email = $4, notes = $5, portal_note = $6, updated_at = now()
         WHERE workspace_id = $1 AND id = $2
         RETURNING id, name, email, notes, portal_note, created_at, updated_at",
        path.workspace_id,
        path.client_id,
        client.name.as_str(),
        client.email.as_ref().map(Email::as_str),
        client.notes.as_str(),
        client.portal_note.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("client"))?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Idempotent. Projects of a deleted client stay, unassigned; its contacts lose access.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/clients/{client_id}", operation_id = "clients_delete", tag = "clients", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ClientPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    sqlx::query!("DELETE FROM clients WHERE workspace_id = $1 AND id = $2", path.workspace_id, path.client_id,)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

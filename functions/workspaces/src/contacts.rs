//! Client contacts: users linked to a client, who then see that client's projects in the portal.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::auth::Caller;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::{Email, Validator};
use shared::{ApiError, AppState};
use uuid::Uuid;

use crate::clients::ClientPath;
use crate::members::user_by_email;
use crate::views::ContactView;
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, add)).routes(routes!(remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddContact {
    #[schema(format = Email, max_length = 320)]
    email: String,
}

#[derive(Deserialize)]
struct ContactPath {
    workspace_id: Uuid,
    client_id: Uuid,
    user_id: Uuid,
}

/// The client's contacts, in a stable order by user id.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/clients/{client_id}/contacts", operation_id = "contacts_list", tag = "clients", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<ContactView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ClientPath>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<ContactView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_member()?;
    require_client(&mut tx, &path).await?;
    let rows = sqlx::query_as!(
        ContactView,
        "SELECT c.user_id, u.email, c.created_at AS linked_at
         FROM client_contacts c JOIN users u ON u.id = c.user_id
         WHERE c.workspace_id = $1 AND c.client_id = $2 AND ($3::uuid IS NULL OR c.user_id < $3)
         ORDER BY c.user_id DESC LIMIT $4",
        path.workspace_id,
        path.client_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |c| c.user_id)))
}

/// Links a user who has signed in at least once, by e-mail, as a contact of the client.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/clients/{client_id}/contacts", operation_id = "contacts_add", tag = "clients", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path)), request_body = AddContact, responses((status = 201, body = ContactView), (status = 409)))]
async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ClientPath>,
    extract::Json(input): extract::Json<AddContact>,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    let mut v = Validator::default();
    let email = v.check(Email::parse("email", &input.email));
    v.finish()?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    shared::access::require_feature(&mut tx, path.workspace_id, |f| f.client_portal, "The client portal").await?;
    require_client(&mut tx, &path).await?;
    let user_id = user_by_email(&mut tx, path.workspace_id, &email).await?;
    let is_member: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspace_members
           WHERE workspace_id = $1 AND user_id = $2) AS "exists!""#,
        path.workspace_id,
        user_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if is_member {
        return Err(ApiError::Conflict {
            code: "already_member",
            detail: "That user is a member of this workspace; members already see its projects.".into(),
        });
    }
    sqlx::query!(
        "INSERT INTO client_contacts (workspace_id, client_id, user_id) VALUES ($1, $2, $3)",
        path.workspace_id,
        path.client_id,
        user_id,
    )
    .execute(&mut *tx)
    .await?;
    // A separate statement: the users policy must see the new link, which a CTE's snapshot would not.
    let contact = sqlx::query_as!(
        ContactView,
        "SELECT c.user_id, u.email, c.created_at AS linked_at
         FROM client_contacts c JOIN users u ON u.id = c.user_id
         WHERE c.client_id = $1 AND c.user_id = $2",
        path.client_id,
        user_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

/// Idempotent: unlinking someone who is not linked succeeds.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/clients/{client_id}/contacts/{user_id}", operation_id = "contacts_remove", tag = "clients", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path), ("user_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ContactPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    sqlx::query!(
        "DELETE FROM client_contacts WHERE workspace_id = $1 AND client_id = $2 AND user_id = $3",
        path.workspace_id,
        path.client_id,
        path.user_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn require_client(tx: &mut shared::db::TenantTx, path: &ClientPath) -> Result<(), ApiError> {
    let exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM clients WHERE workspace_id = $1 AND id = $2) AS "exists!""#,
        path.workspace_id,
        path.client_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    if exists { Ok(()) } else { Err(ApiError::NotFound("client")) }
}

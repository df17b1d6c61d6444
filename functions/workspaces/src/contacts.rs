//! Client contacts: users linked to a client, who then see that client's projects in the portal.
//! A contact is linked only by accepting a portal invitation (`invitations.rs`), never by
//! matching an e-mail to whoever signed in with it first.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::auth::Caller;
use shared::http::extract::{Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::{ApiError, AppState};
use uuid::Uuid;

use crate::clients::ClientPath;
use crate::views::ContactView;
use shared::openapi::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(remove))
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

//! Workspace members: everyone reads the list; owners and admins change and remove members;
//! only owners touch owners; anyone may leave; a workspace always keeps one owner. People join
//! only by accepting an invitation (`invitations.rs`): an account is never bound to a
//! membership by its e-mail address, which another subject may have claimed first.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use shared::access::Role;
use shared::auth::Caller;
use shared::db::TenantTx;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::{ApiError, AppState};
use uuid::Uuid;

use crate::views::MemberView;
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(change_role, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeRole {
    role: Role,
}

#[derive(Deserialize)]
pub struct MemberPath {
    workspace_id: Uuid,
    user_id: Uuid,
}

/// The workspace's members, in a stable order by user id.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/members", operation_id = "members_list", tag = "members", params(("workspace_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<MemberView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<MemberView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_member()?;
    // User ids are not time-ordered (UUIDv5): the order is stable, not by joining date.
    let rows = sqlx::query_as!(
        MemberView,
        r#"SELECT m.user_id, u.email, m.role AS "role: Role", m.created_at AS joined_at
         FROM workspace_members m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 AND ($2::uuid IS NULL OR m.user_id < $2)
         ORDER BY m.user_id DESC LIMIT $3"#,
        workspace_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |m| m.user_id)))
}

/// Changes a member's role.
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/members/{user_id}", operation_id = "members_change_role", tag = "members", params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeRole, responses((status = 200, body = MemberView), (status = 409)))]
async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<MemberPath>,
    extract::Json(input): extract::Json<ChangeRole>,
) -> Result<Json<MemberView>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    let caller_role = access.require_manager()?;
    let current = current_role(&mut tx, &path).await?.ok_or(ApiError::NotFound("member"))?;
    require_owner_for_owners(caller_role, &[current, input.role])?;
    let updated = sqlx::query!(
        "UPDATE workspace_members SET role = $3, updated_at = now() WHERE workspace_id = $1 AND user_id = $2",
        path.workspace_id,
        path.user_id,
        input.role as Role,
    )
    .execute(&mut *tx)
    .await?;
    require_written(updated.rows_affected())?;
    let member = find(&mut tx, path.workspace_id, path.user_id).await?;
    tx.commit().await?;
    Ok(Json(member))
}

/// Idempotent: removing someone who is not (or no longer) a member succeeds.
/// Removes a member (or, for yourself, leaves).
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/members/{user_id}", operation_id = "members_remove", tag = "members", params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)), responses((status = 204), (status = 409)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    let caller_role = access.require_member()?;
    let Some(current) = current_role(&mut tx, &path).await? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    if path.user_id != caller.user_id {
        access.require_manager()?;
        require_owner_for_owners(caller_role, &[current])?;
    }
    let deleted = sqlx::query!(
        "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        path.workspace_id,
        path.user_id,
    )
    .execute(&mut *tx)
    .await?;
    require_written(deleted.rows_affected())?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses rather than claim a change that row-level security did not make.
fn require_written(rows: u64) -> Result<(), ApiError> {
    if rows == 0 {
        return Err(ApiError::role_changed());
    }
    Ok(())
}

fn require_owner_for_owners(caller_role: Role, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&Role::Owner) && caller_role != Role::Owner {
        return Err(ApiError::Forbidden("Only owners can grant, change or remove the owner role.".into()));
    }
    Ok(())
}

async fn find(tx: &mut TenantTx, workspace_id: Uuid, user_id: Uuid) -> Result<MemberView, sqlx::Error> {
    sqlx::query_as!(
        MemberView,
        r#"SELECT m.user_id, u.email, m.role AS "role: Role", m.created_at AS joined_at
           FROM workspace_members m JOIN users u ON u.id = m.user_id
           WHERE m.workspace_id = $1 AND m.user_id = $2"#,
        workspace_id,
        user_id,
    )
    .fetch_one(&mut **tx)
    .await
}

async fn current_role(tx: &mut TenantTx, path: &MemberPath) -> Result<Option<Role>, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM workspace_members WHERE workspace_id = $1 AND user_id = $2"#,
        path.workspace_id,
        path.user_id,
    )
    .fetch_optional(&mut **tx)
    .await?)
}

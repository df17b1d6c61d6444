//! Suspending a workspace (it is read, not written; its API keys stop) and lifting it, each with
//! a reason, recorded in the workspace's audit log with the operator as the actor.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::http::extract::{self, Path};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AdminState, Operator, required_reason};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct Suspension {
    workspace_id: Uuid,
    #[serde(with = "time::serde::rfc3339::option")]
    suspended_at: Option<OffsetDateTime>,
    suspended_reason: Option<String>,
}

/// Suspends the workspace: it can be read, not changed.
#[utoipa::path(post, path = "/v1/admin/workspaces/{workspace_id}/suspend", operation_id = "admin_suspend", tag = "admin", params(("workspace_id" = Uuid, Path)), request_body = Reason, responses((status = 200, body = Suspension)))]
pub async fn suspend(
    State(state): State<AdminState>,
    Operator(operator): Operator,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<Reason>,
) -> Result<Json<Suspension>, ApiError> {
    let why = required_reason(&input.reason)?;
    change(&state, &operator, workspace_id, Some(why), why).await
}

#[utoipa::path(post, path = "/v1/admin/workspaces/{workspace_id}/unsuspend", operation_id = "admin_unsuspend", tag = "admin", params(("workspace_id" = Uuid, Path)), request_body = Reason, responses((status = 200, body = Suspension)))]
pub async fn unsuspend(
    State(state): State<AdminState>,
    Operator(operator): Operator,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<Reason>,
) -> Result<Json<Suspension>, ApiError> {
    change(&state, &operator, workspace_id, None, required_reason(&input.reason)?).await
}

/// Suspends (with `suspend_for`) or lifts the suspension; doing it twice changes nothing more.
async fn change(
    state: &AdminState,
    operator: &shared::auth::Caller,
    workspace_id: Uuid,
    suspend_for: Option<&str>,
    why: &str,
) -> Result<Json<Suspension>, ApiError> {
    let actor = crate::actor(operator);
    let mut tx = state.pool.begin().await?;
    // The workspace's audit trigger names this operator as the actor of the change.
    sqlx::query!("SELECT set_config('app.actor', $1, true)", &actor).fetch_one(&mut *tx).await?;
    let row = sqlx::query!(
        "UPDATE workspaces SET
             suspended_at = CASE WHEN $2::text IS NULL THEN NULL ELSE coalesce(suspended_at, now()) END,
             suspended_reason = $2
         WHERE id = $1
         RETURNING suspended_at, suspended_reason",
        workspace_id,
        suspend_for,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Err(ApiError::NotFound("workspace")) };
    let (suspended_at, suspended_reason) = (row.suspended_at, row.suspended_reason);
    sqlx::query!(
        "INSERT INTO audit_log (workspace_id, actor, action, details) VALUES ($1, $2, $3, $4)",
        workspace_id,
        &actor,
        if suspend_for.is_some() { "workspace.suspended" } else { "workspace.unsuspended" },
        serde_json::json!({ "reason": why }),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(%workspace_id, %actor, suspended = suspend_for.is_some(), reason = why, "workspace suspension changed");
    Ok(Json(Suspension { workspace_id, suspended_at, suspended_reason }))
}

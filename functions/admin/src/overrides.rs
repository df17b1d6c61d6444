//! Entitlement overrides: an operator gives a workspace a limit other than its plan's (projects,
//! members, AI runs a month, requests a minute) or grants or withholds a feature (AI tools, the
//! client portal, API access, webhooks), until a date, with a reason; and revokes it. Each is
//! audited by the table's trigger with the operator as the actor. The database's limit triggers,
//! the AI reservation, the rate limiter and every feature check resolve through them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::http::extract::{self, Path};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AdminState, Operator, required_reason};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    entitlement: String,
    /// The limit while the override lasts (`null`: unlimited, for projects and members); for a
    /// feature 1 grants it and 0 withholds it.
    value: Option<u32>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    reason: String,
}

#[derive(Deserialize)]
pub struct OverridePath {
    workspace_id: Uuid,
    override_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct OverrideView {
    id: Uuid,
    workspace_id: Uuid,
    entitlement: String,
    value: Option<i32>,
    reason: String,
    granted_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
}

use shared::plans::{OVERRIDABLE, is_feature};
use utoipa::ToSchema;

/// Grants an entitlement override until `expires_at`.
#[utoipa::path(post, path = "/v1/admin/workspaces/{workspace_id}/overrides", operation_id = "admin_overrides_grant", tag = "admin", params(("workspace_id" = Uuid, Path)), request_body = Grant, responses((status = 201, body = OverrideView)))]
pub async fn grant(
    State(state): State<AdminState>,
    Operator(operator): Operator,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<Grant>,
) -> Result<(StatusCode, Json<OverrideView>), ApiError> {
    let why = required_reason(&input.reason)?;
    let entitlement = input.entitlement.as_str();
    if !OVERRIDABLE.contains(&entitlement) {
        return Err(ApiError::validation("entitlement", format!("must be one of {}", OVERRIDABLE.join(", "))));
    }
    let invalid = match (is_feature(entitlement), input.value) {
        (true, Some(0 | 1)) => None,
        (true, _) => Some("a feature is granted with 1 or withheld with 0"),
        (false, None) if !matches!(entitlement, "projects" | "members") => Some("this limit cannot be unlimited"),
        (false, Some(0)) if entitlement.ends_with("_per_minute") => Some("a rate limit is at least 1"),
        (false, Some(mb)) if entitlement == "file_size_mb" && !(1..=5_120).contains(&mb) => {
            Some("a file may take from 1 to 5,120 MiB (5 GiB: the most one upload takes)")
        }
        _ => None,
    };
    if let Some(message) = invalid {
        return Err(ApiError::validation("value", message));
    }
    if input.expires_at <= OffsetDateTime::now_utc() {
        return Err(ApiError::validation("expires_at", "must be in the future"));
    }
    let value =
        input.value.map(i32::try_from).transpose().map_err(|_| ApiError::validation("value", "is too large"))?;
    let actor = crate::actor(&operator);
    let mut tx = state.pool.begin().await?;
    sqlx::query!("SELECT set_config('app.actor', $1, true)", &actor).fetch_one(&mut *tx).await?;
    let granted = sqlx::query_as!(
        OverrideView,
        "INSERT INTO entitlement_overrides (id, workspace_id, entitlement, value, reason, granted_by, expires_at)
         SELECT $1, w.id, $3, $4, $5, $6, $7 FROM workspaces w WHERE w.id = $2
         RETURNING id, workspace_id, entitlement, value, reason, granted_by, created_at, expires_at, revoked_at,
         revoked_by, revoke_reason",
        Uuid::now_v7(),
        workspace_id,
        &input.entitlement,
        value,
        why,
        &actor,
        input.expires_at,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("workspace"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(granted)))
}

/// Every override the workspace has had, newest first.
/// The workspace's overrides, in force or not.
#[utoipa::path(get, path = "/v1/admin/workspaces/{workspace_id}/overrides", operation_id = "admin_overrides_list", tag = "admin", params(("workspace_id" = Uuid, Path)), responses((status = 200, body = Vec<OverrideView>)))]
pub async fn list(
    State(state): State<AdminState>,
    _operator: Operator,
    Path(workspace_id): Path<Uuid>,
) -> Result<Json<Vec<OverrideView>>, ApiError> {
    let rows = sqlx::query_as!(
        OverrideView,
        "SELECT id, workspace_id, entitlement, value, reason, granted_by, created_at, expires_at, revoked_at,
                revoked_by, revoke_reason
         FROM entitlement_overrides WHERE workspace_id = $1 ORDER BY created_at DESC LIMIT 200",
        workspace_id,
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

/// Ends an override now; revoking twice is harmless (the first revocation stands).
#[utoipa::path(post, path = "/v1/admin/workspaces/{workspace_id}/overrides/{override_id}/revoke", operation_id = "admin_overrides_revoke", tag = "admin", params(("workspace_id" = Uuid, Path), ("override_id" = Uuid, Path)), request_body = Revocation, responses((status = 200, body = OverrideView)))]
pub async fn revoke(
    State(state): State<AdminState>,
    Operator(operator): Operator,
    Path(path): Path<OverridePath>,
    extract::Json(input): extract::Json<Revocation>,
) -> Result<Json<OverrideView>, ApiError> {
    let why = required_reason(&input.reason)?;
    let actor = crate::actor(&operator);
    let mut tx = state.pool.begin().await?;
    sqlx::query!("SELECT set_config('app.actor', $1, true)", &actor).fetch_one(&mut *tx).await?;
    sqlx::query!(
        "UPDATE entitlement_overrides SET revoked_at = now(), revoked_by = $3, revoke_reason = $4
         WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL",
        path.workspace_id,
        path.override_id,
        &actor,
        why,
    )
    .execute(&mut *tx)
    .await?;
    let view = sqlx::query_as!(
        OverrideView,
        "SELECT id, workspace_id, entitlement, value, reason, granted_by, created_at, expires_at, revoked_at,
                revoked_by, revoke_reason
         FROM entitlement_overrides WHERE workspace_id = $1 AND id = $2",
        path.workspace_id,
        path.override_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("override"))?;
    tx.commit().await?;
    Ok(Json(view))
}

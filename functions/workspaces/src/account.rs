//! The caller's own account: `DELETE /v1/me` erases it (see `app.delete_account` for exactly
//! what goes and what stays).

use axum::extract::State;
use axum::http::StatusCode;
use shared::auth::Caller;
use shared::openapi::OpenApiRouter;
use shared::{ApiError, AppState};
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(delete_account))
}

struct Step {
    outcome: String,
    workspace_name: Option<String>,
}

/// 204 once the account is gone; 409 `last_owner` naming the workspaces to hand over (or
/// delete) first, with nothing changed.
/// Deletes the caller's own account (people, not API keys).
#[utoipa::path(delete, path = "/v1/me", operation_id = "account_delete", tag = "account", responses((status = 204, description = "The account is gone."), (status = 409)))]
async fn delete_account(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    if caller.api_key.is_some() {
        return Err(ApiError::Forbidden("An API key has no account to delete.".into()));
    }
    let mut tx = state.open_personal(&caller).await?;
    let steps: Vec<Step> =
        sqlx::query_as!(Step, r#"SELECT outcome AS "outcome!", workspace_name FROM app.delete_account()"#)
            .fetch_all(&mut *tx)
            .await?;
    let blocking: Vec<String> =
        steps.iter().filter(|s| s.outcome == "last_owner").filter_map(|s| s.workspace_name.clone()).collect();
    if !blocking.is_empty() {
        return Err(ApiError::Conflict {
            code: "last_owner",
            detail: format!(
                "You are the last owner of {} with other members; make someone else an owner, or delete it, first.",
                blocking.iter().map(|name| format!("“{name}”")).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    tx.commit().await?;
    tracing::info!(user_id = %caller.user_id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

//! Cancelling a subscription at the end of its period, and taking the cancellation back, through
//! the API (owners and admins). The API asks Stripe and answers `202` with what it asked; the
//! workspace's billing state changes only when Stripe's `customer.subscription.updated` event
//! arrives, as for every other billing change.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::ApiError;
use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::http::extract::{self, Path};
use shared::validate::Validator;
use stripe_billing::subscription::UpdateSubscription;
use uuid::Uuid;

/// The statuses in which a subscription is still billing (or about to).
pub const LIVE: [&str; 3] = ["active", "trialing", "past_due"];

pub fn router() -> Router<BillingState> {
    use axum::routing::post;
    Router::new()
        .route("/v1/workspaces/{workspace_id}/billing/subscription/cancel", post(cancel))
        .route("/v1/workspaces/{workspace_id}/billing/subscription/resume", post(resume))
        .route("/v1/workspaces/{workspace_id}/billing/subscription", post(crate::plan_change::change))
}

async fn cancel(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    set_cancel_at_period_end(&state, &caller, workspace_id, &headers, true).await
}

async fn resume(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    set_cancel_at_period_end(&state, &caller, workspace_id, &headers, false).await
}

async fn set_cancel_at_period_end(
    state: &BillingState,
    caller: &Caller,
    workspace_id: Uuid,
    headers: &HeaderMap,
    cancel: bool,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut v = Validator::default();
    // The client's key makes its retries one request; without one, each request is its own (a
    // cancel, a resume and a cancel again must each reach Stripe).
    let request_key = v.check(extract::idempotency_key(headers)).unwrap_or_else(|| Uuid::new_v4().to_string());
    v.finish()?;
    let (mut tx, access) = state.app.open_workspace(caller, workspace_id).await?;
    access.require_manager()?;
    let subscription: Option<String> = sqlx::query_scalar(
        "SELECT stripe_subscription_id FROM subscriptions WHERE workspace_id = $1 AND status = ANY($2)",
    )
    .bind(workspace_id)
    .bind(&LIVE[..])
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let subscription = subscription.ok_or_else(|| ApiError::Conflict {
        code: "no_subscription",
        detail: "The workspace has no live subscription to cancel or resume.".into(),
    })?;
    let action = if cancel { "cancel-at-period-end" } else { "resume" };
    let request = UpdateSubscription::new(subscription.as_str()).cancel_at_period_end(cancel);
    let key = format!("{action}:{subscription}:{request_key}");
    match state.stripe.post(request, &key).await {
        Ok(_) => {}
        Err(error) if error.is_missing() => {
            return Err(ApiError::Conflict {
                code: "no_subscription",
                detail: "Stripe no longer has this subscription; the workspace's billing will catch up.".into(),
            });
        }
        Err(error) => return Err(stripe_failure(error)),
    }
    tracing::info!(%workspace_id, %subscription, cancel, "subscription change requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "subscription": subscription,
            "requested": { "cancel_at_period_end": cancel },
            "detail": "Requested from Stripe; the billing summary shows it once Stripe confirms.",
        })),
    ))
}

//! Cancelling a subscription at the end of its period, and taking the cancellation back, through
//! the API (owners and admins). The API asks Stripe and answers `202` with what it asked; the
//! workspace's billing state changes only when Stripe's `customer.subscription.updated` event
//! arrives, as for every other billing change.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use shared::ApiError;
use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::http::extract::{self, Path};
use shared::openapi::OpenApiRouter;
use shared::validate::Validator;
use stripe_billing::subscription::UpdateSubscription;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The statuses in which a subscription is still billing (or about to).
pub const LIVE: [&str; 3] = ["active", "trialing", "past_due"];

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new().routes(routes!(cancel)).routes(routes!(resume))
}

/// What was asked of Stripe; the billing summary changes when Stripe's event arrives.
#[derive(Serialize, ToSchema)]
pub struct CancellationRequested {
    subscription: String,
    requested: Cancellation,
    detail: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Cancellation {
    cancel_at_period_end: bool,
}

/// Cancels the subscription at the end of its period (owners and admins).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/subscription/cancel", operation_id = "billing_subscription_cancel", tag = "billing", params(("workspace_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key asks Stripe once (at most 255 visible characters).")), responses((status = 202, body = CancellationRequested), (status = 409), (status = 502)))]
async fn cancel(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<CancellationRequested>), ApiError> {
    set_cancel_at_period_end(&state, &caller, workspace_id, &headers, true).await
}

/// Takes back a cancellation at the period's end (owners and admins).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/subscription/resume", operation_id = "billing_subscription_resume", tag = "billing", params(("workspace_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key asks Stripe once (at most 255 visible characters).")), responses((status = 202, body = CancellationRequested), (status = 409), (status = 502)))]
async fn resume(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<CancellationRequested>), ApiError> {
    set_cancel_at_period_end(&state, &caller, workspace_id, &headers, false).await
}

async fn set_cancel_at_period_end(
    state: &BillingState,
    caller: &Caller,
    workspace_id: Uuid,
    headers: &HeaderMap,
    cancel: bool,
) -> Result<(StatusCode, Json<CancellationRequested>), ApiError> {
    let mut v = Validator::default();
    let request_key = v.check(extract::idempotency_key(headers));
    // The client's key makes its retries one request; without one, each request is its own (a
    // cancel, a resume and a cancel again must each reach Stripe).
    let request_key = v.finish(|| request_key)?.unwrap_or_else(|| Uuid::new_v4().to_string());
    let (mut tx, access) = state.app.open_workspace(caller, workspace_id).await?;
    access.require_manager()?;
    let subscription = sqlx::query_scalar!(
        "SELECT stripe_subscription_id FROM subscriptions WHERE workspace_id = $1 AND status = ANY($2)",
        workspace_id,
        &LIVE[..] as &[&str],
    )
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
        Json(CancellationRequested {
            subscription,
            requested: Cancellation { cancel_at_period_end: cancel },
            detail: "Requested from Stripe; the billing summary shows it once Stripe confirms.",
        }),
    ))
}

//! Extending a workspace's trial: the operator asks Stripe to move the trial's end (no
//! proration); the subscription's new end reaches this database through Stripe's webhook, as
//! every billing change does. Audited with the operator, the reason and both dates.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::http::extract::{self, Path};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AdminState, Operator, required_reason};
use utoipa::ToSchema;

/// Stripe refuses trials ending more than two years ahead.
const LONGEST_TRIAL: time::Duration = time::Duration::days(730);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    #[serde(with = "time::serde::rfc3339")]
    trial_end: OffsetDateTime,
    reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct Requested {
    workspace_id: Uuid,
    stripe_subscription_id: String,
    #[serde(with = "time::serde::rfc3339::option")]
    previous_trial_end: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    trial_end: OffsetDateTime,
}

/// Moves a trialing subscription's trial end (asked of Stripe; the sync records it).
#[utoipa::path(post, path = "/v1/admin/workspaces/{workspace_id}/trial", operation_id = "admin_trial_extend", tag = "admin", params(("workspace_id" = Uuid, Path)), request_body = Extension, responses((status = 202, body = Requested), (status = 409), (status = 502)))]
pub async fn extend(
    State(state): State<AdminState>,
    Operator(operator): Operator,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<Extension>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    let why = required_reason(&input.reason)?;
    let now = OffsetDateTime::now_utc();
    if input.trial_end <= now || input.trial_end > now + LONGEST_TRIAL {
        return Err(ApiError::validation("trial_end", "must be in the future, at most two years ahead"));
    }
    let stripe = state
        .stripe
        .as_ref()
        .ok_or_else(|| ApiError::ServiceUnavailable("Stripe is not configured for the admin API.".into()))?;
    // Nullable overrides: the subscription is left-joined (a workspace may have none).
    let subscription = sqlx::query!(
        r#"SELECT s.stripe_subscription_id AS "subscription_id?", s.status AS "status?", s.trial_end AS "trial_end?"
           FROM workspaces w LEFT JOIN subscriptions s ON s.workspace_id = w.id WHERE w.id = $1"#,
        workspace_id,
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(subscription) = subscription else {
        return Err(ApiError::NotFound("workspace"));
    };
    let (subscription_id, status, previous_trial_end) =
        (subscription.subscription_id, subscription.status, subscription.trial_end);
    let (Some(subscription_id), Some("trialing")) = (subscription_id, status.as_deref()) else {
        return Err(ApiError::Conflict {
            code: "not_trialing",
            detail: "The workspace has no subscription in its trial; only a trial can be extended.".into(),
        });
    };
    if previous_trial_end.is_some_and(|end| input.trial_end <= end) {
        return Err(ApiError::validation("trial_end", "must be later than the trial's current end"));
    }
    let trial_end = input.trial_end.unix_timestamp();
    let key = format!("extend-trial:{subscription_id}:{trial_end}");
    let updated = stripe.extend_trial(&subscription_id, trial_end, &key).await.map_err(|error| {
        tracing::error!(%workspace_id, %error, "Stripe did not extend the trial");
        ApiError::Upstream { code: "billing_provider_error", detail: "Stripe did not extend the trial; retry.".into() }
    })?;
    if updated.is_none() {
        return Err(ApiError::Conflict {
            code: "not_trialing",
            detail: "Stripe no longer has this subscription; the workspace's billing will catch up.".into(),
        });
    }
    let actor = crate::actor(&operator);
    sqlx::query!(
        "INSERT INTO audit_log (workspace_id, actor, action, details) VALUES ($1, $2, $3, $4)",
        workspace_id,
        &actor,
        "subscription.trial_extended",
        serde_json::json!({
            "reason": why,
            "stripe_subscription_id": subscription_id,
            "from": previous_trial_end.map(|t| t.unix_timestamp()),
            "to": trial_end,
        }),
    )
    .execute(&state.pool)
    .await?;
    tracing::warn!(%workspace_id, %actor, trial_end, reason = why, "trial extended");
    Ok((
        StatusCode::ACCEPTED,
        Json(Requested {
            workspace_id,
            stripe_subscription_id: subscription_id,
            previous_trial_end,
            trial_end: OffsetDateTime::from_unix_timestamp(trial_end).unwrap_or(input.trial_end),
        }),
    ))
}

//! AI runs beyond the plan's quota, as owners and admins see and limit them: whether the plan
//! admits them, what one costs (the subscription's metered overage price, as Stripe last said),
//! how many ran in the quota's current window, and the workspace's spending cap, which stops
//! them once reached (`app.reserve_ai_run` decides, in the statement that reserves a run).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::auth::Caller;
use shared::http::extract::{self, Path};
use shared::openapi::OpenApiRouter;
use shared::plans;
use shared::{ApiError, AppState};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The largest cap accepted: a billion in the currency's main unit.
const MAX_CAP: i64 = 100_000_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read, set_cap))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CapInput {
    /// The most runs beyond the quota may cost per window, in the currency's smallest unit;
    /// `null` (or left out) for no cap, `0` for no runs beyond the quota at all.
    #[schema(minimum = 0, maximum = 100_000_000_000_f64)]
    cap: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct OverageView {
    /// The plan (or an operator's override) admits runs beyond the quota.
    admitted: bool,
    /// The subscription has the overage price, so such runs can be billed; without it none is
    /// admitted.
    billable: bool,
    /// What one run beyond the quota costs, in the currency's smallest unit (a decimal string,
    /// as Stripe's `unit_amount_decimal`).
    unit_amount: Option<String>,
    currency: Option<String>,
    cap: Option<i64>,
    /// Runs beyond the quota in the current window, and what they cost (rounded).
    runs: i64,
    spent: i64,
    /// How many more the cap allows in this window; `null` when nothing limits them.
    remaining_runs: Option<i64>,
    window: Window,
}

#[derive(Serialize, ToSchema)]
struct Window {
    #[schema(value_type = String, format = Date)]
    starts: time::Date,
    #[schema(value_type = String, format = Date)]
    renews: time::Date,
}

/// AI runs beyond the quota: whether they are admitted, their price, use and spending cap (owners and admins).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/billing/ai-overage", operation_id = "billing_ai_overage_read", tag = "billing", params(("workspace_id" = Uuid, Path)), responses((status = 200, body = OverageView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
) -> Result<Json<OverageView>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let view = view(&mut tx, workspace_id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Sets the spending cap on AI runs beyond the quota (owners and admins); `null` lifts it.
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/billing/ai-overage", operation_id = "billing_ai_overage_set", tag = "billing", params(("workspace_id" = Uuid, Path)), request_body = CapInput, responses((status = 200, body = OverageView)))]
async fn set_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<CapInput>,
) -> Result<Json<OverageView>, ApiError> {
    if input.cap.is_some_and(|cap| !(0..=MAX_CAP).contains(&cap)) {
        return Err(ApiError::validation("cap", format!("must be between 0 and {MAX_CAP}, or null for no cap")));
    }
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    sqlx::query!("UPDATE workspaces SET ai_overage_cap = $2 WHERE id = $1", workspace_id, input.cap)
        .execute(&mut *tx)
        .await?;
    let view = view(&mut tx, workspace_id).await?;
    tx.commit().await?;
    tracing::info!(%workspace_id, cap = ?input.cap, "AI overage cap set");
    Ok(Json(view))
}

async fn view(tx: &mut shared::db::TenantTx, workspace_id: Uuid) -> Result<OverageView, ApiError> {
    let row = sqlx::query!(
        r#"SELECT app.effective_plan($1) AS "plan!", app.active_overrides($1) AS "overrides!",
                  w.ai_overage_cap, s.overage_unit_amount::text AS unit_amount, s.currency,
                  coalesce(q.overage, 0)::int8 AS "runs!",
                  round(coalesce(q.overage, 0) * coalesce(s.overage_unit_amount, 0))::int8 AS "spent!",
                  app.ai_overage_allowance($1) AS allowance,
                  p.starts AS "starts!", (p.starts + interval '1 month')::date AS "renews!"
           FROM workspaces w
           CROSS JOIN LATERAL (SELECT app.ai_quota_period($1) AS starts) p
           LEFT JOIN subscriptions s ON s.workspace_id = w.id AND s.status = ANY('{active,trialing,past_due}')
           LEFT JOIN ai_quota_usage q ON q.workspace_id = w.id AND q.period = p.starts
           WHERE w.id = $1"#,
        workspace_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    let plan = plans::by_id(&row.plan).with_overrides(&row.overrides);
    let billable = row.unit_amount.is_some();
    Ok(OverageView {
        admitted: plan.features.ai_overage,
        billable,
        unit_amount: row.unit_amount,
        currency: row.currency,
        cap: row.ai_overage_cap,
        runs: row.runs,
        spent: row.spent,
        remaining_runs: row.allowance.map(|allowed| (allowed - row.runs).max(0)),
        window: Window { starts: row.starts, renews: row.renews },
    })
}

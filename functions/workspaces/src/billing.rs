//! A workspace's billing state as members see it: plan, subscription status, entitlements and
//! usage against limits, and the seats of a per-seat plan. Read-only and derived only from the webhook-synced subscription; the
//! checkout and portal functions change it through Stripe.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use shared::auth::Caller;
use shared::http::extract::Path;
use shared::openapi::OpenApiRouter;
use shared::plans::{self, Features, Limits};
use shared::{ApiError, AppState};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read))
}

#[derive(Serialize, ToSchema)]
struct BillingView {
    /// The plan the workspace is entitled to now.
    plan: &'static str,
    /// The subscription's plan, which differs from `plan` when it no longer entitles.
    subscribed_plan: Option<String>,
    /// Stripe's subscription status, or `none`.
    status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    current_period_end: Option<OffsetDateTime>,
    cancel_at_period_end: bool,
    /// While `past_due`, the end of the grace period during which the plan is kept.
    #[serde(with = "time::serde::rfc3339::option")]
    grace_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    trial_end: Option<OffsetDateTime>,
    /// The next invoice, while the subscription renews: its date (the period's end) and its
    /// recurring amount (the prices per month, before prorations, discounts and tax).
    next_invoice: Option<NextInvoice>,
    /// `paid` (nothing owed), `failed` (the last payment failed; Stripe retries until the grace
    /// period ends), or `none` (no subscription).
    payment: &'static str,
    entitlements: Entitlements,
    usage: Usage,
    /// On a per-seat plan: the seats bought and the seats to bill.
    seats: Option<Seats>,
}

#[derive(Serialize, ToSchema)]
struct Seats {
    /// The subscription's quantity as Stripe last said: the member limit of the plan.
    purchased: Option<i32>,
    /// Members and pending member invitations; the quantity follows within a minute or two.
    billable: i32,
    /// The most seats the plan sells.
    max: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct NextInvoice {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// In the currency's smallest unit; `null` if Stripe's prices did not say.
    amount: Option<i64>,
    currency: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Entitlements {
    features: Features,
    limits: Limits,
}

#[derive(Serialize, ToSchema)]
struct Usage {
    projects: i64,
    members: i64,
    /// Bytes the workspace's files take, uploads not yet confirmed included (`storage_mb` is
    /// the limit, in MiB).
    storage_bytes: i64,
}

struct Row {
    effective_plan: String,
    /// Operators' entitlement overrides in force (the entitlements below include them).
    overrides: serde_json::Value,
    plan_id: Option<String>,
    status: Option<String>,
    current_period_end: Option<OffsetDateTime>,
    cancel_at_period_end: Option<bool>,
    grace_until: Option<OffsetDateTime>,
    trial_end: Option<OffsetDateTime>,
    monthly_amount: Option<i64>,
    currency: Option<String>,
    quantity: Option<i32>,
    billable_seats: Option<i32>,
    projects: i64,
    members: i64,
    storage_bytes: i64,
}

/// The workspace's plan, subscription, entitlements, usage and seats.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/billing", operation_id = "billing_read", tag = "billing", params(("workspace_id" = Uuid, Path)), responses((status = 200, body = BillingView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
) -> Result<Json<BillingView>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_member()?;
    let row = sqlx::query_as!(
        Row,
        r#"SELECT app.effective_plan($1) AS "effective_plan!", app.active_overrides($1) AS "overrides!",
                s.plan_id, s.status, s.current_period_end, s.cancel_at_period_end, s.grace_until,
                s.trial_end, s.monthly_amount, s.currency, s.quantity, app.workspace_billable_seats($1) AS billable_seats,
                (SELECT count(*) FROM projects WHERE workspace_id = $1) AS "projects!",
                (SELECT count(*) FROM workspace_members WHERE workspace_id = $1) AS "members!",
                coalesce((SELECT used_bytes FROM workspace_storage WHERE workspace_id = $1), 0) AS "storage_bytes!"
         FROM (SELECT $1::uuid AS id) w LEFT JOIN subscriptions s ON s.workspace_id = w.id"#,
        workspace_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut plan = plans::by_id(&row.effective_plan).with_overrides(&row.overrides);
    let seats = plan.per_seat.then(|| Seats {
        purchased: row.quantity,
        billable: row.billable_seats.unwrap_or_default(),
        max: plan.limits.members,
    });
    if plan.per_seat && row.overrides.get("members").is_none() {
        // A per-seat plan's members are what was bought.
        plan.limits.members = row.quantity.and_then(|q| u32::try_from(q).ok()).or(plan.limits.members);
    }
    let status = row.status.unwrap_or_else(|| "none".to_owned());
    let cancel_at_period_end = row.cancel_at_period_end.unwrap_or(false);
    let renews = matches!(status.as_str(), "active" | "trialing" | "past_due") && !cancel_at_period_end;
    let next_invoice = row.current_period_end.filter(|_| renews).map(|at| NextInvoice {
        at,
        amount: row.monthly_amount,
        currency: row.currency.clone(),
    });
    let payment = match status.as_str() {
        "none" => "none",
        "past_due" | "unpaid" => "failed",
        _ => "paid",
    };
    Ok(Json(BillingView {
        plan: plan.id,
        subscribed_plan: row.plan_id,
        status,
        current_period_end: row.current_period_end,
        cancel_at_period_end,
        grace_until: row.grace_until,
        trial_end: row.trial_end,
        next_invoice,
        payment,
        entitlements: Entitlements { features: plan.features, limits: plan.limits },
        usage: Usage { projects: row.projects, members: row.members, storage_bytes: row.storage_bytes },
        seats,
    }))
}

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
    /// How often the subscription renews (`month` or `year`); `null` without one.
    interval: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    current_period_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    current_period_end: Option<OffsetDateTime>,
    cancel_at_period_end: bool,
    /// While `past_due`, the end of the grace period during which the plan is kept.
    #[serde(with = "time::serde::rfc3339::option")]
    grace_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    trial_end: Option<OffsetDateTime>,
    /// The next invoice, while the subscription renews: its date (the period's end) and its
    /// recurring amount (the prices per period, before prorations, discounts and tax; Stripe's
    /// exact preview, tax included, is `upcoming` on `GET .../invoices`).
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
    /// AI runs counted against `ai_runs_per_month` in the quota's current window: a month of
    /// the billing period, from the subscription's period start (the calendar month without a
    /// subscription).
    ai_runs: i64,
    /// AI runs beyond the quota in the same window (billed; see `.../billing/ai-overage`).
    ai_overage_runs: i64,
    ai_quota_window: QuotaWindow,
}

#[derive(Serialize, ToSchema)]
struct QuotaWindow {
    /// The window's first day (UTC).
    #[schema(value_type = String, format = Date)]
    starts: time::Date,
    /// The day the quota renews.
    #[schema(value_type = String, format = Date)]
    renews: time::Date,
}

struct Row {
    effective_plan: String,
    /// Operators' entitlement overrides in force (the entitlements below include them).
    overrides: serde_json::Value,
    plan_id: Option<String>,
    status: Option<String>,
    billing_interval: Option<String>,
    current_period_start: Option<OffsetDateTime>,
    current_period_end: Option<OffsetDateTime>,
    cancel_at_period_end: Option<bool>,
    grace_until: Option<OffsetDateTime>,
    trial_end: Option<OffsetDateTime>,
    period_amount: Option<i64>,
    currency: Option<String>,
    quantity: Option<i32>,
    billable_seats: Option<i32>,
    projects: i64,
    members: i64,
    storage_bytes: i64,
    ai_runs: i64,
    ai_overage_runs: i64,
    quota_starts: time::Date,
    quota_renews: time::Date,
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
                s.plan_id, s.status, s.billing_interval, s.current_period_start, s.current_period_end,
                s.cancel_at_period_end, s.grace_until, s.trial_end, s.period_amount, s.currency, s.quantity,
                app.workspace_billable_seats($1) AS billable_seats,
                (SELECT count(*) FROM projects WHERE workspace_id = $1) AS "projects!",
                (SELECT count(*) FROM workspace_members WHERE workspace_id = $1) AS "members!",
                coalesce((SELECT used_bytes FROM workspace_storage WHERE workspace_id = $1), 0) AS "storage_bytes!",
                coalesce(u.reserved, 0)::int8 AS "ai_runs!", coalesce(u.overage, 0)::int8 AS "ai_overage_runs!",
                q.starts AS "quota_starts!", (q.starts + interval '1 month')::date AS "quota_renews!"
         FROM (SELECT $1::uuid AS id, app.ai_quota_period($1) AS starts) q
         LEFT JOIN subscriptions s ON s.workspace_id = q.id
         LEFT JOIN ai_quota_usage u ON u.workspace_id = q.id AND u.period = q.starts"#,
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
        amount: row.period_amount,
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
        interval: row.billing_interval,
        current_period_start: row.current_period_start,
        current_period_end: row.current_period_end,
        cancel_at_period_end,
        grace_until: row.grace_until,
        trial_end: row.trial_end,
        next_invoice,
        payment,
        entitlements: Entitlements { features: plan.features, limits: plan.limits },
        usage: Usage {
            projects: row.projects,
            members: row.members,
            storage_bytes: row.storage_bytes,
            ai_runs: row.ai_runs,
            ai_overage_runs: row.ai_overage_runs,
            ai_quota_window: QuotaWindow { starts: row.quota_starts, renews: row.quota_renews },
        },
        seats,
    }))
}

//! Changing plan through the API (owners and admins), in two steps, so what the customer
//! confirmed is what is charged:
//!
//! 1. `POST .../billing/subscription/preview {plan, interval?}` answers Stripe's invoice preview
//!    of exactly that change (for one applied now, the prorations at a pinned proration date)
//!    and a signed token of it, valid 15 minutes.
//! 2. `POST .../billing/subscription {preview_token}` applies it, only while everything the
//!    preview was computed from still holds: the subscription's price, quantity and period, the
//!    seats to buy, and what Stripe says is due (asked again at the same proration date).
//!    Anything else is `409 preview_stale`, and nothing is asked of Stripe.
//!
//! A bigger plan, or a move to yearly billing, applies now (prorated, invoiced at once); a
//! smaller plan, or a move to monthly billing, at the end of the period (a Stripe subscription
//! schedule), and is refused while the workspace uses more than the smaller plan allows, with
//! what to remove first. A per-seat plan is asked for with the workspace's billable seats. The
//! API answers `202`; the plan changes when Stripe's event arrives.

mod blockers;
mod resolve;
mod stripe_calls;
mod token;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::ApiError;
use shared::auth::Caller;
use shared::billing::BillingState;
use shared::http::extract::{self, Path};
use shared::openapi::OpenApiRouter;
use shared::plans::{self, Interval};
use shared::stripe::timestamp;
use shared::validate::Validator;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

use resolve::{Change, resolve};
use token::{Claims, TokenError};

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new().routes(routes!(preview)).routes(routes!(change))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    #[schema(schema_with = shared::openapi::schemas::paid_plan)]
    plan: String,
    /// `month` or `year`; the subscription's own interval when left out.
    #[serde(default)]
    interval: Option<Interval>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    /// The `token` of a preview of this workspace's, less than 15 minutes old.
    #[schema(min_length = 1, max_length = 4096)]
    preview_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    Now,
    PeriodEnd,
}

/// What a change will cost, as Stripe computed it, and the token to confirm it with.
#[derive(Serialize, ToSchema)]
pub struct PlanChangePreview {
    plan: &'static str,
    interval: Interval,
    /// Seats on a per-seat plan, else 1.
    quantity: u64,
    effective: Effective,
    /// When it takes effect: the pinned proration date for a change now, the period's end for
    /// one scheduled.
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// For a change now, the invoice created at once (credit for the unused time, the new
    /// price for the rest, tax); for one at the period's end, the first invoice at the new price.
    invoice: PreviewInvoice,
    /// Send it back to confirm: `POST .../billing/subscription {"preview_token": ...}`.
    token: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// Amounts in the currency's smallest unit.
#[derive(Serialize, ToSchema)]
pub struct PreviewInvoice {
    currency: String,
    subtotal: i64,
    tax: i64,
    total: i64,
    /// What will be charged (the total less the customer's credit balance).
    amount_due: i64,
    lines: Vec<PreviewLine>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewLine {
    description: Option<String>,
    amount: i64,
    /// A credit or charge for part of a period.
    proration: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    period_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    period_end: Option<OffsetDateTime>,
}

impl PreviewInvoice {
    fn from_stripe(invoice: &Value) -> Self {
        let amount = |field: &str| invoice[field].as_i64().unwrap_or(0);
        let lines = invoice["lines"]["data"].as_array().into_iter().flatten();
        Self {
            currency: invoice["currency"].as_str().unwrap_or_default().to_owned(),
            subtotal: amount("subtotal"),
            tax: shared::stripe::invoice_tax(invoice),
            total: amount("total"),
            amount_due: amount("amount_due"),
            lines: lines
                .map(|line| PreviewLine {
                    description: line["description"].as_str().map(str::to_owned),
                    amount: line["amount"].as_i64().unwrap_or(0),
                    // Newer API versions say it under `parent`, older ones on the line.
                    proration: line["proration"] == true
                        || line.pointer("/parent/subscription_item_details/proration") == Some(&Value::Bool(true)),
                    period_start: timestamp(&line["period"]["start"]),
                    period_end: timestamp(&line["period"]["end"]),
                })
                .collect(),
        }
    }
}

/// What was asked of Stripe; the billing summary changes when Stripe's event arrives.
#[derive(Serialize, ToSchema)]
pub struct PlanChangeRequested {
    subscription: String,
    requested: PlanChange,
}

#[derive(Serialize, ToSchema)]
pub struct PlanChange {
    plan: &'static str,
    interval: Interval,
    /// An upgrade applies now; a downgrade at the period's end.
    effective: Effective,
    /// When a downgrade takes effect (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    /// What the preview said is due, as confirmed.
    amount_due: i64,
    currency: String,
}

fn stale(detail: impl Into<String>) -> ApiError {
    ApiError::Conflict { code: "preview_stale", detail: detail.into() }
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn time_of(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Previews a plan change: Stripe's invoice for exactly that change, and the token to apply it.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/subscription/preview", operation_id = "billing_subscription_preview", tag = "billing", params(("workspace_id" = Uuid, Path)), request_body = PreviewInput, responses((status = 200, body = PlanChangePreview), (status = 409), (status = 502)))]
async fn preview(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<PreviewInput>,
) -> Result<Json<PlanChangePreview>, ApiError> {
    let mut v = Validator::default();
    let target = v.check(plans::paid(&input.plan));
    let target = v.finish(|| target)?;
    let (tx, access) = state.app.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let change = resolve(&state, tx, workspace_id, target, input.interval).await?;
    if change.is_current() {
        return Err(ApiError::Conflict {
            code: "already_on_plan",
            detail: format!(
                "The workspace is already on the {} plan, billed every {}.",
                target.name,
                change.interval.as_str()
            ),
        });
    }
    let now = unix_now();
    let proration_date = (change.effective == Effective::Now).then_some(now);
    let invoice = PreviewInvoice::from_stripe(&stripe_calls::preview(&state, &change, proration_date).await?);
    let claims = Claims {
        workspace: workspace_id,
        subscription: change.subscription.clone(),
        item: change.item.clone(),
        from_price: change.from_price.clone(),
        from_quantity: change.from_quantity,
        period_end: change.period_end,
        plan: target.id.to_owned(),
        interval: change.interval,
        price: change.price.clone(),
        quantity: change.quantity,
        effective: change.effective,
        proration_date,
        amount_due: invoice.amount_due,
        currency: invoice.currency.clone(),
        expires: now + token::LIFETIME_SECS,
    };
    Ok(Json(PlanChangePreview {
        plan: target.id,
        interval: change.interval,
        quantity: change.quantity,
        effective: change.effective,
        at: time_of(change.takes_effect(proration_date)),
        invoice,
        token: token::sign(&claims, &state.signing_key),
        expires_at: time_of(claims.expires),
    }))
}

/// What differs between the preview and the subscription now; `None` when nothing does.
fn drift(claims: &Claims, change: &Change) -> Option<&'static str> {
    if claims.subscription != change.subscription || claims.item != change.item {
        return Some("The subscription was replaced since the preview.");
    }
    if claims.period_end != change.period_end {
        return Some("The billing period changed since the preview.");
    }
    if claims.from_price != change.from_price || claims.from_quantity != change.from_quantity {
        return Some("The subscription changed since the preview.");
    }
    if claims.quantity != change.quantity {
        return Some("The seats to buy changed since the preview (members joined or left).");
    }
    if claims.price != change.price || claims.effective != change.effective {
        return Some("The plan's price changed since the preview.");
    }
    None
}

/// Applies a previewed plan change: now (prorated as previewed, invoiced at once) or at the
/// period's end. Refused as `preview_stale` when anything it was computed from has changed.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/subscription", operation_id = "billing_subscription_change", tag = "billing", params(("workspace_id" = Uuid, Path)), request_body = ChangeInput, responses((status = 202, body = PlanChangeRequested), (status = 409), (status = 502)))]
pub async fn change(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<ChangeInput>,
) -> Result<(StatusCode, Json<PlanChangeRequested>), ApiError> {
    let (tx, access) = state.app.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let claims = token::verify(&input.preview_token, &state.signing_key, workspace_id, unix_now()).map_err(
        |error| match error {
            TokenError::Invalid => ApiError::validation(
                "preview_token",
                "is not a preview this API issued for this workspace; preview the change again",
            ),
            TokenError::Expired => stale("The preview expired; preview the change again to see what it costs now."),
        },
    )?;
    let target = plans::paid(&claims.plan).map_err(|_| stale("The previewed plan is no longer sold."))?;
    let change = resolve(&state, tx, workspace_id, target, Some(claims.interval)).await?;
    // Answered as previewed (a replayed confirmation finds the change already made).
    let applied = || {
        let at = (claims.effective == Effective::PeriodEnd)
            .then(|| time_of(claims.period_end).format(&time::format_description::well_known::Rfc3339).ok())
            .flatten();
        (
            StatusCode::ACCEPTED,
            Json(PlanChangeRequested {
                subscription: claims.subscription.clone(),
                requested: PlanChange {
                    plan: target.id,
                    interval: claims.interval,
                    effective: claims.effective,
                    at,
                    amount_due: claims.amount_due,
                    currency: claims.currency.clone(),
                },
            }),
        )
    };
    // A confirmation retried after Stripe applied it (its event not yet synced): the same answer.
    if claims.effective == Effective::Now
        && change.from_price == claims.price
        && change.from_quantity == claims.quantity
        && change.subscription == claims.subscription
    {
        return Ok(applied());
    }
    if let Some(reason) = drift(&claims, &change) {
        return Err(stale(format!("{reason} Preview the change again.")));
    }
    // Asked again at the same proration date: what Stripe would charge now must be what was shown
    // (a changed address, tax rate, discount or balance shows here).
    let again = PreviewInvoice::from_stripe(&stripe_calls::preview(&state, &change, claims.proration_date).await?);
    if again.amount_due != claims.amount_due || again.currency != claims.currency {
        return Err(stale(format!(
            "Stripe now computes {} {} due instead of the {} previewed. Preview the change again.",
            again.amount_due, again.currency, claims.amount_due
        )));
    }
    let digest = token::digest(&input.preview_token);
    let key = |step: &str| format!("{step}:{}:{digest}", change.subscription);
    match (change.effective, claims.proration_date) {
        (Effective::Now, Some(proration_date)) => {
            stripe_calls::apply_now(&state, &change, proration_date, &key).await?;
            tracing::info!(%workspace_id, subscription = %change.subscription, plan = target.id, interval = change.interval.as_str(), "plan change applied");
        }
        _ => {
            let schedule = stripe_calls::schedule_at_period_end(&state, &change, &key).await?;
            tracing::info!(%workspace_id, subscription = %change.subscription, %schedule, plan = target.id, interval = change.interval.as_str(), "plan change scheduled");
        }
    }
    Ok(applied())
}

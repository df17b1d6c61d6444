//! Changing plan through the API (owners and admins): `POST .../billing/subscription {plan}`.
//! An upgrade applies at once, prorated and invoiced now; a downgrade applies at the end of the
//! current period, through a Stripe subscription schedule (its current phase kept to the
//! period's end, the new plan's phase after it, then released), and is refused while the
//! workspace uses more than the new plan allows, with what to remove first. A per-seat plan is
//! asked for with the workspace's billable seats as its quantity. The API answers
//! `202` with what it asked Stripe; the plan changes when Stripe's event arrives.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::db::TenantTx;
use shared::error::FieldError;
use shared::http::extract::{self, Path};
use shared::plans::{self, Plan};
use shared::stripe::{StripeError, first_of_list, id_of, text};
use shared::validate::Validator;
use stripe_billing::SubscriptionScheduleEndBehavior;
use stripe_billing::subscription::{
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};
use stripe_billing::subscription_schedule::{
    CreateSubscriptionSchedule, ReleaseSubscriptionSchedule, UpdateSubscriptionSchedule,
    UpdateSubscriptionSchedulePhases, UpdateSubscriptionSchedulePhasesEndDate, UpdateSubscriptionSchedulePhasesItems,
    UpdateSubscriptionSchedulePhasesStartDate,
};
use stripe_product::price::ListPrice;
use uuid::Uuid;

use crate::subscription::LIVE;
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    #[schema(schema_with = shared::openapi::schemas::paid_plan)]
    plan: String,
}

/// A plan's place in the catalog: later is bigger.
fn rank(plan: &Plan) -> usize {
    plans::CATALOG.iter().position(|p| p.id == plan.id).unwrap_or(0)
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
    /// An upgrade applies now; a downgrade at the period's end.
    effective: Effective,
    /// When a downgrade takes effect (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    Now,
    PeriodEnd,
}

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new().routes(routes!(change))
}

/// Changes the plan: an upgrade now (prorated, invoiced at once), a downgrade at the period's end.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/subscription", operation_id = "billing_subscription_change", tag = "billing", params(("workspace_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key asks Stripe once (at most 255 visible characters).")), request_body = ChangeInput, responses((status = 202, body = PlanChangeRequested), (status = 409), (status = 502)))]
pub async fn change(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
    extract::Json(input): extract::Json<ChangeInput>,
) -> Result<(StatusCode, Json<PlanChangeRequested>), ApiError> {
    let mut v = Validator::default();
    let target = v.check(plans::paid(&input.plan));
    let request_key = v.check(extract::idempotency_key(&headers));
    let (target, request_key) = v.finish(|| Some((target?, request_key?)))?;
    let request_key = request_key.unwrap_or_else(|| Uuid::new_v4().to_string());
    let (mut tx, access) = state.app.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let current = sqlx::query!(
        "SELECT stripe_subscription_id, plan_id FROM subscriptions WHERE workspace_id = $1 AND status = ANY($2)",
        workspace_id,
        &LIVE[..] as &[&str],
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|row| (row.stripe_subscription_id, row.plan_id));
    let (subscription, current_plan) = current.ok_or_else(|| ApiError::Conflict {
        code: "no_subscription",
        detail: "The workspace has no live subscription; start one with checkout.".into(),
    })?;
    let current_plan = plans::by_id(&current_plan);
    if current_plan.id == target.id {
        return Err(ApiError::Conflict {
            code: "already_on_plan",
            detail: format!("The workspace is already on the {} plan.", target.name),
        });
    }
    let upgrade = rank(&target) > rank(&current_plan);
    if !upgrade {
        let blockers = downgrade_blockers(&mut tx, workspace_id, target).await?;
        if !blockers.is_empty() {
            return Err(ApiError::Blocked {
                code: "downgrade_blocked",
                detail: format!(
                    "The workspace uses more than the {} plan allows; see `errors` for what to remove first.",
                    target.name
                ),
                errors: blockers,
            });
        }
    }
    let quantity = shared::billing::quantity_to_buy(&mut tx, workspace_id, &target).await?;
    tx.commit().await?;

    let lookup_key = target.stripe_lookup_key.unwrap_or_default();
    let prices = ListPrice::new().lookup_keys(vec![lookup_key.to_owned()]).active(true).limit(1);
    let price = first_of_list(state.stripe.get(prices).await.map_err(stripe_failure)?).map_err(stripe_failure)?;
    let price = price.ok_or_else(|| {
        tracing::error!(lookup_key, "no active Stripe price has this lookup key");
        ApiError::Upstream { code: "billing_not_configured", detail: "This plan cannot be bought right now.".into() }
    })?;
    let price = text(&price, "id").map_err(stripe_failure)?;
    let held = state.stripe.get(RetrieveSubscription::new(subscription.as_str())).await.map_err(missing_or_failure)?;
    let Some(item) = shared::stripe::plan_item(&held) else {
        return Err(stripe_failure(StripeError::Unexpected("a subscription without its item".into())));
    };
    let (item_id, current_price) = match (text(item, "id"), item["price"]["id"].as_str()) {
        (Ok(id), Some(price)) => (id, price.to_owned()),
        _ => return Err(stripe_failure(StripeError::Unexpected("a subscription without its item".into()))),
    };
    let schedule = held.get("schedule").and_then(id_of);
    // The quantity is part of what is asked: a retry after the seats changed is a new request
    // (for the seats now), not one Stripe refuses as a key reused with other parameters.
    let key = |step: &str| format!("{step}:{subscription}:{}:{quantity}:{request_key}", target.id);

    if upgrade {
        // A downgrade waiting for the period's end gives way to the upgrade.
        if let Some(schedule) = &schedule {
            state
                .stripe
                .post(ReleaseSubscriptionSchedule::new(schedule.as_str()), &key("release"))
                .await
                .map_err(stripe_failure)?;
        }
        let mut change = UpdateSubscriptionItems::new();
        change.id = Some(item_id);
        change.price = Some(price);
        change.quantity = Some(quantity);
        let request = UpdateSubscription::new(subscription.as_str())
            .items(vec![change])
            .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice);
        state.stripe.post(request, &key("upgrade")).await.map_err(stripe_failure)?;
        tracing::info!(%workspace_id, %subscription, plan = target.id, "upgrade requested");
        return Ok((
            StatusCode::ACCEPTED,
            Json(PlanChangeRequested {
                subscription,
                requested: PlanChange { plan: target.id, effective: Effective::Now, at: None },
            }),
        ));
    }

    let (Some(start), Some(end)) = (
        item["current_period_start"].as_i64().or_else(|| held["current_period_start"].as_i64()),
        item["current_period_end"].as_i64().or_else(|| held["current_period_end"].as_i64()),
    ) else {
        return Err(stripe_failure(StripeError::Unexpected("a subscription without its period".into())));
    };
    let schedule = match schedule {
        Some(schedule) => schedule,
        None => {
            let created = CreateSubscriptionSchedule::new().from_subscription(subscription.as_str());
            let created = state.stripe.post(created, &key("schedule")).await.map_err(stripe_failure)?;
            text(&created, "id").map_err(stripe_failure)?
        }
    };
    let phase = |price: String, quantity: u64| {
        let mut item = UpdateSubscriptionSchedulePhasesItems::new();
        item.price = Some(price);
        item.quantity = Some(quantity);
        UpdateSubscriptionSchedulePhases::new(vec![item])
    };
    let mut now = phase(current_price, item["quantity"].as_u64().unwrap_or(1));
    now.start_date = Some(UpdateSubscriptionSchedulePhasesStartDate::Timestamp(start));
    now.end_date = Some(UpdateSubscriptionSchedulePhasesEndDate::Timestamp(end));
    let request = UpdateSubscriptionSchedule::new(schedule.as_str())
        .end_behavior(SubscriptionScheduleEndBehavior::Release)
        .phases(vec![now, phase(price, quantity)]);
    state.stripe.post(request, &key("downgrade")).await.map_err(stripe_failure)?;
    tracing::info!(%workspace_id, %subscription, %schedule, plan = target.id, "downgrade scheduled");
    let at = time::OffsetDateTime::from_unix_timestamp(end)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    Ok((
        StatusCode::ACCEPTED,
        Json(PlanChangeRequested {
            subscription,
            requested: PlanChange { plan: target.id, effective: Effective::PeriodEnd, at },
        }),
    ))
}

fn missing_or_failure(error: StripeError) -> ApiError {
    if error.is_missing() {
        return ApiError::Conflict {
            code: "no_subscription",
            detail: "Stripe no longer has this subscription; the workspace's billing will catch up.".into(),
        };
    }
    stripe_failure(error)
}

/// What the workspace uses beyond what `target` (with the workspace's overrides) allows, as
/// what to remove first; empty when the downgrade fits.
async fn downgrade_blockers(tx: &mut TenantTx, workspace_id: Uuid, target: Plan) -> Result<Vec<FieldError>, ApiError> {
    let usage = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM projects WHERE workspace_id = $1) AS "projects!",
                (SELECT count(*) FROM workspace_members WHERE workspace_id = $1)
                  + (SELECT count(*) FROM invitations WHERE workspace_id = $1 AND role IS NOT NULL
                     AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()) AS "members!",
                (SELECT count(*) FROM api_keys WHERE workspace_id = $1 AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > now())) AS "keys!",
                (SELECT count(*) FROM webhook_endpoints WHERE workspace_id = $1) AS "endpoints!",
                (SELECT count(*) FROM client_contacts WHERE workspace_id = $1) AS "contacts!",
                app.active_overrides($1) AS "overrides!""#,
        workspace_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    let (projects, members, keys, endpoints, contacts, overrides) =
        (usage.projects, usage.members, usage.keys, usage.endpoints, usage.contacts, usage.overrides);
    let target = target.with_overrides(&overrides);
    let name = target.name;
    let mut blockers = Vec::new();
    let mut over = |field: &str, used: i64, allowed: Option<u32>, what: &str| {
        if let Some(allowed) = allowed.map(i64::from).filter(|allowed| used > *allowed) {
            blockers.push(FieldError::new(
                field,
                format!("remove {} {what}: {used} in use, the {name} plan allows {allowed}", used - allowed),
            ));
        }
    };
    over("projects", projects, target.limits.projects, "projects");
    over("members", members, target.limits.members, "members or pending invitations");
    let features = target.features;
    let mut without = |field: &str, used: i64, has: bool, what: &str| {
        if !has && used > 0 {
            blockers.push(FieldError::new(
                field,
                format!("remove the {used} {what}: the {name} plan does not include them"),
            ));
        }
    };
    without("api_keys", keys, features.api_access, "API keys");
    without("webhooks", endpoints, features.webhooks, "webhook endpoints");
    without("client_contacts", contacts, features.client_portal, "client contacts");
    Ok(blockers)
}

//! The `checkout` function: `POST /v1/workspaces/{id}/billing/checkout` starts a Stripe Checkout
//! Session for a paid plan. Owners and admins only. The redirect back proves nothing: the plan
//! changes only when the subscription's webhooks arrive.
//!
//! A plan's trial (`trial_days` in the catalog) comes with the workspace's first paid
//! subscription only: never again once it had a subscription or completed a checkout. A
//! per-seat plan is bought for the workspace's billable seats (members and pending member
//! invitations).
//!
//! One open session per workspace and plan: while a session is open (not completed, not about to
//! expire), every checkout for that plan answers it, even concurrent ones without an
//! `Idempotency-Key` (they wait on the workspace row's lock), so two people clicking "Upgrade"
//! at once cannot both pay. Different plans still get different sessions; the billing worker
//! cancels and refunds a second live subscription if both are paid.

mod customer;

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::db::Cost;
use shared::http::extract::{self, Path};
use shared::openapi::OpenApiRouter;
use shared::plans::{self, Interval};
use shared::stripe::text;
use shared::validate::Validator;
use shared::{ApiError, AppState};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionAutomaticTax, CreateCheckoutSessionCustomerUpdate,
    CreateCheckoutSessionCustomerUpdateAddress, CreateCheckoutSessionCustomerUpdateName,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    CreateCheckoutSessionSubscriptionDataBillingMode, CreateCheckoutSessionSubscriptionDataBillingModeType,
    CreateCheckoutSessionTaxIdCollection,
};
use stripe_checkout::{CheckoutSessionBillingAddressCollection, CheckoutSessionMode};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

pub const FUNCTION: &str = "checkout";

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new().routes(routes!(create))
}

shared::http_function!(BillingState, |state| shared::http::finish_over(router(), state, FUNCTION));

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckoutInput {
    #[schema(schema_with = shared::openapi::schemas::paid_plan)]
    plan: String,
    /// Billed every month (the default) or every year (the yearly price); the plan entitles to
    /// the same either way.
    #[serde(default)]
    interval: Option<Interval>,
    #[schema(schema_with = shared::validate::HttpUrl::schema)]
    success_url: String,
    #[schema(schema_with = shared::validate::HttpUrl::schema)]
    cancel_url: String,
}

/// Subscriptions in these states are alive: changing them is the Customer Portal's job.
const LIVE: [&str; 5] = ["active", "trialing", "past_due", "unpaid", "paused"];

/// A Stripe Checkout Session to send the customer to.
#[derive(Serialize, ToSchema)]
struct CheckoutSession {
    id: String,
    url: String,
    /// The trial it starts with (the workspace's first paid subscription only); null without.
    trial_days: Option<u32>,
    /// The seats it buys, on a per-seat plan; null otherwise.
    seats: Option<u64>,
    /// How often the subscription it starts renews.
    interval: Interval,
}

/// Starts a Stripe Checkout for a paid plan (owners and admins); an open session for the same plan is reused.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/checkout", operation_id = "billing_checkout", tag = "billing", params(("workspace_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key asks Stripe once (at most 255 visible characters).")), request_body = CheckoutInput, responses((status = 200, body = CheckoutSession), (status = 409), (status = 502)))]
async fn create(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
    extract::Json(input): extract::Json<CheckoutInput>,
) -> Result<Json<CheckoutSession>, ApiError> {
    let mut v = Validator::default();
    let plan = v.check(plans::paid(&input.plan));
    let success_url = v.check(state.redirects.check("success_url", &input.success_url));
    let cancel_url = v.check(state.redirects.check("cancel_url", &input.cancel_url));
    let request_key = v.check(extract::idempotency_key(&headers));
    let (plan, success_url, cancel_url, request_key) =
        v.finish(|| Some((plan?, success_url?, cancel_url?, request_key?)))?;
    // The client's key makes a retried click get the same session; without one, a fresh key.
    let request_key = request_key.unwrap_or_else(|| Uuid::new_v4().to_string());
    let interval = input.interval.unwrap_or(Interval::Month);

    let app: &AppState = &state.app;
    let (mut tx, access) = app.open_workspace_costing(&caller, workspace_id, Cost::Expensive).await?;
    access.require_manager()?;
    let live: Option<String> = sqlx::query_scalar!(
        "SELECT status FROM subscriptions WHERE workspace_id = $1 AND status = ANY($2)",
        workspace_id,
        &LIVE[..] as &[&str]
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(status) = live {
        return Err(ApiError::Conflict {
            code: "subscription_exists",
            detail: format!("The workspace already has a {status} subscription; change it in the billing portal."),
        });
    }
    let customer = customer::ensure(&mut tx, &state.stripe, workspace_id, &caller).await?;
    tx.commit().await?;

    // The workspace row stays locked from here to the commit, so a concurrent checkout waits
    // and then finds this session instead of creating its own.
    let (mut tx, _) = app.open_workspace_costing(&caller, workspace_id, Cost::AlreadyCounted).await?;
    sqlx::query!("SELECT 1 AS locked FROM workspaces WHERE id = $1 FOR NO KEY UPDATE", workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
    let open = sqlx::query!(
        "SELECT stripe_session_id, url FROM checkout_sessions
         WHERE workspace_id = $1 AND plan_id = $2 AND billing_interval = $3 AND completed_at IS NULL
           AND expires_at > now() + interval '10 minutes'
         ORDER BY expires_at DESC LIMIT 1",
        workspace_id,
        plan.id,
        interval.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|session| (session.stripe_session_id, session.url));
    if let Some((id, url)) = open {
        tx.commit().await?;
        tracing::info!(session = %id, plan = plan.id, "open checkout session reused");
        return Ok(Json(CheckoutSession { id, url, trial_days: None, seats: None, interval }));
    }

    // A trial only on the workspace's first paid subscription: never once it had one, nor once
    // a checkout of it completed (its subscription may not have been synced yet).
    let first = sqlx::query_scalar!(
        r#"SELECT NOT EXISTS (SELECT 1 FROM subscriptions WHERE workspace_id = $1)
             AND NOT EXISTS (SELECT 1 FROM checkout_sessions WHERE workspace_id = $1 AND completed_at IS NOT NULL)
             AS "first!""#,
        workspace_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let trial_days = plan.trial_days.filter(|_| first);
    // Later changes of seats follow through the billing queue (the billing worker sets them).
    let seats = shared::billing::quantity_to_buy(&mut tx, workspace_id, &plan).await?;
    let price_id = shared::billing::price_id(&state.stripe, &plan, interval).await?;
    // Runs past the quota are billed through their own metered item, on plans that admit them.
    let overage_price =
        if plan.features.ai_overage { shared::billing::overage_price_id(&state.stripe).await? } else { None };
    let workspace = workspace_id.to_string();
    let tagged = || HashMap::from([("workspace_id".to_owned(), workspace.clone())]);
    let mut line_item = CreateCheckoutSessionLineItems::new();
    line_item.price = Some(price_id);
    line_item.quantity = Some(seats);
    let mut line_items = vec![line_item];
    if let Some(price) = overage_price {
        // A metered price takes no quantity: usage decides.
        let mut metered = CreateCheckoutSessionLineItems::new();
        metered.price = Some(price);
        line_items.push(metered);
    }
    let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
    subscription_data.metadata = Some(tagged());
    subscription_data.trial_period_days = trial_days;
    // Flexible billing: a yearly plan beside the monthly metered overage price needs it, and it
    // is Stripe's recommended mode for every new subscription.
    subscription_data.billing_mode = Some(CreateCheckoutSessionSubscriptionDataBillingMode::new(
        CreateCheckoutSessionSubscriptionDataBillingModeType::Flexible,
    ));
    let request = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(customer)
        .client_reference_id(workspace.clone())
        .line_items(line_items)
        .success_url(success_url.as_str())
        .cancel_url(cancel_url.as_str())
        .metadata(tagged())
        .subscription_data(subscription_data)
        .allow_promotion_codes(true)
        // What a valid (VAT) invoice needs: the billing address and the business's tax IDs,
        // saved on the customer so its invoices and renewals carry them.
        .billing_address_collection(CheckoutSessionBillingAddressCollection::Required)
        .tax_id_collection(CreateCheckoutSessionTaxIdCollection::new(true))
        .customer_update(customer_update())
        .automatic_tax(CreateCheckoutSessionAutomaticTax::new(state.automatic_tax));
    let key = format!(
        "checkout:{workspace_id}:{plan_id}:{interval}:{request_key}",
        plan_id = plan.id,
        interval = interval.as_str()
    );
    let session = state.stripe.post(request, &key).await.map_err(stripe_failure)?;
    let (session_id, url) = match (text(&session, "id"), text(&session, "url")) {
        (Ok(id), Ok(url)) => (id, url),
        _ => {
            return Err(ApiError::Upstream {
                code: "billing_provider_error",
                detail: "Stripe answered without a checkout session URL.".into(),
            });
        }
    };
    // Stripe's default lifetime when it does not say: 24 hours.
    let expires_at = session
        .get("expires_at")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp() + 86_400);
    let expires_at = expires_at as f64;
    sqlx::query!(
        "INSERT INTO checkout_sessions (stripe_session_id, workspace_id, plan_id, billing_interval, url, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, to_timestamp($6), $7)",
        &session_id,
        workspace_id,
        plan.id,
        interval.as_str(),
        &url,
        expires_at,
        caller.user_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(session = %session_id, plan = plan.id, interval = interval.as_str(), ?trial_days, "checkout session created");
    let seats = plan.per_seat.then_some(seats);
    Ok(Json(CheckoutSession { id: session_id, url, trial_days, seats, interval }))
}

/// The address and name collected at checkout replace the customer's: Stripe Tax computes from
/// that address, and the invoice shows that name.
fn customer_update() -> CreateCheckoutSessionCustomerUpdate {
    let mut update = CreateCheckoutSessionCustomerUpdate::new();
    update.address = Some(CreateCheckoutSessionCustomerUpdateAddress::Auto);
    update.name = Some(CreateCheckoutSessionCustomerUpdateName::Auto);
    update
}

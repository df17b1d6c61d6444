//! The `portal` function: `POST /v1/workspaces/{id}/billing/portal` opens a Stripe Customer
//! Portal session, where owners and admins change plan, payment method or cancel; and
//! `.../billing/subscription/cancel|resume` cancel at the period's end (or take it back)
//! through the API; `GET /v1/workspaces/{id}/invoices` lists the invoices and the next one.

mod customer;
mod invoices;
mod plan_change;
mod subscription;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use shared::ApiError;
use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::http::extract::{self, Path};
use shared::openapi::OpenApiRouter;
use shared::stripe::text;
use shared::validate::Validator;
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

pub const FUNCTION: &str = "portal";

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .merge(subscription::router())
        .merge(plan_change::router())
        .merge(invoices::router())
        .merge(customer::router())
}

shared::http_function!(BillingState, |state| shared::http::finish_over(router(), state, FUNCTION));

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PortalInput {
    #[schema(schema_with = shared::validate::HttpUrl::schema)]
    return_url: String,
}

#[derive(Serialize, ToSchema)]
struct PortalSession {
    /// The Stripe Customer Portal session to send the customer to.
    url: String,
}

/// A Stripe Customer Portal session (owners and admins).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/portal", operation_id = "billing_portal", tag = "billing", params(("workspace_id" = Uuid, Path)), request_body = PortalInput, responses((status = 200, body = PortalSession), (status = 409), (status = 502)))]
async fn create(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<PortalInput>,
) -> Result<Json<PortalSession>, ApiError> {
    let mut v = Validator::default();
    let return_url = v.check(state.redirects.check("return_url", &input.return_url));
    let return_url = v.finish(|| return_url)?;
    let (mut tx, access) = state.app.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let customer = sqlx::query_scalar!("SELECT stripe_customer_id FROM workspaces WHERE id = $1", workspace_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let customer = customer.ok_or_else(|| ApiError::Conflict {
        code: "no_billing_account",
        detail: "The workspace has no billing account yet; start a checkout first.".into(),
    })?;
    let request = CreateBillingPortalSession::new().customer(customer).return_url(return_url.as_str());
    // A new session each time (a portal link is short-lived); the key only guards the retries.
    let session = state
        .stripe
        .post(request, &format!("portal:{workspace_id}:{}", Uuid::new_v4()))
        .await
        .map_err(stripe_failure)?;
    Ok(Json(PortalSession { url: text(&session, "url").map_err(stripe_failure)? }))
}

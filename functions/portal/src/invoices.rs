//! The workspace's invoices and the next one, read from Stripe on each request: Stripe keeps
//! them (numbered, taxed, with their hosted page and PDF), so no copy is stored here to drift
//! from it. Owners and admins only.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::ApiError;
use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::http::extract::{Path, Query};
use shared::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use shared::openapi::OpenApiRouter;
use shared::stripe::{StripeError, timestamp};
use stripe_billing::invoice::{CreatePreviewInvoice, ListInvoice};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use crate::subscription::LIVE;

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// `?limit=&cursor=`: the cursor is the `next_cursor` of the previous page (Stripe's own).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InvoiceQuery {
    /// Invoices per page (default 25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
struct InvoiceView {
    id: String,
    /// The invoice's number (on the PDF); `null` while a draft.
    number: Option<String>,
    /// draft, open, paid, uncollectible or void.
    status: Option<String>,
    currency: Option<String>,
    /// Amounts in the currency's smallest unit: before tax and discounts, the tax, the total,
    /// what is due, paid and still owed.
    subtotal: i64,
    tax: i64,
    total: i64,
    amount_due: i64,
    amount_paid: i64,
    amount_remaining: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    period_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    period_end: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    created: Option<OffsetDateTime>,
    /// Stripe's page for the invoice (to pay an open one, or download a receipt).
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct InvoicePage {
    /// Newest first.
    items: Vec<InvoiceView>,
    next_cursor: Option<String>,
    /// On the first page, while a subscription renews: the invoice Stripe will send next, as it
    /// stands now (`next_payment_attempt` is when it will be charged).
    upcoming: Option<UpcomingInvoice>,
}

#[derive(Debug, Serialize, ToSchema)]
struct UpcomingInvoice {
    #[serde(flatten)]
    invoice: InvoiceView,
    #[serde(with = "time::serde::rfc3339::option")]
    next_payment_attempt: Option<OffsetDateTime>,
}

/// A page cursor: a Stripe invoice id, as `next_cursor` gave it.
fn cursor(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    match raw.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c)
            if c.len() <= 255 && c.starts_with("in_") && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(Some(c))
        }
        Some(_) => Err(ApiError::BadRequest {
            code: "invalid_cursor",
            detail: "The cursor is not one this API returned.".into(),
        }),
    }
}

/// The workspace's invoices, newest first, with the next one on the first page (owners and
/// admins). A workspace that never checked out has none.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/invoices", operation_id = "invoices_list", tag = "billing", params(("workspace_id" = Uuid, Path), InvoiceQuery), responses((status = 200, body = InvoicePage), (status = 502)))]
async fn list(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<InvoiceQuery>,
) -> Result<Json<InvoicePage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let after = cursor(query.cursor.as_deref())?;
    let (mut tx, access) = state.app.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let billing = sqlx::query!(
        r#"SELECT w.stripe_customer_id,
                  (SELECT s.stripe_subscription_id FROM subscriptions s
                   WHERE s.workspace_id = w.id AND s.status = ANY($2) AND NOT s.cancel_at_period_end) AS renewing
           FROM workspaces w WHERE w.id = $1"#,
        workspace_id,
        &LIVE[..] as &[&str],
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(customer) = billing.stripe_customer_id else {
        return Ok(Json(InvoicePage { items: Vec::new(), next_cursor: None, upcoming: None }));
    };
    let mut request = ListInvoice::new().customer(customer.as_str()).limit(i64::from(limit));
    if let Some(after) = after {
        request = request.starting_after(after);
    }
    let listed = state.stripe.get(request).await.map_err(|error| match error {
        // A cursor of another customer's (or a deleted) invoice.
        StripeError::Refused { status: 400 | 404, .. } if after.is_some() => {
            ApiError::BadRequest { code: "invalid_cursor", detail: "The cursor is not one this API returned.".into() }
        }
        error => stripe_failure(error),
    })?;
    let items: Vec<InvoiceView> =
        listed["data"].as_array().into_iter().flatten().map(InvoiceView::from_stripe).collect();
    let next_cursor = if listed["has_more"] == true { items.last().map(|i| i.id.clone()) } else { None };
    let upcoming = match (&billing.renewing, after) {
        (Some(subscription), None) => upcoming(&state, &customer, subscription).await?,
        _ => None,
    };
    Ok(Json(InvoicePage { items, next_cursor, upcoming }))
}

/// Stripe's preview of the subscription's next invoice; none when Stripe has none to send.
async fn upcoming(
    state: &BillingState,
    customer: &str,
    subscription: &str,
) -> Result<Option<UpcomingInvoice>, ApiError> {
    let request = CreatePreviewInvoice::new().customer(customer).subscription(subscription);
    // A preview creates nothing: each request asks anew.
    match state.stripe.post(request, &format!("preview:{subscription}:{}", Uuid::new_v4())).await {
        Ok(preview) => Ok(Some(UpcomingInvoice {
            next_payment_attempt: timestamp(&preview["next_payment_attempt"]),
            invoice: InvoiceView::from_stripe(&preview),
        })),
        Err(StripeError::Refused { code: Some(code), .. }) if code == "invoice_upcoming_none" => Ok(None),
        Err(error) => Err(stripe_failure(error)),
    }
}

impl InvoiceView {
    /// Read tolerantly: a field Stripe leaves out is `null` (or 0 for an amount), never an error.
    fn from_stripe(invoice: &Value) -> Self {
        let text = |field: &str| invoice[field].as_str().map(str::to_owned);
        let amount = |field: &str| invoice[field].as_i64().unwrap_or(0);
        Self {
            id: text("id").unwrap_or_default(),
            number: text("number"),
            status: text("status"),
            currency: text("currency"),
            subtotal: amount("subtotal"),
            tax: shared::stripe::invoice_tax(invoice),
            total: amount("total"),
            amount_due: amount("amount_due"),
            amount_paid: amount("amount_paid"),
            amount_remaining: amount("amount_remaining"),
            period_start: timestamp(&invoice["period_start"]),
            period_end: timestamp(&invoice["period_end"]),
            created: timestamp(&invoice["created"]),
            hosted_invoice_url: text("hosted_invoice_url"),
            invoice_pdf: text("invoice_pdf"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_stripe_invoice_ids() {
        assert_eq!(cursor(None).unwrap(), None);
        assert_eq!(cursor(Some("")).unwrap(), None);
        assert_eq!(cursor(Some("in_1PqR2sT")).unwrap(), Some("in_1PqR2sT"));
        for refused in ["cus_1", "in_1&limit=5", "in_ä", "0193c0de-0000-7000-8000-000000000000"] {
            assert!(cursor(Some(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn taxes_are_summed_from_either_api_shape() {
        let newer = serde_json::json!({"id": "in_1", "total_taxes": [{"amount": 120}, {"amount": 30}], "total": 1150});
        assert_eq!(InvoiceView::from_stripe(&newer).tax, 150);
        let older = serde_json::json!({"id": "in_2", "tax": 95});
        assert_eq!(InvoiceView::from_stripe(&older).tax, 95);
        assert_eq!(InvoiceView::from_stripe(&serde_json::json!({})).id, "");
    }
}

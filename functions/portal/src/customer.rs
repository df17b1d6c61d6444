//! The workspace's billing details as Stripe keeps them on its customer: the name and address
//! invoices are made out to, and the tax IDs (a business's VAT or GST number) they carry.
//! Owners and admins read and change them through the API; Stripe stays their one record.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::ApiError;
use shared::auth::Caller;
use shared::billing::{BillingState, stripe_failure};
use shared::http::extract::{self, Path};
use shared::openapi::OpenApiRouter;
use shared::stripe::StripeError;
use shared::validate::{Name, Validator};
use stripe_billing::tax_id::{CreateCustomerTaxId, CreateCustomerTaxIdType, DeleteCustomerTaxId};
use stripe_core::customer::{OptionalFieldsCustomerAddress, RetrieveCustomer, UpdateCustomer};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<BillingState> {
    OpenApiRouter::new().routes(routes!(read, replace)).routes(routes!(add_tax_id)).routes(routes!(remove_tax_id))
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
struct Address {
    line1: String,
    line2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `DE`: what Stripe Tax computes the tax from.
    country: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct TaxIdView {
    id: String,
    /// Stripe's type, e.g. `eu_vat`, `gb_vat`, `us_ein`.
    r#type: String,
    value: String,
    /// Stripe's check of the number with the tax authority: pending, verified, unverified or
    /// unavailable.
    verification: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CustomerView {
    name: Option<String>,
    email: Option<String>,
    address: Option<Address>,
    tax_ids: Vec<TaxIdView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CustomerInput {
    /// The name invoices are made out to (the business's legal name).
    #[schema(schema_with = Name::schema)]
    name: String,
    address: Address,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TaxIdInput {
    /// Stripe's tax ID type, e.g. `eu_vat`.
    r#type: String,
    /// The number as the authority writes it, e.g. `DE123456789`.
    value: String,
}

#[derive(Deserialize)]
struct TaxIdPath {
    workspace_id: Uuid,
    tax_id: String,
}

/// The workspace's Stripe customer, for owners and admins; 409 before the first checkout.
async fn customer_of(state: &BillingState, caller: &Caller, workspace_id: Uuid) -> Result<String, ApiError> {
    let (mut tx, access) = state.app.open_workspace(caller, workspace_id).await?;
    access.require_manager()?;
    let customer = sqlx::query_scalar!("SELECT stripe_customer_id FROM workspaces WHERE id = $1", workspace_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    customer.ok_or_else(|| ApiError::Conflict {
        code: "no_billing_account",
        detail: "The workspace has no billing account yet; start a checkout first.".into(),
    })
}

async fn fetch(state: &BillingState, customer: &str) -> Result<CustomerView, ApiError> {
    let request = RetrieveCustomer::new(customer).expand(vec!["tax_ids".to_owned()]);
    let customer = state.stripe.get(request).await.map_err(billing_failure)?;
    Ok(CustomerView::from_stripe(&customer))
}

/// A customer Stripe no longer has (deleted in its dashboard) is the workspace's missing
/// billing account, not a failure of ours; anything else as every Stripe failure.
fn billing_failure(error: StripeError) -> ApiError {
    if error.is_missing() {
        ApiError::Conflict {
            code: "no_billing_account",
            detail: "Stripe no longer has the workspace's billing account; start a checkout to make a new one.".into(),
        }
    } else {
        stripe_failure(error)
    }
}

/// The name, address and tax IDs invoices carry (owners and admins).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/billing/customer", operation_id = "billing_customer_read", tag = "billing", params(("workspace_id" = Uuid, Path)), responses((status = 200, body = CustomerView), (status = 409), (status = 502)))]
async fn read(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
) -> Result<Json<CustomerView>, ApiError> {
    let customer = customer_of(&state, &caller, workspace_id).await?;
    Ok(Json(fetch(&state, &customer).await?))
}

/// Replaces the name and address invoices are made out to (owners and admins); the next
/// invoices, and Stripe Tax's calculation, use them.
#[utoipa::path(put, path = "/v1/workspaces/{workspace_id}/billing/customer", operation_id = "billing_customer_replace", tag = "billing", params(("workspace_id" = Uuid, Path)), request_body = CustomerInput, responses((status = 200, body = CustomerView), (status = 409), (status = 502)))]
async fn replace(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<CustomerInput>,
) -> Result<Json<CustomerView>, ApiError> {
    let mut v = Validator::default();
    let name = v.check(Name::parse("name", &input.name));
    let address = v.check(input.address.parse());
    let (name, address) = v.finish(|| Some((name?, address?)))?;
    let customer = customer_of(&state, &caller, workspace_id).await?;
    let mut fields = OptionalFieldsCustomerAddress::new();
    fields.line1 = Some(address.line1);
    fields.line2 = address.line2;
    fields.city = address.city;
    fields.state = address.state;
    fields.postal_code = address.postal_code;
    fields.country = Some(address.country);
    let request =
        UpdateCustomer::new(customer.as_str()).name(name.as_str()).address(fields).expand(vec!["tax_ids".to_owned()]);
    let updated = state
        .stripe
        .post(request, &format!("customer-update:{workspace_id}:{}", Uuid::new_v4()))
        .await
        .map_err(billing_failure)?;
    tracing::info!(%workspace_id, "billing details changed");
    Ok(Json(CustomerView::from_stripe(&updated)))
}

/// Adds a tax ID (owners and admins): Stripe checks its format (422 when it refuses it) and then,
/// where it can, verifies it with the tax authority (`verification`).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/billing/customer/tax-ids", operation_id = "billing_tax_ids_add", tag = "billing", params(("workspace_id" = Uuid, Path)), request_body = TaxIdInput, responses((status = 201, body = TaxIdView), (status = 409), (status = 502)))]
async fn add_tax_id(
    State(state): State<BillingState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<TaxIdInput>,
) -> Result<(StatusCode, Json<TaxIdView>), ApiError> {
    let mut v = Validator::default();
    let kind = match input.r#type.parse::<CreateCustomerTaxIdType>() {
        Ok(CreateCustomerTaxIdType::Unknown(_)) | Err(_) => {
            v.refuse("type", "is not a tax ID type Stripe knows (e.g. eu_vat, gb_vat, au_abn, us_ein)");
            None
        }
        Ok(kind) => Some(kind),
    };
    let value = input.value.trim();
    if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
        v.refuse("value", "must be 1 to 64 printable characters");
    }
    let kind = v.finish(|| kind)?;
    let customer = customer_of(&state, &caller, workspace_id).await?;
    let request = CreateCustomerTaxId::new(customer.as_str(), kind, value);
    let created =
        state.stripe.post(request, &format!("tax-id:{workspace_id}:{}", Uuid::new_v4())).await.map_err(|error| {
            match error {
                StripeError::Refused { status: 400, code, message } => {
                    tracing::info!(?code, %message, "Stripe refused a tax ID");
                    ApiError::validation("value", format!("Stripe refused it: {message}"))
                }
                error => billing_failure(error),
            }
        })?;
    tracing::info!(%workspace_id, "tax ID added");
    Ok((StatusCode::CREATED, Json(TaxIdView::from_stripe(&created))))
}

/// Removes a tax ID (owners and admins). Idempotent.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/billing/customer/tax-ids/{tax_id}", operation_id = "billing_tax_ids_delete", tag = "billing", params(("workspace_id" = Uuid, Path), ("tax_id" = String, Path)), responses((status = 204), (status = 409), (status = 502)))]
async fn remove_tax_id(
    State(state): State<BillingState>,
    caller: Caller,
    Path(path): Path<TaxIdPath>,
) -> Result<StatusCode, ApiError> {
    let well_formed = path.tax_id.len() <= 255
        && path.tax_id.starts_with("txi_")
        && path.tax_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let customer = customer_of(&state, &caller, path.workspace_id).await?;
    if !well_formed {
        return Err(ApiError::NotFound("tax ID"));
    }
    let request = DeleteCustomerTaxId::new(customer.as_str(), path.tax_id.as_str());
    match state.stripe.post(request, &format!("tax-id-delete:{}:{}", path.workspace_id, path.tax_id)).await {
        Ok(_) => {}
        Err(error) if error.is_missing() => {}
        Err(error) => return Err(stripe_failure(error)),
    }
    Ok(StatusCode::NO_CONTENT)
}

impl Address {
    /// Trimmed fields, empty optional ones left out, the country in upper case.
    fn parse(&self) -> Result<Address, shared::error::FieldError> {
        let field = |name: &str, value: &str| -> Result<String, shared::error::FieldError> {
            let value = value.trim();
            if value.chars().count() > 200 || value.chars().any(char::is_control) {
                return Err(shared::error::FieldError::new(
                    format!("address.{name}"),
                    "must be at most 200 characters, on one line",
                ));
            }
            Ok(value.to_owned())
        };
        let optional = |name: &str, value: &Option<String>| -> Result<Option<String>, shared::error::FieldError> {
            Ok(value.as_deref().map(|v| field(name, v)).transpose()?.filter(|v| !v.is_empty()))
        };
        let line1 = field("line1", &self.line1)?;
        if line1.is_empty() {
            return Err(shared::error::FieldError::new("address.line1", "must not be empty"));
        }
        let country = self.country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(shared::error::FieldError::new(
                "address.country",
                "must be a two-letter country code (ISO 3166-1 alpha-2), e.g. DE",
            ));
        }
        Ok(Address {
            line1,
            line2: optional("line2", &self.line2)?,
            city: optional("city", &self.city)?,
            state: optional("state", &self.state)?,
            postal_code: optional("postal_code", &self.postal_code)?,
            country,
        })
    }

    fn from_stripe(address: &Value) -> Option<Address> {
        let text = |field: &str| address[field].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
        Some(Address {
            line1: text("line1")?,
            line2: text("line2"),
            city: text("city"),
            state: text("state"),
            postal_code: text("postal_code"),
            country: text("country")?,
        })
    }
}

impl TaxIdView {
    fn from_stripe(tax_id: &Value) -> Self {
        let text = |field: &str| tax_id[field].as_str().unwrap_or_default().to_owned();
        Self {
            id: text("id"),
            r#type: text("type"),
            value: text("value"),
            verification: tax_id["verification"]["status"].as_str().map(str::to_owned),
        }
    }
}

impl CustomerView {
    fn from_stripe(customer: &Value) -> Self {
        Self {
            name: customer["name"].as_str().map(str::to_owned),
            email: customer["email"].as_str().map(str::to_owned),
            address: Address::from_stripe(&customer["address"]),
            tax_ids: customer["tax_ids"]["data"].as_array().into_iter().flatten().map(TaxIdView::from_stripe).collect(),
        }
    }
}

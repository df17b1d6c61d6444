//! What the Stripe-calling HTTP functions (checkout, portal) share: their state (the app state
//! plus the Stripe client), the redirect allow-list, and the mapping of Stripe failures.

use axum::extract::FromRef;
use secrecy::SecretString;

use crate::app::AppState;
use crate::config::{ConfigError, Settings};
use crate::error::{ApiError, FieldError};
use crate::stripe::{StripeClient, StripeError};
use crate::validate::HttpUrl;

/// Redirect targets (Checkout success/cancel, Portal return) must be on one of these origins,
/// so a crafted request cannot send a paying customer to someone else's site.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    origins: Vec<String>,
}

impl RedirectPolicy {
    pub fn new(origins: impl IntoIterator<Item = String>) -> Self {
        Self {
            origins: origins
                .into_iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    pub fn check(&self, field: &str, url: &str) -> Result<HttpUrl, FieldError> {
        let parsed = HttpUrl::parse(field, url)?;
        let allowed = self.origins.iter().any(|origin| {
            parsed
                .as_str()
                .strip_prefix(origin.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
        });
        if allowed {
            Ok(parsed)
        } else {
            Err(FieldError::new(field, "must be on an allowed origin (BILLING_REDIRECT_ORIGINS)"))
        }
    }
}

#[derive(Clone)]
pub struct BillingState {
    pub app: AppState,
    pub stripe: StripeClient,
    pub redirects: RedirectPolicy,
    /// Stripe Tax calculates the tax of checkouts and their subscriptions
    /// (`STRIPE_AUTOMATIC_TAX`, on by default; the Stripe account must have Stripe Tax set up).
    pub automatic_tax: bool,
    /// Signs what this API hands out and takes back (a plan change's preview token): derived
    /// from the Stripe secret key, so it needs no secret of its own, and rotating the Stripe key
    /// retires every token signed with the old one.
    pub signing_key: std::sync::Arc<[u8; 32]>,
}

impl FromRef<BillingState> for AppState {
    fn from_ref(state: &BillingState) -> AppState {
        state.app.clone()
    }
}

impl FromRef<BillingState> for std::sync::Arc<crate::auth::Authenticator> {
    fn from_ref(state: &BillingState) -> Self {
        state.app.auth.clone()
    }
}

impl FromRef<BillingState> for sqlx::PgPool {
    fn from_ref(state: &BillingState) -> sqlx::PgPool {
        state.app.pool.clone()
    }
}

impl BillingState {
    /// Over an API state that already exists (the local stack's functions share one).
    pub fn with_app(app: AppState, settings: &Settings) -> Result<Self, ConfigError> {
        let key = SecretString::from(settings.require("STRIPE_SECRET_KEY")?);
        let signing_key: [u8; 32] = {
            use secrecy::ExposeSecret;
            use sha2::Digest;
            sha2::Sha256::new()
                .chain_update(b"saas-backend signing key v1\0")
                .chain_update(key.expose_secret().as_bytes())
                .finalize()
                .into()
        };
        let signing_key = std::sync::Arc::new(signing_key);
        let origins = settings.require("BILLING_REDIRECT_ORIGINS")?;
        Ok(Self {
            app,
            stripe: StripeClient::new(&key, settings.get("STRIPE_API_BASE").as_deref())
                .map_err(|e| ConfigError::Invalid { name: "STRIPE_SECRET_KEY", reason: e.to_string() })?,
            redirects: RedirectPolicy::new(origins.split(',').map(str::to_owned)),
            automatic_tax: crate::config::parse_or(&|name: &str| settings.get(name), "STRIPE_AUTOMATIC_TAX", true)?,
            signing_key,
        })
    }
}

/// Stripe refusing our request is our misconfiguration (502); Stripe down is 503, retryable.
pub fn stripe_failure(error: StripeError) -> ApiError {
    match error {
        // The caller's mistake (its key names another request), answered as the Idempotency-Key
        // draft does: 422.
        StripeError::IdempotencyKeyReused => ApiError::validation(
            "Idempotency-Key",
            "was already used for a request with other parameters; send a new key for a new request",
        ),
        StripeError::Unavailable(_) => {
            tracing::error!(%error, "Stripe request failed");
            ApiError::ServiceUnavailable("The billing provider is unavailable; retry shortly.".into())
        }
        StripeError::Refused { .. } | StripeError::Unexpected(_) => {
            tracing::error!(%error, "Stripe request failed");
            ApiError::Upstream {
                code: "billing_provider_error",
                detail: "The billing provider refused the request; it has been logged.".into(),
            }
        }
    }
}

/// The id of the active Stripe price `plan` is sold at every `interval`, found by its lookup key
/// (so a price can be replaced in Stripe by moving the key, without a deploy).
#[cfg(feature = "prices")]
pub async fn price_id(
    stripe: &StripeClient,
    plan: &crate::plans::Plan,
    interval: crate::plans::Interval,
) -> Result<String, ApiError> {
    let not_sold = || ApiError::Upstream {
        code: "billing_not_configured",
        detail: "This plan cannot be bought right now.".into(),
    };
    let lookup_key = plan.lookup_key(interval).ok_or_else(not_sold)?;
    find_price(stripe, lookup_key).await?.ok_or_else(|| {
        tracing::error!(lookup_key, "no active Stripe price has this lookup key");
        not_sold()
    })
}

/// The metered price AI runs beyond the quota are billed at, if the Stripe account has one
/// (without it, no run past the quota is admitted: it could not be billed).
#[cfg(feature = "prices")]
pub async fn overage_price_id(stripe: &StripeClient) -> Result<Option<String>, ApiError> {
    let found = find_price(stripe, crate::plans::AI_OVERAGE_LOOKUP_KEY).await?;
    if found.is_none() {
        tracing::warn!(
            lookup_key = crate::plans::AI_OVERAGE_LOOKUP_KEY,
            "no overage price: runs past the quota stay refused"
        );
    }
    Ok(found)
}

#[cfg(feature = "prices")]
async fn find_price(stripe: &StripeClient, lookup_key: &str) -> Result<Option<String>, ApiError> {
    let request =
        stripe_product::price::ListPrice::new().lookup_keys(vec![lookup_key.to_owned()]).active(true).limit(1);
    let listed = stripe.get(request).await.map_err(stripe_failure)?;
    match crate::stripe::first_of_list(listed).map_err(stripe_failure)? {
        Some(price) => crate::stripe::text(&price, "id").map(Some).map_err(stripe_failure),
        None => Ok(None),
    }
}

/// How many of `plan` to ask Stripe for: a per-seat plan is bought for every billable seat of
/// the workspace (members and pending member invitations), any other plan once.
pub async fn quantity_to_buy(
    tx: &mut crate::db::TenantTx,
    workspace_id: uuid::Uuid,
    plan: &crate::plans::Plan,
) -> Result<u64, sqlx::Error> {
    if !plan.per_seat {
        return Ok(1);
    }
    let seats: Option<i32> =
        sqlx::query_scalar!("SELECT app.workspace_billable_seats($1)", workspace_id).fetch_one(&mut **tx).await?;
    Ok(seats.and_then(|n| u64::try_from(n).ok()).unwrap_or(1).max(1))
}

/// A Stripe-calling function's state: the API's, and the Stripe client with the redirect policy.
impl crate::runtime::FromSettings for BillingState {
    async fn from_settings(settings: &Settings) -> Result<Self, crate::runtime::Error> {
        let app = <AppState as crate::runtime::FromSettings>::from_settings(settings).await?;
        Ok(Self::with_app(app, settings)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_urls_on_allowed_origins_pass() {
        let policy = RedirectPolicy::new(["https://app.example.com/".to_owned(), "http://localhost:3000".to_owned()]);
        for ok in ["https://app.example.com", "https://app.example.com/billing?done=1", "http://localhost:3000/x"] {
            assert!(policy.check("url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://app.example.com.evil.io/",
            "https://evil.io/?https://app.example.com",
            "http://app.example.com/",
            "https://app.example.com@evil.io/",
            "javascript:alert(1)",
        ] {
            assert!(policy.check("url", bad).is_err(), "{bad}");
        }
    }
}

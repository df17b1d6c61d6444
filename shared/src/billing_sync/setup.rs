//! Building the billing worker from its settings, once per execution environment: the service
//! role's pool, the past_due grace period and the Stripe reader.

use secrecy::SecretString;

use super::apply::Worker;
use super::stripe_state::{StripeReadError, StripeState};
use crate::config::{ConfigError, DatabaseConfig, Settings, parse_or};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Stripe(#[from] StripeReadError),
}

/// Reads `SERVICE_DATABASE_URL`, `BILLING_PAST_DUE_GRACE_DAYS` (default 7),
/// `STRIPE_SECRET_KEY` and `STRIPE_API_BASE` (default Stripe's own).
impl crate::runtime::FromSettings for Worker {
    async fn from_settings(settings: &Settings) -> Result<Self, crate::runtime::Error> {
        Ok(build(settings).await?)
    }
}

async fn build(settings: &Settings) -> Result<Worker, SetupError> {
    {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        let grace_days: i64 = parse_or(&lookup, "BILLING_PAST_DUE_GRACE_DAYS", 7)?;
        let stripe = StripeState::new(
            &SecretString::from(settings.require("STRIPE_SECRET_KEY")?),
            settings.get("STRIPE_API_BASE").as_deref(),
        )?;
        Ok(Worker {
            pool: crate::db::connect_as(&database, "billing-worker").await?,
            past_due_grace: time::Duration::days(grace_days),
            stripe,
        })
    }
}

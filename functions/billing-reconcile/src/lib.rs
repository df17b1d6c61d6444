//! The `billing-reconcile` function, run on a schedule (and by `local-stack reconcile`): lists the
//! last days of Stripe's billing events and applies any the webhook path never delivered, with
//! the billing worker's own exactly-once rules. Reports what it repaired.

use secrecy::SecretString;
use shared::billing_sync::{HANDLED_EVENT_TYPES, ReconcileReport, Worker, reconcile};
use shared::config::{DatabaseConfig, Settings, parse_or};
use shared::stripe::StripeClient;

pub const FUNCTION: &str = "billing-reconcile";

pub struct Reconciler {
    pub worker: Worker,
    pub stripe: StripeClient,
    /// How far back to look; Stripe keeps events for 30 days.
    pub lookback: time::Duration,
}

impl Reconciler {
    pub async fn from_settings(settings: &Settings) -> Result<Self, lambda_runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        let grace_days: i64 = parse_or(&lookup, "BILLING_PAST_DUE_GRACE_DAYS", 7)?;
        let lookback_days: i64 = parse_or(&lookup, "RECONCILE_LOOKBACK_DAYS", 30)?;
        Ok(Self {
            worker: Worker {
                pool: shared::db::connect(&database).await?,
                past_due_grace: time::Duration::days(grace_days),
            },
            stripe: StripeClient::new(
                SecretString::from(settings.require("STRIPE_SECRET_KEY")?),
                settings.get("STRIPE_API_BASE"),
            ),
            lookback: time::Duration::days(lookback_days.clamp(1, 30)),
        })
    }

    pub async fn run(&self) -> Result<ReconcileReport, lambda_runtime::Error> {
        let since = (time::OffsetDateTime::now_utc() - self.lookback).unix_timestamp();
        let events = self.stripe.events_since(since, &HANDLED_EVENT_TYPES).await?;
        let report = reconcile(&self.worker, events).await?;
        tracing::info!(
            checked = report.checked,
            repaired = report.repaired.len(),
            failed = report.failed.len(),
            "reconciled"
        );
        for repair in &report.repaired {
            tracing::warn!(event_id = %repair.event_id, event_type = %repair.event_type, outcome = repair.outcome, "applied a missed event");
        }
        Ok(report)
    }
}

/// The Lambda entry point: the schedule's event is ignored; the answer is the report.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init(FUNCTION);
    let settings = Settings::load().await?;
    let reconciler = Reconciler::from_settings(&settings).await?;
    let reconciler = &reconciler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let report = reconciler.run().await?;
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}

//! The `billing-reconcile` function, run on a schedule (and by `local-stack reconcile`): applies
//! Stripe events the webhook path never delivered or that waited for their customer, and compares
//! every live subscription with Stripe's state, repairing and reporting each difference (see
//! `shared::billing_sync::reconcile`).

use shared::billing_sync::{ReconcileReport, Reconciliation, StripeState, Worker};
use shared::config::{Settings, parse_or};

pub const FUNCTION: &str = "billing-reconcile";

pub struct Reconciler {
    /// The billing worker's own apply path (its Stripe reader is the one reconciliation lists with).
    pub worker: Worker,
    /// How far back to look for events; Stripe keeps events for 30 days.
    pub lookback: time::Duration,
}

impl Reconciler {
    pub async fn from_settings(settings: &Settings) -> Result<Self, lambda_runtime::Error> {
        let lookback_days: i64 = parse_or(&|name: &str| settings.get(name), "RECONCILE_LOOKBACK_DAYS", 30)?;
        Ok(Self {
            worker: Worker::from_settings(settings).await?,
            lookback: time::Duration::days(lookback_days.clamp(1, 30)),
        })
    }

    pub fn stripe(&self) -> &StripeState {
        &self.worker.stripe
    }

    pub async fn run(&self) -> Result<ReconcileReport, lambda_runtime::Error> {
        let reconciliation = Reconciliation { worker: &self.worker, stripe: self.stripe(), lookback: self.lookback };
        let report = reconciliation.run().await?;
        tracing::info!(
            events_checked = report.events_checked,
            missed_events = report.missed_events.len(),
            waiting_events = report.waiting_events.len(),
            subscriptions_checked = report.subscriptions_checked,
            drift = report.drift.len(),
            failed = report.failed.len(),
            "reconciled"
        );
        for repair in report.missed_events.iter().chain(&report.waiting_events) {
            tracing::warn!(event_id = %repair.event_id, event_type = %repair.event_type, outcome = repair.outcome, "applied an event late");
        }
        Ok(report)
    }
}

/// One scheduled invocation. `{"task": "cancellations"}` (the frequent schedule) only sends the
/// pending cancellations of deleted workspaces' subscriptions; anything else (the reconcile
/// schedule) runs the whole reconciliation, cancellations included. The answer is the report.
pub async fn handle(
    reconciler: &Reconciler,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    if event.payload.get("task").and_then(serde_json::Value::as_str) == Some("cancellations") {
        return Ok(serde_json::to_value(reconciler.worker.send_pending_cancellations().await?)?);
    }
    Ok(serde_json::to_value(reconciler.run().await?)?)
}

/// The Lambda entry point.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init(FUNCTION);
    let settings = Settings::load().await?;
    let reconciler = Reconciler::from_settings(&settings).await?;
    let reconciler = &reconciler;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| handle(reconciler, event))).await
}

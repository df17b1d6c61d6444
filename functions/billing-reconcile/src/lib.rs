//! The `billing-reconcile` function, run on a schedule (and by `local-stack reconcile`): applies
//! Stripe events the webhook path never delivered or that waited for their customer, and compares
//! every live subscription with Stripe's state, repairing and reporting each difference (see
//! `shared::billing_sync::reconcile`).

use serde_json::{Value, json};
use shared::billing_sync::{ReconcileReport, Reconciliation, StripeState, Worker};
use shared::config::{Settings, parse_or};
use shared::queue::Queue;

pub const FUNCTION: &str = "billing-reconcile";

pub struct Reconciler {
    /// The billing worker's own apply path (its Stripe reader is the one reconciliation lists with).
    pub worker: Worker,
    /// How far back to look for events; Stripe keeps events for 30 days.
    pub lookback: time::Duration,
    /// The billing queue, where seat syncs go for the billing worker.
    pub queue: Queue,
}

impl Reconciler {
    /// The frequent pass: deleted workspaces' subscriptions canceled in Stripe, and seat syncs
    /// put on the billing queue.
    pub async fn outbox(&self) -> Result<Value, lambda_runtime::Error> {
        let cancellations = self.worker.send_pending_cancellations().await?;
        let seat_syncs_queued = self.worker.enqueue_seat_syncs(&self.queue).await?;
        Ok(json!({"cancellations": cancellations, "seat_syncs_queued": seat_syncs_queued}))
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

impl shared::runtime::FromSettings for Reconciler {
    /// Reads the billing worker's settings, `RECONCILE_LOOKBACK_DAYS` (default 30) and
    /// `STRIPE_EVENTS_QUEUE_URL` (the billing queue).
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookback_days: i64 = parse_or(&|name: &str| settings.get(name), "RECONCILE_LOOKBACK_DAYS", 30)?;
        Ok(Self {
            worker: Worker::from_settings(settings).await?,
            lookback: time::Duration::days(lookback_days.clamp(1, 30)),
            queue: Queue::connect(settings.require("STRIPE_EVENTS_QUEUE_URL")?).await,
        })
    }
}

/// What a schedule sends: `{"task": "outbox"}` (the frequent schedule; `"cancellations"`, its
/// former name, still works); the reconcile schedule sends EventBridge's own scheduled event,
/// with no task, which is the whole reconciliation.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Scheduled {
    #[serde(default)]
    pub task: Task,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// The whole reconciliation, then the frequent pass.
    #[default]
    Reconcile,
    /// The frequent pass alone.
    #[serde(alias = "cancellations")]
    Outbox,
}

/// Scheduled only: no queue feeds it. The answer is the report.
impl shared::runtime::Worker for Reconciler {
    const NAME: &'static str = FUNCTION;
    type Task = Scheduled;

    async fn run_task(&self, scheduled: Scheduled) -> Result<Value, shared::runtime::Error> {
        match scheduled.task {
            Task::Outbox => self.outbox().await,
            Task::Reconcile => {
                let report = serde_json::to_value(self.run().await?)?;
                let outbox = self.outbox().await?;
                Ok(json!({"reconciliation": report, "outbox": outbox}))
            }
        }
    }
}

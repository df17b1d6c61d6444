//! Reconciliation: makes the database agree with Stripe even when webhooks were lost, arrived
//! before their customer was linked, or the stored state drifted for any other reason.
//!
//! 1. Missed events: Stripe's event log for the look-back window; events never applied are
//!    applied (duplicates change nothing).
//! 2. Waiting events: recorded events that named no workspace are tried again, in case their
//!    customer has been linked since.
//! 3. State: every subscription Stripe lists as not canceled is compared with the stored row;
//!    every stored live row Stripe did not list is read one by one (it was canceled, or no longer
//!    exists). Each difference is repaired through the worker's own sync, which locks the
//!    workspace and reads Stripe again, and is reported field by field.
//!
//! 4. Cancellations: subscriptions of deleted workspaces are canceled in Stripe (also run on
//!    their own, every few minutes: `send_pending_cancellations`).
//! 5. Seats: every live per-seat subscription whose quantity is not its workspace's count of
//!    billable seats (an invitation expired, which no trigger sees) is marked for a seat sync.
//!
//! Cost: one list request per 100 live subscriptions, plus one GET per drifted or ended row.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::HANDLED_EVENT_TYPES;
use super::apply::{ApplyError, Cause, Difference, Outcome, Stored, Worker, differences, resolve_workspace};
use super::cancellations::CancellationReport;
use super::event::Subscription;
use super::stripe_state::StripeState;

/// One event that reconciliation applied.
#[derive(Debug, Serialize)]
pub struct Repair {
    pub event_id: String,
    pub event_type: String,
    pub outcome: &'static str,
}

/// One workspace whose stored subscription differed from Stripe's, now repaired.
#[derive(Debug, Serialize)]
pub struct Drift {
    pub workspace_id: Uuid,
    pub subscription: String,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Default, Serialize)]
pub struct ReconcileReport {
    /// Events Stripe listed in the window.
    pub events_checked: usize,
    /// Events that had never been applied (missed webhooks), now applied.
    pub missed_events: Vec<Repair>,
    /// Events that had waited for their customer to be linked, now applied.
    pub waiting_events: Vec<Repair>,
    /// Subscriptions compared with Stripe's state.
    pub subscriptions_checked: usize,
    /// Stored subscriptions that differed from Stripe, now repaired.
    pub drift: Vec<Drift>,
    /// Events that could not be applied (malformed); retried on the next run.
    pub failed: Vec<String>,
    /// Subscriptions of deleted workspaces sent to Stripe for cancellation.
    pub cancellations: CancellationReport,
    /// Workspaces on a per-seat plan whose quantity was not their seat count: marked for a sync.
    pub seats_to_sync: Vec<Uuid>,
}

pub struct Reconciliation<'a> {
    pub worker: &'a Worker,
    pub stripe: &'a StripeState,
    pub lookback: time::Duration,
}

impl Reconciliation<'_> {
    pub async fn run(&self) -> Result<ReconcileReport, ApplyError> {
        let since = time::OffsetDateTime::now_utc() - self.lookback;
        let mut report = ReconcileReport::default();
        self.replay_missed_events(since.unix_timestamp(), &mut report).await?;
        self.retry_waiting_events(since, &mut report).await?;
        self.compare_state(&mut report).await?;
        report.cancellations = self.worker.send_pending_cancellations().await?;
        report.seats_to_sync = self.seats_drifted().await?;
        Ok(report)
    }

    async fn seats_drifted(&self) -> Result<Vec<Uuid>, ApplyError> {
        let drifted: Vec<Uuid> = sqlx::query_scalar!(
            "SELECT s.workspace_id FROM subscriptions s JOIN plans p ON p.id = s.plan_id
             WHERE p.per_seat AND s.status NOT IN ('canceled', 'incomplete_expired')
               AND s.quantity IS DISTINCT FROM app.billable_seats(s.workspace_id)",
        )
        .fetch_all(&self.worker.pool)
        .await?;
        sqlx::query!("SELECT app.want_seat_sync(id) FROM unnest($1::uuid[]) AS id", &drifted)
            .execute(&self.worker.pool)
            .await?;
        Ok(drifted)
    }

    async fn replay_missed_events(&self, since: i64, report: &mut ReconcileReport) -> Result<(), ApplyError> {
        let events = self.stripe.events_since(since, &HANDLED_EVENT_TYPES).await?;
        report.events_checked = events.len();
        for event in events {
            let result = self.worker.apply(&event.to_string()).await;
            file(result, &event, &[Outcome::Duplicate], &mut report.missed_events, &mut report.failed)?;
        }
        Ok(())
    }

    async fn retry_waiting_events(
        &self,
        since: time::OffsetDateTime,
        report: &mut ReconcileReport,
    ) -> Result<(), ApplyError> {
        for payload in self.worker.unlinked_since(since).await? {
            let event: Value = serde_json::from_str(&payload).unwrap_or_default();
            let result = self.worker.retry_unlinked(&payload).await;
            let still_waiting = [Outcome::Unlinked, Outcome::Duplicate];
            file(result, &event, &still_waiting, &mut report.waiting_events, &mut report.failed)?;
        }
        Ok(())
    }

    async fn compare_state(&self, report: &mut ReconcileReport) -> Result<(), ApplyError> {
        let stored: Vec<Stored> = sqlx::query_as!(
            Stored,
            "SELECT workspace_id, stripe_subscription_id, plan_id, status, current_period_end,
                    cancel_at_period_end, grace_until, stripe_created, quantity
             FROM subscriptions",
        )
        .fetch_all(&self.worker.pool)
        .await?;
        let by_subscription: HashMap<&str, &Stored> =
            stored.iter().map(|row| (row.stripe_subscription_id.as_str(), row)).collect();
        let live = self.stripe.live_subscriptions().await?;
        let mut listed = HashSet::new();
        for object in &live {
            let Some(sub) = Subscription::from_object(object) else { continue };
            listed.insert(sub.id.clone());
            report.subscriptions_checked += 1;
            let workspace_id = match by_subscription.get(sub.id.as_str()) {
                Some(row) => {
                    let plan = sub
                        .lookup_key
                        .as_deref()
                        .and_then(crate::plans::by_lookup_key)
                        .map_or(row.plan_id.as_str(), |plan| plan.id);
                    if differences(Some(row), &sub, plan).is_empty() {
                        continue;
                    }
                    row.workspace_id
                }
                // Live in Stripe but not stored under its id: a workspace may be missing it.
                None => {
                    let mut conn = self.worker.pool.acquire().await?;
                    match resolve_workspace(&mut conn, sub.workspace_id, Some(&sub.customer), None).await? {
                        Some(workspace_id) => workspace_id,
                        None => continue,
                    }
                }
            };
            self.repair(workspace_id, &sub.id, report).await?;
        }
        // Stored as live, not listed as live: canceled in Stripe, or gone from it.
        for row in stored.iter().filter(|row| !Subscription::has_ended(&row.status)) {
            if !listed.contains(&row.stripe_subscription_id) {
                report.subscriptions_checked += 1;
                self.repair(row.workspace_id, &row.stripe_subscription_id, report).await?;
            }
        }
        Ok(())
    }

    async fn repair(
        &self,
        workspace_id: Uuid,
        subscription: &str,
        report: &mut ReconcileReport,
    ) -> Result<(), ApplyError> {
        let mut tx = self.worker.pool.begin().await?;
        super::apply::audit_as(&mut tx, Some("billing-reconcile"), subscription).await?;
        let synced = self.worker.sync(&mut tx, workspace_id, subscription, Cause::reconciliation()).await?;
        tx.commit().await?;
        if synced.outcome == Outcome::Applied && !synced.differences.is_empty() {
            for difference in &synced.differences {
                tracing::warn!(%workspace_id, subscription, field = difference.field, stored = %difference.stored,
                               stripe = %difference.stripe, "repaired drift from Stripe");
            }
            report.drift.push(Drift {
                workspace_id,
                subscription: subscription.to_owned(),
                differences: synced.differences,
            });
        }
        Ok(())
    }
}

/// Files one event's result: a change in `repairs`, a malformed event in `failed` (retried on
/// the next run); `unremarkable` outcomes changed nothing. Other errors stop the run.
fn file(
    result: Result<Outcome, ApplyError>,
    event: &Value,
    unremarkable: &[Outcome],
    repairs: &mut Vec<Repair>,
    failed: &mut Vec<String>,
) -> Result<(), ApplyError> {
    let (event_id, event_type) = id_and_type(event);
    match result {
        Ok(outcome) if unremarkable.contains(&outcome) => {}
        Ok(outcome) => repairs.push(Repair { event_id, event_type, outcome: outcome.as_str() }),
        Err(ApplyError::Malformed(reason)) => {
            tracing::error!(%event_id, %reason, "event cannot be applied");
            failed.push(event_id);
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

fn id_and_type(event: &Value) -> (String, String) {
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    (field("id"), field("type"))
}

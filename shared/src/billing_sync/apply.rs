//! Applies one Stripe event to the database, exactly once: the event id is recorded in the same
//! transaction as the change it causes, so a redelivery finds it and changes nothing.
//!
//! Order: Stripe may deliver events in any order. A subscription's row keeps the (created, id)
//! of the newest event applied to it, and an older event for the same subscription is recorded
//! but changes nothing, so any order converges on the state of the newest event. An event for a
//! different subscription of the same workspace replaces the row only if it is live while the
//! stored one has ended, or both are in the same state of life and it is newer. (Canceled is
//! final in Stripe, so this cannot flip-flop.) Entitlements come only from this row.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::event::{StripeEvent, Subscription, id_of, invoice_subscription};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The message will never apply (not a Stripe event): it goes to the dead-letter queue.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A failure worth retrying (database unavailable, conflict).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl ApplyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApplyError::Database(_))
    }
}

/// What became of an event; recorded with it in `stripe_events.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Already recorded: a redelivery.
    Duplicate,
    /// Older than what the subscription's row already reflects.
    Stale,
    /// Names no workspace we know (yet); reconciliation can repair it.
    Unlinked,
    /// A subscription whose price has no lookup key in the plan catalog.
    UnknownPrice,
    /// An event type this worker does not act on.
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Unlinked => "unlinked",
            Outcome::UnknownPrice => "unknown_price",
            Outcome::Ignored => "ignored",
        }
    }
}

/// The subscription row as stored before this event.
#[derive(sqlx::FromRow)]
struct Stored {
    stripe_subscription_id: String,
    plan_id: String,
    status: String,
    grace_until: Option<OffsetDateTime>,
    last_event_created: OffsetDateTime,
    last_event_id: String,
}

pub struct Worker {
    pub pool: PgPool,
    /// How long a past_due subscription keeps its plan.
    pub past_due_grace: Duration,
}

impl Worker {
    #[tracing::instrument(skip_all)]
    pub async fn apply(&self, payload: &str) -> Result<Outcome, ApplyError> {
        let event: StripeEvent = serde_json::from_str(payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        let payload: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, payload, outcome) VALUES ($1, $2, $3, $4, 'pending')
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(event.created_at())
        .bind(&payload)
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            tracing::info!(event_id = %event.id, "duplicate delivery ignored");
            return Ok(Outcome::Duplicate);
        }
        let (outcome, workspace_id) = match event.kind.as_str() {
            "checkout.session.completed" => checkout_completed(&mut tx, &event).await?,
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.paused"
            | "customer.subscription.resumed"
            | "customer.subscription.trial_will_end"
            | "customer.subscription.pending_update_applied" => self.subscription_changed(&mut tx, &event).await?,
            "invoice.paid" | "invoice.payment_failed" => invoice(&mut tx, &event).await?,
            "customer.deleted" => customer_deleted(&mut tx, &event).await?,
            _ => (Outcome::Ignored, None),
        };
        sqlx::query("UPDATE stripe_events SET outcome = $2, workspace_id = $3 WHERE id = $1")
            .bind(&event.id)
            .bind(outcome.as_str())
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(event_id = %event.id, event_type = %event.kind, outcome = outcome.as_str(), ?workspace_id, "event applied");
        Ok(outcome)
    }

    async fn subscription_changed(
        &self,
        tx: &mut PgConnection,
        event: &StripeEvent,
    ) -> Result<(Outcome, Option<Uuid>), ApplyError> {
        let sub = Subscription::from_object(&event.data.object)
            .ok_or_else(|| ApplyError::Malformed(format!("{} carries no subscription", event.id)))?;
        let Some(workspace_id) = resolve_workspace(tx, sub.workspace_id, Some(&sub.customer), Some(&sub.id)).await?
        else {
            return Ok((Outcome::Unlinked, None));
        };
        if !lock_workspace(tx, workspace_id).await? {
            return Ok((Outcome::Unlinked, None));
        }
        let stored: Option<Stored> = sqlx::query_as(
            "SELECT stripe_subscription_id, plan_id, status, grace_until, last_event_created, last_event_id
             FROM subscriptions WHERE workspace_id = $1",
        )
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let created = event.created_at();
        if let Some(stored) = &stored {
            let newer = (created, event.id.as_str()) > (stored.last_event_created, stored.last_event_id.as_str());
            let replaces = if stored.stripe_subscription_id == sub.id {
                newer
            } else {
                let live = !Subscription::has_ended(&sub.status);
                let stored_live = !Subscription::has_ended(&stored.status);
                (live && !stored_live) || (live == stored_live && newer)
            };
            if !replaces {
                return Ok((Outcome::Stale, Some(workspace_id)));
            }
        }
        let plan = match sub.lookup_key.as_deref().and_then(crate::plans::by_lookup_key) {
            Some(plan) => plan.id.to_owned(),
            // A price we do not sell: keep the plan we knew, or record the event and stop.
            None => match &stored {
                Some(stored) if stored.stripe_subscription_id == sub.id => stored.plan_id.clone(),
                _ => return Ok((Outcome::UnknownPrice, Some(workspace_id))),
            },
        };
        // Past due: the grace period runs from when it first became past due, not from each event.
        let grace_until = match &stored {
            _ if sub.status != "past_due" => None,
            Some(stored) if stored.stripe_subscription_id == sub.id && stored.status == "past_due" => {
                stored.grace_until.or(Some(created + self.past_due_grace))
            }
            _ => Some(created + self.past_due_grace),
        };
        let before: String =
            sqlx::query_scalar("SELECT app.effective_plan($1)").bind(workspace_id).fetch_one(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO subscriptions (workspace_id, stripe_subscription_id, stripe_customer_id, plan_id, status,
                                        current_period_end, cancel_at_period_end, grace_until,
                                        last_event_created, last_event_id, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
             ON CONFLICT (workspace_id) DO UPDATE SET
                 stripe_subscription_id = excluded.stripe_subscription_id,
                 stripe_customer_id = excluded.stripe_customer_id,
                 plan_id = excluded.plan_id, status = excluded.status,
                 current_period_end = excluded.current_period_end,
                 cancel_at_period_end = excluded.cancel_at_period_end,
                 grace_until = excluded.grace_until,
                 last_event_created = excluded.last_event_created, last_event_id = excluded.last_event_id,
                 updated_at = now()",
        )
        .bind(workspace_id)
        .bind(&sub.id)
        .bind(&sub.customer)
        .bind(&plan)
        .bind(&sub.status)
        .bind(sub.current_period_end)
        .bind(sub.cancel_at_period_end)
        .bind(grace_until)
        .bind(created)
        .bind(&event.id)
        .execute(&mut *tx)
        .await?;
        link_customer(tx, workspace_id, &sub.customer).await?;
        let after: String =
            sqlx::query_scalar("SELECT app.effective_plan($1)").bind(workspace_id).fetch_one(&mut *tx).await?;
        let status_before = stored.as_ref().map_or("none", |s| s.status.as_str());
        if before != after || status_before != sub.status {
            record_change(tx, workspace_id, event, &before, &after, status_before, &sub.status).await?;
        }
        Ok((Outcome::Applied, Some(workspace_id)))
    }
}

/// Links the Checkout's customer to the workspace named in `client_reference_id`. The plan
/// itself changes only with the subscription's own events.
async fn checkout_completed(tx: &mut PgConnection, event: &StripeEvent) -> Result<(Outcome, Option<Uuid>), ApplyError> {
    let object = &event.data.object;
    let reference = object.get("client_reference_id").and_then(|v| v.as_str()).and_then(|id| id.parse().ok());
    let customer = object.get("customer").and_then(id_of);
    let Some(workspace_id) = resolve_workspace(tx, reference, customer.as_deref(), None).await? else {
        return Ok((Outcome::Unlinked, None));
    };
    if let Some(customer) = &customer {
        link_customer(tx, workspace_id, customer).await?;
    }
    add_activity(tx, workspace_id, "billing", "Checkout completed; the subscription starts once Stripe confirms it.")
        .await?;
    Ok((Outcome::Applied, Some(workspace_id)))
}

async fn invoice(tx: &mut PgConnection, event: &StripeEvent) -> Result<(Outcome, Option<Uuid>), ApplyError> {
    let object = &event.data.object;
    let customer = object.get("customer").and_then(id_of);
    let subscription = invoice_subscription(object);
    let Some(workspace_id) = resolve_workspace(tx, None, customer.as_deref(), subscription.as_deref()).await? else {
        return Ok((Outcome::Unlinked, None));
    };
    let message = if event.kind == "invoice.paid" {
        "Payment received."
    } else {
        "A payment failed; Stripe will retry it. Update the payment method in the billing portal."
    };
    add_activity(tx, workspace_id, "billing", message).await?;
    Ok((Outcome::Applied, Some(workspace_id)))
}

async fn customer_deleted(tx: &mut PgConnection, event: &StripeEvent) -> Result<(Outcome, Option<Uuid>), ApplyError> {
    let Some(customer) = event.data.object.get("id").and_then(id_of) else {
        return Err(ApplyError::Malformed(format!("{} names no customer", event.id)));
    };
    let workspace_id: Option<Uuid> = sqlx::query_scalar(
        "UPDATE workspaces SET stripe_customer_id = NULL WHERE stripe_customer_id = $1 RETURNING id",
    )
    .bind(&customer)
    .fetch_optional(&mut *tx)
    .await?;
    Ok((if workspace_id.is_some() { Outcome::Applied } else { Outcome::Unlinked }, workspace_id))
}

/// The workspace an event belongs to: the id it carries (metadata or client_reference_id) if
/// that workspace exists, else the one linked to its customer or subscription.
async fn resolve_workspace(
    tx: &mut PgConnection,
    named: Option<Uuid>,
    customer: Option<&str>,
    subscription: Option<&str>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(
             (SELECT id FROM workspaces WHERE id = $1),
             (SELECT id FROM workspaces WHERE stripe_customer_id = $2),
             (SELECT workspace_id FROM subscriptions WHERE stripe_subscription_id = $3))",
    )
    .bind(named)
    .bind(customer)
    .bind(subscription)
    .fetch_one(&mut *tx)
    .await
}

/// Serializes every change to one workspace's billing; false if the workspace is gone.
async fn lock_workspace(tx: &mut PgConnection, workspace_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR NO KEY UPDATE")
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some())
}

async fn link_customer(tx: &mut PgConnection, workspace_id: Uuid, customer: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL")
        .bind(workspace_id)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn add_activity(tx: &mut PgConnection, workspace_id: Uuid, kind: &str, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO activity (workspace_id, kind, message) VALUES ($1, $2, $3)")
        .bind(workspace_id)
        .bind(kind)
        .bind(message)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn record_change(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    event: &StripeEvent,
    plan_before: &str,
    plan_after: &str,
    status_before: &str,
    status_after: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (workspace_id, actor, action, details) VALUES ($1, 'stripe', 'subscription.changed', $2)")
        .bind(workspace_id)
        .bind(json!({
            "event_id": event.id, "event_type": event.kind,
            "plan": {"from": plan_before, "to": plan_after},
            "status": {"from": status_before, "to": status_after},
        }))
        .execute(&mut *tx)
        .await?;
    let name = |id: &str| crate::plans::by_id(id).name;
    let message = if plan_before == plan_after {
        format!("Subscription is now {status_after} (plan {}).", name(plan_after))
    } else {
        format!("Plan changed from {} to {} (subscription {status_after}).", name(plan_before), name(plan_after))
    };
    add_activity(tx, workspace_id, "billing", &message).await
}

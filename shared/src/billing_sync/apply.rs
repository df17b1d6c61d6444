//! Applies one Stripe event to the database, exactly once: the event id is recorded in the same
//! transaction as the change it causes, so a redelivery finds it and changes nothing.
//!
//! Truth: an event is a signal, not the state. For subscription, invoice and checkout events the
//! worker locks the workspace, reads the subscription from Stripe (one GET) and stores what
//! Stripe holds now. Deliveries in any order, duplicates and events created in the same second
//! therefore converge on Stripe's state; no ordering of events by time or id is needed. When
//! Stripe cannot be read, nothing is applied and the message is retried (never applied from the
//! event's stale snapshot, never dropped).
//!
//! One workspace has one subscription row. Another subscription of the same workspace replaces
//! it if it is live while the stored one has ended, or both have ended and it was created later.
//! Two live subscriptions are a double charge (two checkouts paid): once Stripe confirms both
//! are live, the older one is kept and the newer one is canceled and its payment refunded,
//! recorded in the audit and activity trails. Entitlements come only from this row.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::event::{StripeEvent, Subscription, customer_of, id_of, invoice_subscription, workspace_id_in_metadata};
use super::stripe_state::{StripeReadError, StripeState};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The message will never apply (not a Stripe event): it goes to the dead-letter queue.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A failure worth retrying (database unavailable, conflict).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Stripe's current state could not be read: retry, apply nothing now.
    #[error(transparent)]
    Stripe(#[from] StripeReadError),
}

impl ApplyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApplyError::Database(_) | ApplyError::Stripe(_))
    }
}

/// What became of an event; recorded with it in `stripe_events.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Already recorded: a redelivery.
    Duplicate,
    /// Its subscription is not the workspace's (another live or newer one is).
    Stale,
    /// Names no workspace we know (yet); applied once its customer is linked.
    Unlinked,
    /// A subscription whose price has no lookup key in the plan catalog.
    UnknownPrice,
    /// Stripe has no such subscription (a stored row naming it was ended).
    Missing,
    /// A second live subscription of the workspace: canceled and refunded in Stripe.
    DuplicateCanceled,
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
            Outcome::Missing => "missing",
            Outcome::DuplicateCanceled => "duplicate_canceled",
            Outcome::Ignored => "ignored",
        }
    }
}

/// One field of a workspace's subscription that differed from Stripe and was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub field: &'static str,
    pub stored: Value,
    pub stripe: Value,
}

/// The result of syncing one subscription into its workspace's row.
#[derive(Debug)]
pub struct Synced {
    pub outcome: Outcome,
    pub differences: Vec<Difference>,
}

impl Synced {
    fn only(outcome: Outcome) -> Self {
        Self { outcome, differences: Vec::new() }
    }
}

/// What caused a sync: an event (kept on the row for the trail) or reconciliation.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub event: Option<(&'a str, &'a str)>,
    /// When the state was observed; a past_due grace period starts here.
    pub at: OffsetDateTime,
}

impl<'a> Cause<'a> {
    fn of(event: &'a StripeEvent) -> Self {
        Self { event: Some((&event.id, &event.kind)), at: event.created_at() }
    }

    pub fn reconciliation() -> Self {
        Self { event: None, at: OffsetDateTime::now_utc() }
    }
}

/// A workspace's subscription row as stored.
pub(super) struct Stored {
    pub workspace_id: Uuid,
    pub stripe_subscription_id: String,
    pub plan_id: String,
    pub status: String,
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    pub grace_until: Option<OffsetDateTime>,
    pub stripe_created: Option<OffsetDateTime>,
    pub quantity: Option<i32>,
}

/// Unlinked events re-applied per event that links their customer; the rest wait for the next.
const WAITING_BATCH: i64 = 50;

pub struct Worker {
    pub pool: PgPool,
    /// How long a past_due subscription keeps its plan.
    pub past_due_grace: Duration,
    /// Where the current state of a subscription is read.
    pub stripe: StripeState,
}

impl Worker {
    #[tracing::instrument(skip_all)]
    pub async fn apply(&self, payload: &str) -> Result<Outcome, ApplyError> {
        let event: StripeEvent = serde_json::from_str(payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        let payload: Value = serde_json::from_str(payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        audit_as(&mut tx, None, &event.id).await?;
        let recorded = sqlx::query!(
            "INSERT INTO stripe_events (id, type, created, payload, outcome, stripe_customer_id)
             VALUES ($1, $2, $3, $4, 'pending', $5)
             ON CONFLICT (id) DO NOTHING",
            &event.id,
            &event.kind,
            event.created_at(),
            &payload,
            customer_of(&event.kind, &event.data.object),
        )
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            tracing::info!(event_id = %event.id, "duplicate delivery ignored");
            crate::metrics::count("StripeEvents", Some(("outcome", Outcome::Duplicate.as_str())));
            return Ok(Outcome::Duplicate);
        }
        let (outcome, workspace_id) = self.handle(&mut tx, &event).await?;
        record_outcome(&mut tx, &event.id, outcome, workspace_id).await?;
        if let Some(workspace_id) = workspace_id {
            self.apply_waiting(&mut tx, workspace_id).await?;
        }
        tx.commit().await?;
        tracing::info!(event_id = %event.id, event_type = %event.kind, outcome = outcome.as_str(), ?workspace_id, "event applied");
        crate::metrics::count("StripeEvents", Some(("outcome", outcome.as_str())));
        Ok(outcome)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &StripeEvent) -> Result<(Outcome, Option<Uuid>), ApplyError> {
        match event.kind.as_str() {
            "checkout.session.completed" => self.checkout_completed(tx, event).await,
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.paused"
            | "customer.subscription.resumed"
            | "customer.subscription.trial_will_end"
            | "customer.subscription.pending_update_applied" => self.subscription_changed(tx, event).await,
            "invoice.paid" | "invoice.payment_failed" => self.invoice(tx, event).await,
            "customer.deleted" => customer_deleted(tx, event).await,
            _ => Ok((Outcome::Ignored, None)),
        }
    }

    async fn subscription_changed(
        &self,
        tx: &mut PgConnection,
        event: &StripeEvent,
    ) -> Result<(Outcome, Option<Uuid>), ApplyError> {
        let signal = Subscription::from_object(&event.data.object)
            .ok_or_else(|| ApplyError::Malformed(format!("{} carries no subscription", event.id)))?;
        let Some(workspace_id) =
            resolve_workspace(tx, signal.workspace_id, Some(&signal.customer), Some(&signal.id)).await?
        else {
            return Ok((Outcome::Unlinked, None));
        };
        let synced = self.sync(tx, workspace_id, &signal.id, Cause::of(event)).await?;
        Ok((synced.outcome, Some(workspace_id)))
    }

    /// Links the Checkout's customer to the workspace named in `client_reference_id`, then
    /// syncs the subscription it started.
    async fn checkout_completed(
        &self,
        tx: &mut PgConnection,
        event: &StripeEvent,
    ) -> Result<(Outcome, Option<Uuid>), ApplyError> {
        let object = &event.data.object;
        let reference = object.get("client_reference_id").and_then(Value::as_str).and_then(|id| id.parse().ok());
        let customer = object.get("customer").and_then(id_of);
        let Some(workspace_id) = resolve_workspace(tx, reference, customer.as_deref(), None).await? else {
            return Ok((Outcome::Unlinked, None));
        };
        if let Some(customer) = &customer {
            link_customer(tx, workspace_id, customer).await?;
        }
        // The session is used up: the next checkout for this plan gets a new one.
        sqlx::query!(
            "UPDATE checkout_sessions SET completed_at = now()
             WHERE stripe_session_id = $1 AND completed_at IS NULL",
            object.get("id").and_then(Value::as_str),
        )
        .execute(&mut *tx)
        .await?;
        add_activity(tx, workspace_id, "billing", "Checkout completed.").await?;
        if let Some(subscription) = object.get("subscription").and_then(id_of) {
            self.sync(tx, workspace_id, &subscription, Cause::of(event)).await?;
        }
        Ok((Outcome::Applied, Some(workspace_id)))
    }

    /// Records the payment on the activity trail and syncs the invoice's subscription, whose
    /// status a payment changes (incomplete → active, active → past_due).
    async fn invoice(&self, tx: &mut PgConnection, event: &StripeEvent) -> Result<(Outcome, Option<Uuid>), ApplyError> {
        let object = &event.data.object;
        let customer = object.get("customer").and_then(id_of);
        let subscription = invoice_subscription(object);
        let mut workspace_id = resolve_workspace(tx, None, customer.as_deref(), subscription.as_deref()).await?;
        if workspace_id.is_none()
            && let Some(subscription) = &subscription
        {
            // An invoice names no workspace; its subscription's metadata in Stripe may.
            let named = self.stripe.subscription(subscription).await?.as_ref().and_then(workspace_id_in_metadata);
            workspace_id = resolve_workspace(tx, named, None, None).await?;
        }
        let Some(workspace_id) = workspace_id else {
            return Ok((Outcome::Unlinked, None));
        };
        let message = if event.kind == "invoice.paid" {
            "Payment received."
        } else {
            "A payment failed; Stripe will retry it. Update the payment method in the billing portal."
        };
        add_activity(tx, workspace_id, "billing", message).await?;
        if event.kind == "invoice.payment_failed"
            && let Some(invoice) = object.get("id").and_then(Value::as_str)
        {
            // Once per invoice (and person), however often Stripe retries or redelivers.
            sqlx::query!(
                "SELECT app.mail_workspace_managers($1, 'payment_failed', $2, $3)",
                workspace_id,
                json!({
                    "amount_due": object.get("amount_due"),
                    "currency": object.get("currency"),
                    "invoice_url": object.get("hosted_invoice_url"),
                }),
                format!("payment_failed:{invoice}"),
            )
            .fetch_one(&mut *tx)
            .await?;
        }
        if let Some(subscription) = &subscription {
            self.sync(tx, workspace_id, subscription, Cause::of(event)).await?;
        }
        Ok((Outcome::Applied, Some(workspace_id)))
    }

    /// Makes the workspace's subscription row match Stripe's current state of `subscription_id`.
    /// The workspace row is locked before Stripe is read, so two syncs of one workspace run one
    /// after the other and the later one stores the later state.
    pub async fn sync(
        &self,
        tx: &mut PgConnection,
        workspace_id: Uuid,
        subscription_id: &str,
        cause: Cause<'_>,
    ) -> Result<Synced, ApplyError> {
        if !lock_workspace(tx, workspace_id).await? {
            return Ok(Synced::only(Outcome::Unlinked));
        }
        let stored: Option<Stored> = sqlx::query_as!(
            Stored,
            "SELECT workspace_id, stripe_subscription_id, plan_id, status, current_period_end,
                    cancel_at_period_end, grace_until, stripe_created, quantity
             FROM subscriptions WHERE workspace_id = $1",
            workspace_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(object) = self.stripe.subscription(subscription_id).await? else {
            return self.subscription_missing(tx, workspace_id, stored, subscription_id, cause).await;
        };
        let sub = Subscription::from_object(&object).ok_or_else(|| {
            StripeReadError::Unexpected(format!("subscription {subscription_id} lacks id, customer or status"))
        })?;
        if let Some(stored) = &stored
            && stored.stripe_subscription_id != sub.id
        {
            match self.rival(tx, workspace_id, &sub, stored, cause).await? {
                Rival::TakesItsPlace => {}
                Rival::Loses => return Ok(Synced::only(Outcome::Stale)),
                Rival::WasADuplicate => return Ok(Synced::only(Outcome::DuplicateCanceled)),
            }
        }
        let plan = match sub.lookup_key.as_deref().and_then(crate::plans::by_lookup_key) {
            Some(plan) => plan.id.to_owned(),
            // A price we do not sell: keep the plan we knew, or grant nothing.
            None => match &stored {
                Some(stored) if stored.stripe_subscription_id == sub.id => stored.plan_id.clone(),
                _ => return Ok(Synced::only(Outcome::UnknownPrice)),
            },
        };
        // Past due: the grace period runs from when it was first seen past due, not from each sync.
        let grace_until = match &stored {
            _ if sub.status != "past_due" => None,
            Some(stored) if stored.stripe_subscription_id == sub.id && stored.status == "past_due" => {
                stored.grace_until.or(Some(cause.at + self.past_due_grace))
            }
            _ => Some(cause.at + self.past_due_grace),
        };
        let differences = differences(stored.as_ref(), &sub, &plan);
        let before: String = sqlx::query_scalar!(r#"SELECT app.effective_plan($1) AS "plan!""#, workspace_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT INTO subscriptions (workspace_id, stripe_subscription_id, stripe_customer_id, plan_id, status,
                                        current_period_end, cancel_at_period_end, grace_until, stripe_created,
                                        last_event_created, last_event_id, trial_end, monthly_amount, currency,
                                        stripe_item_id, quantity, current_period_start, billing_interval,
                                        period_amount, overage_unit_amount, synced_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                     $20::text::numeric, now(), now())
             ON CONFLICT (workspace_id) DO UPDATE SET
                 stripe_subscription_id = excluded.stripe_subscription_id,
                 stripe_customer_id = excluded.stripe_customer_id,
                 plan_id = excluded.plan_id, status = excluded.status,
                 current_period_end = excluded.current_period_end,
                 cancel_at_period_end = excluded.cancel_at_period_end,
                 grace_until = excluded.grace_until, stripe_created = excluded.stripe_created,
                 last_event_created = excluded.last_event_created, last_event_id = excluded.last_event_id,
                 trial_end = excluded.trial_end, monthly_amount = excluded.monthly_amount,
                 currency = excluded.currency, stripe_item_id = excluded.stripe_item_id,
                 quantity = excluded.quantity, current_period_start = excluded.current_period_start,
                 billing_interval = excluded.billing_interval, period_amount = excluded.period_amount,
                 overage_unit_amount = excluded.overage_unit_amount,
                 synced_at = now(), updated_at = now()",
            workspace_id,
            &sub.id,
            &sub.customer,
            &plan,
            &sub.status,
            sub.current_period_end,
            sub.cancel_at_period_end,
            grace_until,
            sub.created,
            cause.event.map(|_| cause.at),
            cause.event.map(|(id, _)| id),
            sub.trial_end,
            sub.monthly_amount,
            sub.currency.as_deref(),
            sub.item_id.as_deref(),
            sub.quantity,
            sub.current_period_start,
            sub.interval.map(crate::plans::Interval::as_str),
            sub.period_amount,
            sub.overage_unit_amount.as_deref(),
        )
        .execute(&mut *tx)
        .await?;
        link_customer(tx, workspace_id, &sub.customer).await?;
        if crate::plans::by_id(&plan).per_seat {
            let before = stored.as_ref().filter(|s| s.stripe_subscription_id == sub.id).and_then(|s| s.quantity);
            self.seats_synced(tx, workspace_id, before, &sub).await?;
        }
        let after: String = sqlx::query_scalar!(r#"SELECT app.effective_plan($1) AS "plan!""#, workspace_id)
            .fetch_one(&mut *tx)
            .await?;
        let status_before = stored.as_ref().map_or("none", |s| s.status.as_str());
        if before != after || status_before != sub.status {
            record_change(tx, workspace_id, cause, (&before, &after), (status_before, &sub.status)).await?;
        }
        Ok(Synced { outcome: Outcome::Applied, differences })
    }

    /// Decides between the stored subscription and another one of the same workspace. Two live
    /// ones are confirmed with Stripe first (the stored row may be behind), then the newer is
    /// ended in Stripe as a duplicate.
    async fn rival(
        &self,
        tx: &mut PgConnection,
        workspace_id: Uuid,
        candidate: &Subscription,
        stored: &Stored,
        cause: Cause<'_>,
    ) -> Result<Rival, ApplyError> {
        let both_live = !Subscription::has_ended(&candidate.status) && !Subscription::has_ended(&stored.status);
        if !both_live {
            return Ok(if replaces(candidate, stored) { Rival::TakesItsPlace } else { Rival::Loses });
        }
        let stored_now = self
            .stripe
            .subscription(&stored.stripe_subscription_id)
            .await?
            .and_then(|object| Subscription::from_object(&object))
            .filter(|s| !Subscription::has_ended(&s.status));
        let Some(stored_now) = stored_now else {
            // The stored one has ended (its event is still on its way): no duplicate.
            return Ok(Rival::TakesItsPlace);
        };
        let candidate_is_newer =
            (candidate.created, candidate.id.as_str()) > (stored_now.created, stored_now.id.as_str());
        let (kept, duplicate) = if candidate_is_newer { (&stored_now, candidate) } else { (candidate, &stored_now) };
        let refund = self.stripe.end_duplicate(&duplicate.id).await?;
        tracing::warn!(%workspace_id, kept = %kept.id, canceled = %duplicate.id, ?refund, "ended a duplicate subscription");
        record_duplicate(tx, workspace_id, cause, kept, duplicate, refund).await?;
        Ok(if candidate_is_newer { Rival::WasADuplicate } else { Rival::TakesItsPlace })
    }

    /// Stripe has no such subscription. If the workspace's row names it, the row is wrong
    /// (a deleted test object, another account's id): it ends, and the plan with it.
    async fn subscription_missing(
        &self,
        tx: &mut PgConnection,
        workspace_id: Uuid,
        stored: Option<Stored>,
        subscription_id: &str,
        cause: Cause<'_>,
    ) -> Result<Synced, ApplyError> {
        let Some(stored) = stored.filter(|s| s.stripe_subscription_id == subscription_id) else {
            return Ok(Synced::only(Outcome::Missing));
        };
        if Subscription::has_ended(&stored.status) {
            return Ok(Synced::only(Outcome::Missing));
        }
        let before: String = sqlx::query_scalar!(r#"SELECT app.effective_plan($1) AS "plan!""#, workspace_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query!(
            "UPDATE subscriptions SET status = 'canceled', cancel_at_period_end = false, grace_until = NULL,
                                      synced_at = now(), updated_at = now()
             WHERE workspace_id = $1",
            workspace_id,
        )
        .execute(&mut *tx)
        .await?;
        tracing::warn!(%workspace_id, subscription_id, "stored subscription does not exist in Stripe; ended it");
        let after: String = sqlx::query_scalar!(r#"SELECT app.effective_plan($1) AS "plan!""#, workspace_id)
            .fetch_one(&mut *tx)
            .await?;
        record_change(tx, workspace_id, cause, (&before, &after), (&stored.status, "canceled")).await?;
        let differences =
            vec![Difference { field: "status", stored: json!(stored.status), stripe: json!("missing in Stripe") }];
        Ok(Synced { outcome: Outcome::Applied, differences })
    }

    /// Re-applies the events that named the workspace's customer before it was linked, now that
    /// it is. They are re-handled in this transaction and their outcome updated, so each is
    /// applied once; locking them (SKIP LOCKED) keeps two workers from taking the same one.
    async fn apply_waiting(&self, tx: &mut PgConnection, workspace_id: Uuid) -> Result<(), ApplyError> {
        let waiting = sqlx::query!(
            "SELECT e.id, e.payload FROM stripe_events e
             JOIN workspaces w ON w.stripe_customer_id = e.stripe_customer_id
             WHERE w.id = $1 AND e.outcome = 'unlinked'
             ORDER BY e.created, e.id
             LIMIT $2
             FOR UPDATE OF e SKIP LOCKED",
            workspace_id,
            WAITING_BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        for waited in waiting {
            let (id, payload) = (waited.id, waited.payload);
            let Ok(event) = serde_json::from_value::<StripeEvent>(payload) else { continue };
            let (outcome, linked) = self.handle(tx, &event).await?;
            record_outcome(tx, &id, outcome, linked).await?;
            tracing::info!(event_id = %id, outcome = outcome.as_str(), "applied an event that waited for its customer");
        }
        Ok(())
    }

    /// Events that found no workspace, oldest first: reconciliation retries them, in case their
    /// customer was linked by something other than an event (checkout creates the customer).
    pub async fn unlinked_since(&self, since: OffsetDateTime) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT payload::text AS "payload!" FROM stripe_events
               WHERE outcome = 'unlinked' AND created >= $1 ORDER BY created, id"#,
            since,
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Re-handles a recorded unlinked event (see `unlinked_since`); its outcome is updated in the
    /// same transaction. An event no longer unlinked (applied meanwhile) is left alone.
    pub async fn retry_unlinked(&self, payload: &str) -> Result<Outcome, ApplyError> {
        let event: StripeEvent = serde_json::from_str(payload).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        audit_as(&mut tx, None, &event.id).await?;
        let still_unlinked: Option<String> = sqlx::query_scalar!(
            "SELECT id FROM stripe_events WHERE id = $1 AND outcome = 'unlinked' FOR UPDATE SKIP LOCKED",
            &event.id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if still_unlinked.is_none() {
            return Ok(Outcome::Duplicate);
        }
        let (outcome, workspace_id) = self.handle(&mut tx, &event).await?;
        record_outcome(&mut tx, &event.id, outcome, workspace_id).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// What becomes of another subscription of a workspace than the stored one.
enum Rival {
    TakesItsPlace,
    Loses,
    /// It was the newer of two live ones, and has been ended in Stripe.
    WasADuplicate,
}

/// Whether `candidate`, another subscription of the workspace, takes the stored one's place when
/// they are not both live.
fn replaces(candidate: &Subscription, stored: &Stored) -> bool {
    let live = !Subscription::has_ended(&candidate.status);
    let stored_live = !Subscription::has_ended(&stored.status);
    if live != stored_live {
        return live;
    }
    // Both ended: the newer one is the workspace's history (an unknown creation time is older).
    (candidate.created, candidate.id.as_str()) > (stored.stripe_created, stored.stripe_subscription_id.as_str())
}

/// The fields in which the stored row differs from Stripe's subscription (with its plan).
pub(super) fn differences(stored: Option<&Stored>, sub: &Subscription, plan: &str) -> Vec<Difference> {
    let stored_field = |f: fn(&Stored) -> Value| stored.map_or(Value::Null, f);
    let timestamp = |t: Option<OffsetDateTime>| json!(t.map(OffsetDateTime::unix_timestamp));
    [
        ("subscription", stored_field(|s| json!(s.stripe_subscription_id)), json!(sub.id)),
        ("status", stored_field(|s| json!(s.status)), json!(sub.status)),
        ("plan", stored_field(|s| json!(s.plan_id)), json!(plan)),
        (
            "current_period_end",
            stored_field(|s| json!(s.current_period_end.map(OffsetDateTime::unix_timestamp))),
            timestamp(sub.current_period_end),
        ),
        ("cancel_at_period_end", stored_field(|s| json!(s.cancel_at_period_end)), json!(sub.cancel_at_period_end)),
        ("quantity", stored_field(|s| json!(s.quantity)), json!(sub.quantity)),
    ]
    .into_iter()
    .filter(|(_, stored, stripe)| stored != stripe)
    .map(|(field, stored, stripe)| Difference { field, stored, stripe })
    .collect()
}

async fn record_outcome(
    tx: &mut PgConnection,
    event_id: &str,
    outcome: Outcome,
    workspace_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE stripe_events SET outcome = $2, workspace_id = $3 WHERE id = $1",
        event_id,
        outcome.as_str(),
        workspace_id,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn customer_deleted(tx: &mut PgConnection, event: &StripeEvent) -> Result<(Outcome, Option<Uuid>), ApplyError> {
    let Some(customer) = event.data.object.get("id").and_then(id_of) else {
        return Err(ApplyError::Malformed(format!("{} names no customer", event.id)));
    };
    let workspace_id: Option<Uuid> = sqlx::query_scalar!(
        "UPDATE workspaces SET stripe_customer_id = NULL WHERE stripe_customer_id = $1 RETURNING id",
        &customer,
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok((if workspace_id.is_some() { Outcome::Applied } else { Outcome::Unlinked }, workspace_id))
}

/// The workspace an event belongs to: the id it carries (metadata or client_reference_id) if
/// that workspace exists, else the one linked to its customer or subscription.
pub async fn resolve_workspace(
    tx: &mut PgConnection,
    named: Option<Uuid>,
    customer: Option<&str>,
    subscription: Option<&str>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT coalesce(
             (SELECT id FROM workspaces WHERE id = $1),
             (SELECT id FROM workspaces WHERE stripe_customer_id = $2),
             (SELECT workspace_id FROM subscriptions WHERE stripe_subscription_id = $3))",
        named,
        customer,
        subscription,
    )
    .fetch_one(&mut *tx)
    .await
}

/// Serializes every change to one workspace's billing; false if the workspace is gone.
async fn lock_workspace(tx: &mut PgConnection, workspace_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!("SELECT id FROM workspaces WHERE id = $1 FOR NO KEY UPDATE", workspace_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some())
}

async fn link_customer(tx: &mut PgConnection, workspace_id: Uuid, customer: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL",
        workspace_id,
        customer,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn add_activity(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    kind: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO activity (workspace_id, kind, message) VALUES ($1, $2, $3)",
        workspace_id,
        kind,
        message,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What the audit log records for this transaction's changes: the acting service (when not the
/// pool's own, e.g. reconciliation) and the Stripe event or run that caused them.
pub(crate) async fn audit_as(tx: &mut PgConnection, actor: Option<&str>, cause: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT set_config('app.actor', coalesce($1, current_setting('app.actor', true), ''), true) AS actor,
                set_config('app.request_id', $2, true) AS request_id",
        actor,
        cause,
    )
    .fetch_one(&mut *tx)
    .await
    .map(|_| ())
}

async fn record_duplicate(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    cause: Cause<'_>,
    kept: &Subscription,
    canceled: &Subscription,
    refund: Option<(String, i64)>,
) -> Result<(), sqlx::Error> {
    let actor = if cause.event.is_some() { "stripe" } else { "reconciliation" };
    let plan_name = |s: &Subscription| {
        s.lookup_key.as_deref().and_then(crate::plans::by_lookup_key).map_or("an unknown plan", |p| p.name)
    };
    sqlx::query!(
        "INSERT INTO audit_log (workspace_id, actor, action, details) VALUES ($1, $2, 'subscription.duplicate_canceled', $3)",
        workspace_id,
        actor,
        json!({
        "event_id": cause.event.map(|(id, _)| id),
        "kept": kept.id, "canceled": canceled.id,
        "refund": refund.as_ref().map(|(id, amount)| json!({"id": id, "amount": amount})),
    }),
    )
    .execute(&mut *tx)
    .await?;
    let refunded = if refund.is_some() { " and its payment refunded" } else { "" };
    let message = format!(
        "A second subscription ({}) was started while {} was active; it was canceled{refunded}.",
        plan_name(canceled),
        plan_name(kept)
    );
    add_activity(tx, workspace_id, "billing", &message).await
}

async fn record_change(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    cause: Cause<'_>,
    (plan_before, plan_after): (&str, &str),
    (status_before, status_after): (&str, &str),
) -> Result<(), sqlx::Error> {
    let (actor, event_id, event_type) = match cause.event {
        Some((id, kind)) => ("stripe", Some(id), Some(kind)),
        None => ("reconciliation", None, None),
    };
    sqlx::query!(
        "INSERT INTO audit_log (workspace_id, actor, action, details) VALUES ($1, $2, 'subscription.changed', $3)",
        workspace_id,
        actor,
        json!({
            "event_id": event_id, "event_type": event_type,
            "plan": {"from": plan_before, "to": plan_after},
            "status": {"from": status_before, "to": status_after},
        }),
    )
    .execute(&mut *tx)
    .await?;
    // The activity feed's entry is the subscriptions trigger's (`subscription.changed`).
    Ok(())
}

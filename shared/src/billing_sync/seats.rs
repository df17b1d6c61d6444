//! Seats: the quantity of a per-seat subscription follows the workspace's billable seats.
//!
//! A change of seats raises the workspace's wanted version (a trigger, in the changing
//! transaction). The frequent pass puts each workspace whose wanted version is ahead of the
//! synced one on the billing queue; the worker then, holding the workspace's seat lock, reads the
//! version and the count in one statement and gives Stripe that count, with an idempotency key
//! of both (a retry of the same version and count sets it once; a count that changed without a
//! new version, as an invitation expiring, gets its own key). Syncs of one workspace run one
//! after the other, and any sync that starts after the last change reads the last count, so
//! however many changes race, the quantity ends on the right one.

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::apply::{ApplyError, Worker};
use super::event::Subscription;
#[cfg(feature = "queue")]
use crate::queue::{Queue, QueueError};

/// A message on the billing queue asking for a workspace's seats to be synced.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct SeatSyncMessage {
    pub seat_sync: Uuid,
}

impl SeatSyncMessage {
    /// The message, if `body` is one (the queue's other messages are Stripe events).
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }
}

/// What a seat sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum SeatSync {
    /// Stripe was given this quantity.
    Set { quantity: i32 },
    /// Stripe already had the count (e.g. a seat added and removed before the sync).
    Unchanged { quantity: i32 },
    /// An earlier sync already covered every change.
    UpToDate,
    /// The workspace has no live per-seat subscription (any more): nothing to sync.
    NotPerSeat,
}

struct Pending {
    wanted_version: i64,
    synced_version: i64,
    synced_quantity: Option<i32>,
    stripe_subscription_id: Option<String>,
    stripe_item_id: Option<String>,
    stripe_quantity: Option<i32>,
    status: Option<String>,
    per_seat: Option<bool>,
    seats: i32,
}

/// Workspaces put on the queue per pass; the rest wait for the next one.
const BATCH: i64 = 500;

impl Worker {
    /// Gives Stripe the workspace's current count of billable seats, if it changed.
    #[tracing::instrument(skip(self))]
    pub async fn sync_seats(&self, workspace_id: Uuid) -> Result<SeatSync, ApplyError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "SELECT pg_advisory_xact_lock(hashtextextended('seat-sync:' || $1::uuid::text, 0))",
            workspace_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        // One statement: the version and the count it stands for come from one snapshot.
        let pending: Option<Pending> = sqlx::query_as!(
            Pending,
            r#"SELECT s.wanted_version, s.synced_version, s.synced_quantity,
                    sub.stripe_subscription_id, sub.stripe_item_id, sub.quantity AS stripe_quantity, sub.status,
                    p.per_seat, app.billable_seats(s.workspace_id) AS "seats!"
             FROM seat_syncs s
             LEFT JOIN subscriptions sub ON sub.workspace_id = s.workspace_id
             LEFT JOIN plans p ON p.id = sub.plan_id
             WHERE s.workspace_id = $1"#,
            workspace_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(pending) = pending else { return Ok(SeatSync::UpToDate) };
        if pending.synced_version >= pending.wanted_version {
            return Ok(SeatSync::UpToDate);
        }
        let live = pending.status.as_deref().is_some_and(|status| !Subscription::has_ended(status));
        let (Some(subscription), true, true) =
            (pending.stripe_subscription_id.as_deref(), live, pending.per_seat == Some(true))
        else {
            mark_synced(&mut tx, workspace_id, pending.wanted_version, pending.synced_quantity).await?;
            tx.commit().await?;
            return Ok(SeatSync::NotPerSeat);
        };
        let seats = pending.seats;
        // Unchanged only if Stripe (as last heard) and our last request both say so.
        if pending.stripe_quantity == Some(seats) && pending.synced_quantity.is_none_or(|q| q == seats) {
            mark_synced(&mut tx, workspace_id, pending.wanted_version, Some(seats)).await?;
            tx.commit().await?;
            return Ok(SeatSync::Unchanged { quantity: seats });
        }
        let key = format!("seats:{subscription}:{}:{seats}", pending.wanted_version);
        let set = match pending.stripe_item_id.as_deref() {
            Some(item) => self.stripe.set_quantity(subscription, item, seats, &key).await,
            None => self.stripe.set_plan_quantity(subscription, seats, &key).await,
        };
        if let Err(error) = set {
            // Kept for operators; the message is retried by SQS.
            sqlx::query!(
                "UPDATE seat_syncs SET attempts = attempts + 1, last_error = $2 WHERE workspace_id = $1",
                workspace_id,
                error.to_string(),
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Err(error.into());
        }
        mark_synced(&mut tx, workspace_id, pending.wanted_version, Some(seats)).await?;
        tx.commit().await?;
        tracing::info!(%workspace_id, subscription, seats, version = pending.wanted_version, "seats set in Stripe");
        Ok(SeatSync::Set { quantity: seats })
    }

    #[cfg(feature = "queue")]
    /// Puts every workspace with seats to sync on the billing queue; returns how many. A
    /// workspace goes again once its last message was handled (a change that came after the
    /// sync read the count), or after two minutes (a sync that keeps failing is not piled up).
    pub async fn enqueue_seat_syncs(&self, queue: &Queue) -> Result<usize, SeatQueueError> {
        let due: Vec<Uuid> = sqlx::query_scalar!(
            "UPDATE seat_syncs SET enqueued_at = now()
             WHERE workspace_id IN (
                 SELECT workspace_id FROM seat_syncs
                 WHERE wanted_version > synced_version
                   AND (enqueued_at IS NULL OR enqueued_at < now() - interval '2 minutes')
                 ORDER BY requested_at LIMIT $1
                 FOR UPDATE SKIP LOCKED)
             RETURNING workspace_id",
            BATCH,
        )
        .fetch_all(&self.pool)
        .await?;
        let bodies: Vec<String> = due
            .iter()
            .map(|workspace_id| serde_json::json!(SeatSyncMessage { seat_sync: *workspace_id }).to_string())
            .collect();
        if let Err(error) = queue.send_all(&bodies).await {
            // Not sent: due again on the next pass.
            sqlx::query!("UPDATE seat_syncs SET enqueued_at = NULL WHERE workspace_id = ANY($1)", &due)
                .execute(&self.pool)
                .await?;
            return Err(error.into());
        }
        Ok(due.len())
    }

    /// After a per-seat subscription was synced from Stripe: a change of quantity goes on the
    /// activity trail, and a quantity that is not the workspace's count of seats (a change
    /// made in Stripe, or seats that changed while a checkout or plan change was on its way)
    /// asks for a sync.
    pub(super) async fn seats_synced(
        &self,
        tx: &mut PgConnection,
        workspace_id: Uuid,
        before: Option<i32>,
        after: &Subscription,
    ) -> Result<(), ApplyError> {
        if let (Some(before), Some(after)) = (before, after.quantity)
            && before != after
        {
            let message = format!("Seats changed from {before} to {after}.");
            super::apply::add_activity(tx, workspace_id, "billing", &message).await?;
        }
        if !Subscription::has_ended(&after.status) {
            sqlx::query!(
                "SELECT app.want_seat_sync($1) WHERE app.billable_seats($1) IS DISTINCT FROM $2::integer",
                workspace_id,
                after.quantity,
            )
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(feature = "queue")]
#[derive(Debug, thiserror::Error)]
pub enum SeatQueueError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

async fn mark_synced(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    version: i64,
    quantity: Option<i32>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE seat_syncs SET synced_version = greatest(synced_version, $2), synced_quantity = $3,
                               synced_at = now(), attempts = 0, last_error = NULL, enqueued_at = NULL
         WHERE workspace_id = $1",
        workspace_id,
        version,
        quantity,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

//! Subscriptions to cancel in Stripe because their workspace was deleted: an outbox written by a
//! trigger in the deleting transaction (no delete path can skip it), sent here by the billing
//! reconciliation's frequent pass. Each cancellation carries an idempotency key derived from the
//! subscription, so a retry after a crash cancels once; a failure is kept and retried.

use serde::Serialize;

use super::apply::{ApplyError, Worker};

/// Rows sent per pass; the rest wait for the next one.
const BATCH: i64 = 100;

#[derive(Debug, Default, Serialize)]
pub struct CancellationReport {
    /// Subscriptions canceled in Stripe (or already gone from it).
    pub canceled: Vec<String>,
    /// Subscriptions Stripe could not cancel now, with the reason; retried on the next pass.
    pub failed: Vec<(String, String)>,
}

impl Worker {
    pub async fn send_pending_cancellations(&self) -> Result<CancellationReport, ApplyError> {
        let mut report = CancellationReport::default();
        let pending = sqlx::query!(
            "SELECT stripe_subscription_id, workspace_id FROM subscription_cancellations
             WHERE canceled_at IS NULL ORDER BY requested_at LIMIT $1",
            BATCH,
        )
        .fetch_all(&self.pool)
        .await?;
        for cancellation in pending {
            let (subscription, workspace_id) = (cancellation.stripe_subscription_id, cancellation.workspace_id);
            let mut tx = self.pool.begin().await?;
            // Another pass may be sending it right now.
            let mine: Option<String> = sqlx::query_scalar!(
                "SELECT stripe_subscription_id FROM subscription_cancellations
                 WHERE stripe_subscription_id = $1 AND canceled_at IS NULL FOR UPDATE SKIP LOCKED",
                &subscription,
            )
            .fetch_optional(&mut *tx)
            .await?;
            if mine.is_none() {
                continue;
            }
            match self.stripe.cancel_now(&subscription, &format!("cancel-deleted-workspace:{subscription}")).await {
                Ok(_) => {
                    sqlx::query!(
                        "UPDATE subscription_cancellations SET canceled_at = now(), attempts = attempts + 1, last_error = NULL
                         WHERE stripe_subscription_id = $1",
                        &subscription,
                    )
                    .execute(&mut *tx)
                    .await?;
                    tracing::info!(%workspace_id, subscription, "canceled the subscription of a deleted workspace");
                    report.canceled.push(subscription);
                }
                Err(error) => {
                    sqlx::query!(
                        "UPDATE subscription_cancellations SET attempts = attempts + 1, last_error = $2
                         WHERE stripe_subscription_id = $1",
                        &subscription,
                        error.to_string(),
                    )
                    .execute(&mut *tx)
                    .await?;
                    tracing::warn!(%workspace_id, subscription, %error, "could not cancel a deleted workspace's subscription; will retry");
                    report.failed.push((subscription, error.to_string()));
                }
            }
            tx.commit().await?;
        }
        Ok(report)
    }
}

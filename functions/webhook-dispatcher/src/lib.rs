//! The `webhook-dispatcher` function: sends webhook deliveries, each signed as the Standard
//! Webhooks specification signs, retried over about a day, every attempt recorded.
//!
//! SQS messages carry a delivery id. A delivery is claimed by moving its due time a lease ahead
//! (so a redelivered message finds it not due and sends nothing), sent without holding a
//! transaction or a row lock, and its attempt recorded afterwards. That is at-least-once: a
//! crash between the send and the record sends it again at the next attempt, with the same
//! `webhook-id`, which receivers deduplicate on (as the specification asks of them). A failed
//! attempt schedules the next; a retry due within SQS's 15-minute delay is put back on the
//! queue at once, later ones by the sweep (`{"task": "sweep"}`, every minute), which also picks
//! up new deliveries: the API writes deliveries and holds no SQS client.
//!
//! An endpoint whose every attempt has failed for `disable_after` is disabled and its owners
//! and admins are mailed; a workspace whose plan no longer includes webhooks gets none.

pub mod body;
pub mod schedule;

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::Value;
use shared::config::{DatabaseConfig, Settings, parse_or};
use shared::queue::Queue;
use shared::webhooks::catalog::{Format, TEST_EVENT};
use shared::webhooks::egress::{Egress, EgressPolicy};
use shared::webhooks::signature::{self, SigningSecret};
use sqlx::PgPool;
use uuid::Uuid;

pub use schedule::RetrySchedule;

pub const FUNCTION: &str = "webhook-dispatcher";

/// How long a claimed delivery is left alone: more than one attempt can take.
const LEASE_SECS: f64 = 60.0;
/// SQS delays messages by at most this much; longer retries wait for the sweep.
const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The receiver failed; another attempt is scheduled.
    RetryScheduled,
    /// The receiver failed the last attempt; the delivery is marked failed.
    Failed,
    /// Not sent and marked failed: the endpoint is disabled, or webhooks left the plan.
    Dropped(&'static str),
    /// Not pending, not due (another copy of the message is sending it), or gone.
    NothingToDo,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("not a delivery id: {0}")]
    Malformed(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Dispatcher {
    pub pool: PgPool,
    pub egress: Egress,
    /// Where retries and the sweep put deliveries.
    pub queue: Option<Queue>,
    pub schedule: RetrySchedule,
    /// How long an endpoint may fail every attempt before it is disabled.
    pub disable_after: Duration,
}

struct Claimed {
    workspace_id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    attempts: i32,
    max_attempts: i32,
    url: String,
    format: Format,
    secret: String,
    previous_secret: Option<String>,
    disabled: bool,
    event_type: String,
    payload: Value,
    plan: String,
    overrides: serde_json::Value,
}

/// One attempt's result, as recorded.
struct Attempt {
    status_code: Option<i32>,
    latency_ms: i32,
    response_body: String,
    error: Option<String>,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Dispatcher {
    /// Makes one attempt at a delivery, if it is pending and due.
    #[tracing::instrument(skip(self))]
    pub async fn deliver(&self, delivery_id: &str) -> Result<Outcome, DispatchError> {
        let id: Uuid =
            delivery_id.trim().parse().map_err(|_| DispatchError::Malformed(delivery_id.chars().take(64).collect()))?;
        let claimed: Option<Claimed> = sqlx::query_as!(
            Claimed,
            r#"WITH claimed AS (
                 UPDATE webhook_deliveries d
                 SET next_attempt_at = now() + make_interval(secs => $2), enqueued_at = NULL
                 WHERE d.id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
                 RETURNING d.workspace_id, d.endpoint_id, d.event_id, d.attempts, d.max_attempts)
             SELECT c.workspace_id, c.endpoint_id, c.event_id, c.attempts, c.max_attempts, e.url, e.format AS "format: Format", e.secret,
                    CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret,
                    e.disabled_at IS NOT NULL AS "disabled!", ev.type AS event_type, ev.payload,
                    app.effective_plan(c.workspace_id) AS "plan!", app.active_overrides(c.workspace_id) AS "overrides!"
             FROM claimed c
             JOIN webhook_endpoints e ON e.id = c.endpoint_id
             JOIN webhook_events ev ON ev.id = c.event_id"#,
            id,
            LEASE_SECS,
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(claimed) = claimed else { return Ok(Outcome::NothingToDo) };
        if claimed.disabled && claimed.event_type != TEST_EVENT {
            return self.drop_delivery(id, "the endpoint is disabled").await;
        }
        if !shared::plans::by_id(&claimed.plan).with_overrides(&claimed.overrides).features.webhooks {
            return self.drop_delivery(id, "the workspace's plan does not include webhooks").await;
        }
        let attempt = self.send(&claimed).await;
        self.record(id, &claimed, attempt).await
    }

    /// Signs and sends; never fails, as every way of not being answered is an attempt's result.
    async fn send(&self, claimed: &Claimed) -> Attempt {
        let started = Instant::now();
        let failed = |error: String| Attempt {
            status_code: None,
            latency_ms: elapsed_ms(started),
            response_body: String::new(),
            error: Some(error),
        };
        let url = match reqwest::Url::parse(&claimed.url) {
            Ok(url) => url,
            Err(error) => return failed(format!("the endpoint URL is invalid: {error}")),
        };
        let secrets = match std::iter::once(&claimed.secret)
            .chain(claimed.previous_secret.as_ref())
            .map(|s| SigningSecret::parse(s))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(secrets) => secrets,
            Err(error) => return failed(error.to_string()),
        };
        let body = body::render(claimed.format, &claimed.payload);
        let message_id = format!("msg_{}", claimed.event_id.simple());
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signing: Vec<&SigningSecret> = secrets.iter().collect();
        let headers = signature::headers(&message_id, timestamp, &body, &signing);
        match self.egress.post(&url, &headers, body).await {
            Ok(answer) => Attempt {
                status_code: Some(i32::from(answer.status)),
                latency_ms: i32::try_from(answer.latency_ms).unwrap_or(i32::MAX),
                error: (!(200..300).contains(&answer.status))
                    .then(|| format!("the endpoint answered {}", answer.status)),
                response_body: answer.body,
            },
            Err(error) => failed(error_chain(&error)),
        }
    }

    /// Records the attempt; schedules the next or settles the delivery; keeps the endpoint's
    /// failure clock and disables it (mailing its managers) once it has failed for too long.
    async fn record(&self, id: Uuid, claimed: &Claimed, attempt: Attempt) -> Result<Outcome, DispatchError> {
        let made = claimed.attempts + 1;
        let succeeded = attempt.succeeded();
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO webhook_attempts (id, workspace_id, delivery_id, status_code, latency_ms, response_body, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            Uuid::now_v7(),
            claimed.workspace_id,
            id,
            attempt.status_code,
            attempt.latency_ms,
            &attempt.response_body,
            attempt.error.as_deref(),
        )
        .execute(&mut *tx)
        .await?;
        let disabled = !succeeded && self.note_failure(&mut tx, claimed).await?;
        let (outcome, retry_in) = if succeeded {
            (Outcome::Succeeded, None)
        } else if made >= claimed.max_attempts || disabled {
            (Outcome::Failed, None)
        } else {
            (Outcome::RetryScheduled, Some(self.schedule.delay_after(made as u32)))
        };
        sqlx::query!(
            "UPDATE webhook_deliveries SET
                 attempts = $2, last_status_code = $3, last_error = $4,
                 status = $5,
                 next_attempt_at = CASE WHEN $6::float8 IS NULL THEN next_attempt_at ELSE now() + make_interval(secs => $6) END,
                 finished_at = CASE WHEN $5 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
            id,
            made,
            attempt.status_code,
            attempt.error.as_deref(),
            match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RetryScheduled => "pending",
            _ => "failed",
        },
            retry_in.map(|d| d.as_secs_f64()),
        )
        .execute(&mut *tx)
        .await?;
        if succeeded {
            sqlx::query!(
                "UPDATE webhook_endpoints SET failing_since = NULL
                 WHERE id = $1 AND failing_since IS NOT NULL",
                claimed.endpoint_id,
            )
            .execute(&mut *tx)
            .await?;
        }
        if disabled {
            // What was still to be sent to it is settled now; each can be retried once re-enabled.
            sqlx::query!(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the endpoint was disabled', finished_at = now()
                 WHERE endpoint_id = $1 AND status = 'pending'",
                claimed.endpoint_id,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if let (Some(delay), Some(queue)) = (retry_in, &self.queue)
            && delay <= MAX_QUEUE_DELAY
        {
            self.requeue(queue, id, delay).await;
        }
        Ok(outcome)
    }

    /// Starts the endpoint's failure clock if it is not running; disables the endpoint (and
    /// mails its managers) when it has run for `disable_after`. Answers whether it disabled it.
    async fn note_failure(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        claimed: &Claimed,
    ) -> Result<bool, DispatchError> {
        sqlx::query!(
            "UPDATE webhook_endpoints SET failing_since = now() WHERE id = $1 AND failing_since IS NULL",
            claimed.endpoint_id,
        )
        .execute(&mut **tx)
        .await?;
        let disabled = sqlx::query!(
            r#"UPDATE webhook_endpoints SET disabled_at = now(),
                    disabled_reason = 'every delivery failed since '
                        || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
             WHERE id = $1 AND disabled_at IS NULL AND failing_since <= now() - make_interval(secs => $2)
             RETURNING failing_since AS "failing_since!", disabled_at AS "disabled_at!""#,
            claimed.endpoint_id,
            self.disable_after.as_secs_f64(),
        )
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(disabled) = &disabled {
            let (failing_since, disabled_at) = (disabled.failing_since, disabled.disabled_at);
            tracing::warn!(endpoint_id = %claimed.endpoint_id, %failing_since, "webhook endpoint disabled after failing continuously");
            sqlx::query!(
                "SELECT app.mail_workspace_managers($1, 'webhook_disabled', $2, $3)",
                claimed.workspace_id,
                serde_json::json!({
                    "url": claimed.url,
                    "endpoint_id": claimed.endpoint_id,
                    "failing_since": failing_since.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                }),
                format!("webhook_disabled:{}:{}", claimed.endpoint_id, disabled_at.unix_timestamp()),
            )
                .fetch_one(&mut **tx)
                .await?;
        }
        Ok(disabled.is_some())
    }

    async fn drop_delivery(&self, id: Uuid, reason: &'static str) -> Result<Outcome, DispatchError> {
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $2, finished_at = now()
             WHERE id = $1 AND status = 'pending'",
            id,
            reason,
        )
        .execute(&self.pool)
        .await?;
        Ok(Outcome::Dropped(reason))
    }

    async fn requeue(&self, queue: &Queue, id: Uuid, delay: Duration) {
        // Rounded up, plus a second for the clocks of SQS and the database: a message that
        // arrived before its delivery is due would find nothing to do.
        let delay_secs = u32::try_from(delay.as_secs_f64().ceil() as u64 + 1).unwrap_or(u32::MAX);
        match queue.send_delayed(&id.to_string(), delay_secs).await {
            Ok(_) => {
                let marked = sqlx::query!("UPDATE webhook_deliveries SET enqueued_at = now() WHERE id = $1", id)
                    .execute(&self.pool)
                    .await;
                if let Err(error) = marked {
                    tracing::warn!(%id, %error, "could not mark a retry as queued; the sweep may queue it again");
                }
            }
            // The sweep puts it on the queue when it is due.
            Err(error) => tracing::warn!(%id, %error, "could not queue a retry"),
        }
    }

    /// Puts every delivery that is due and not on the queue (or was put there a while ago and
    /// not taken) on the queue. Answers how many.
    pub async fn sweep(&self) -> Result<usize, DispatchError> {
        let Some(queue) = &self.queue else { return Ok(0) };
        let ids: Vec<Uuid> = sqlx::query_scalar!(
            "UPDATE webhook_deliveries SET enqueued_at = now()
             WHERE id IN (SELECT id FROM webhook_deliveries
                          WHERE status = 'pending' AND next_attempt_at <= now()
                            AND (enqueued_at IS NULL OR enqueued_at < now() - interval '5 minutes')
                          ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in &ids {
            if let Err(error) = queue.send(&id.to_string(), &[]).await {
                tracing::warn!(%id, %error, "could not queue a delivery");
            }
        }
        Ok(ids.len())
    }
}

impl shared::runtime::FromSettings for Dispatcher {
    /// Reads `SERVICE_DATABASE_URL` (an `app_webhooks` login), `WEBHOOK_QUEUE_URL`,
    /// `WEBHOOK_DISABLE_AFTER_HOURS` (default 72) and `WEBHOOKS_ALLOW_LOOPBACK_HTTP`.
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        let queue = match settings.get("WEBHOOK_QUEUE_URL") {
            Some(url) => Some(Queue::connect(url).await),
            None => None,
        };
        let hours: u64 = parse_or(&lookup, "WEBHOOK_DISABLE_AFTER_HOURS", 72)?;
        let policy = EgressPolicy {
            allow_loopback_http: parse_or(&lookup, "WEBHOOKS_ALLOW_LOOPBACK_HTTP", false)?,
            ..EgressPolicy::default()
        };
        Ok(Self {
            pool: shared::db::connect_as(&database, FUNCTION).await?,
            egress: Egress::new(policy)?,
            queue,
            schedule: RetrySchedule::default(),
            disable_after: Duration::from_secs(hours * 3600),
        })
    }
}

fn elapsed_ms(started: Instant) -> i32 {
    i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// An error with its causes ("could not reach the endpoint: ...: dns error: 10.0.0.1 is not a
/// public address"), so the delivery log says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.chars().take(500).collect()
}

/// Sends the messages of a batch concurrently (each waits on a receiver, up to its timeout);
/// the failed ones are retried by SQS and dead-lettered. A receiver's failure is no failure
/// here: it is recorded and retried on the delivery's own schedule.
pub async fn handle_batch(dispatcher: &Dispatcher, event: SqsEvent) -> SqsBatchResponse {
    // Deliveries are independent and wait on their receivers: all of a batch at once.
    shared::runtime::batch::each(event, "delivery", shared::runtime::batch::Policy::Concurrent, |body| async move {
        dispatcher.deliver(&body).await
    })
    .await
}

shared::sweeping_worker!(Dispatcher, FUNCTION, handle_batch);

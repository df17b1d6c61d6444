//! The `usage-worker` function: drains the usage queue (each message is a usage record id) and
//! reports each record to Stripe as a Billing Meter Event, exactly once: a run within the quota
//! to the usage meter (`STRIPE_METER_EVENT_NAME`, which carries no price: those runs are paid for
//! by the plan), a run beyond it to the overage meter (`STRIPE_OVERAGE_METER_EVENT_NAME`, whose
//! metered price bills it).
//!
//! Never twice: the record's row is locked while it is reported, the event's `identifier` is
//! the record id (Stripe refuses a second event with it) and the request's idempotency key is
//! derived from it; a record already marked reported is acknowledged without a call. Usage of a
//! workspace without a Stripe customer stays unreported; the sweeper sends it again later.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use secrecy::SecretString;
use shared::config::{DatabaseConfig, Settings};
use shared::stripe::{StripeClient, StripeError};
use sqlx::PgPool;
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use time::OffsetDateTime;
use uuid::Uuid;

pub const FUNCTION: &str = "usage-worker";
pub const DEFAULT_METER_EVENT_NAME: &str = "ai_tool_runs";
pub const DEFAULT_OVERAGE_METER_EVENT_NAME: &str = "ai_overage_runs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Reported,
    AlreadyReported,
    /// The workspace has no Stripe customer yet; kept for later.
    NoCustomer,
    /// The record no longer exists (its workspace was deleted).
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("not a usage record id: {0}")]
    Malformed(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

pub struct UsageWorker {
    pub pool: PgPool,
    pub stripe: StripeClient,
    pub event_name: String,
    pub overage_event_name: String,
}

struct Record {
    quantity: i32,
    overage: bool,
    occurred_at: OffsetDateTime,
    reported_at: Option<OffsetDateTime>,
    stripe_customer_id: Option<String>,
}

impl UsageWorker {
    #[tracing::instrument(skip(self))]
    pub async fn report(&self, record_id: &str) -> Result<Outcome, ReportError> {
        let id: Uuid =
            record_id.trim().parse().map_err(|_| ReportError::Malformed(record_id.chars().take(64).collect()))?;
        let mut tx = self.pool.begin().await?;
        let record: Option<Record> = sqlx::query_as!(
            Record,
            "SELECT u.quantity, u.overage, u.occurred_at, u.reported_at, w.stripe_customer_id
             FROM usage_records u JOIN workspaces w ON w.id = u.workspace_id
             WHERE u.id = $1 FOR UPDATE OF u",
            id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(record) = record else { return Ok(Outcome::Gone) };
        if record.reported_at.is_some() {
            return Ok(Outcome::AlreadyReported);
        }
        let Some(customer) = record.stripe_customer_id else { return Ok(Outcome::NoCustomer) };
        let payload = std::collections::HashMap::from([
            ("stripe_customer_id".to_owned(), customer.clone()),
            ("value".to_owned(), record.quantity.to_string()),
        ]);
        let meter = if record.overage { &self.overage_event_name } else { &self.event_name };
        let event = CreateBillingMeterEvent::new(meter.as_str(), payload)
            .identifier(id.to_string())
            .timestamp(record.occurred_at.unix_timestamp());
        self.stripe.post(event, &format!("meter-event:{id}")).await?;
        sqlx::query!(
            "UPDATE usage_records SET reported_at = now(), stripe_customer_id = $2 WHERE id = $1",
            id,
            &customer,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Outcome::Reported)
    }
}

impl shared::runtime::FromSettings for UsageWorker {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        Ok(Self {
            pool: shared::db::connect_as(&database, "usage-worker").await?,
            stripe: StripeClient::new(
                &SecretString::from(settings.require("STRIPE_SECRET_KEY")?),
                settings.get("STRIPE_API_BASE").as_deref(),
            )?,
            event_name: settings.get("STRIPE_METER_EVENT_NAME").unwrap_or_else(|| DEFAULT_METER_EVENT_NAME.to_owned()),
            overage_event_name: settings
                .get("STRIPE_OVERAGE_METER_EVENT_NAME")
                .unwrap_or_else(|| DEFAULT_OVERAGE_METER_EVENT_NAME.to_owned()),
        })
    }
}

/// Reports each message of a batch; the failed ones are retried by SQS and dead-lettered.
pub async fn handle_batch(worker: &UsageWorker, event: SqsEvent) -> SqsBatchResponse {
    shared::runtime::batch::each(event, "usage record", shared::runtime::batch::Policy::Sequential, |body| async move {
        let result = worker.report(&body).await;
        let outcome = match &result {
            Ok(Outcome::Reported) => "reported",
            Ok(Outcome::AlreadyReported) => "already_reported",
            Ok(Outcome::NoCustomer) => "no_customer",
            Ok(Outcome::Gone) => "gone",
            Err(_) => "failed",
        };
        shared::metrics::count("UsageReports", Some(("outcome", outcome)));
        result
    })
    .await
}

impl shared::runtime::Worker for UsageWorker {
    const NAME: &'static str = FUNCTION;
    type Task = shared::runtime::NoTask;

    async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        handle_batch(self, batch).await
    }

    async fn run_task(&self, task: shared::runtime::NoTask) -> Result<serde_json::Value, shared::runtime::Error> {
        match task {}
    }
}

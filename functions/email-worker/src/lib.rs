//! The `email-worker` function: sends the outbox's e-mails through Amazon SES, each once.
//!
//! SQS messages carry an outbox row id. The row is locked while its mail is sent, and marked
//! sent (with SES's message id, and the invitation token it carried erased) in the same
//! transaction, so a redelivered message finds it sent and sends nothing. A failed send is
//! counted and retried by SQS, then dead-lettered. On its schedule (`{"task": "sweep"}`) the
//! same function puts every mail not yet sent on the queue: the API functions write the outbox
//! and hold no SQS client, so a mail leaves within a sweep period of its cause.
//!
//! The one window left: SES accepted a mail and the commit that records it failed. SES has no
//! idempotency key, so that mail would go again on the retry; it is logged as such.

pub mod templates;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use serde_json::Value;
use shared::config::{DatabaseConfig, Settings};
use shared::queue::Queue;
use sqlx::PgPool;
use uuid::Uuid;

pub const FUNCTION: &str = "email-worker";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Sent before (a redelivered message).
    AlreadySent,
    /// No such row (its workspace was deleted with it, or a stray id).
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("not an outbox id: {0}")]
    Malformed(String),
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error("SES refused or failed: {0}")]
    Ses(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Mailer {
    pub pool: PgPool,
    pub ses: aws_sdk_sesv2::Client,
    /// The SES identity mails are sent from.
    pub from: String,
    /// Where links in mails point (the web app).
    pub app_base_url: String,
    /// Where the sweep puts unsent mails.
    pub queue: Option<Queue>,
    /// Print each sent mail's text to stdout (the local stack, so a developer can follow links;
    /// `dev` only, since a mail's text carries its invitation token).
    #[cfg(feature = "dev")]
    pub echo: bool,
}

struct Row {
    to_address: String,
    template: String,
    params: Value,
    sent_at: Option<time::OffsetDateTime>,
}

impl Mailer {
    #[tracing::instrument(skip(self))]
    pub async fn send(&self, email_id: &str) -> Result<Outcome, SendError> {
        let id: Uuid =
            email_id.trim().parse().map_err(|_| SendError::Malformed(email_id.chars().take(64).collect()))?;
        let mut tx = self.pool.begin().await?;
        let row: Option<Row> = sqlx::query_as!(
            Row,
            "SELECT to_address, template, params, sent_at FROM emails WHERE id = $1 FOR UPDATE",
            id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(Outcome::Gone) };
        if row.sent_at.is_some() {
            return Ok(Outcome::AlreadySent);
        }
        let mail = templates::render(&row.template, &row.params, &self.app_base_url)?;
        let sent = self
            .ses
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&row.to_address).build())
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(content(&mail.subject)?)
                            .body(Body::builder().text(content(&mail.text)?).html(content(&mail.html)?).build())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await;
        let message_id = match sent {
            Ok(sent) => sent.message_id().unwrap_or_default().to_owned(),
            Err(error) => {
                let reason = aws_sdk_sesv2::error::DisplayErrorContext(&error).to_string();
                sqlx::query!(
                    "UPDATE emails SET attempts = attempts + 1, last_error = left($2, 500) WHERE id = $1",
                    id,
                    &reason,
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Err(SendError::Ses(reason));
            }
        };
        sqlx::query!(
            "UPDATE emails SET sent_at = now(), ses_message_id = $2, attempts = attempts + 1, last_error = NULL,
                    params = params - 'token'
             WHERE id = $1",
            id,
            &message_id,
        )
        .execute(&mut *tx)
        .await?;
        if let Err(error) = tx.commit().await {
            tracing::error!(%id, %message_id, %error, "SES sent the mail but recording it failed; a retry will send it again");
            return Err(error.into());
        }
        #[cfg(feature = "dev")]
        if self.echo {
            println!(
                "\n--- mail to {} ({}) ---\nSubject: {}\n\n{}---",
                row.to_address, row.template, mail.subject, mail.text
            );
        }
        Ok(Outcome::Sent)
    }

    /// Puts every mail not yet sent (and not put on the queue in the last minutes) on the queue.
    pub async fn sweep(&self) -> Result<usize, SendError> {
        let Some(queue) = &self.queue else { return Ok(0) };
        let ids: Vec<Uuid> = sqlx::query_scalar!(
            "UPDATE emails SET enqueued_at = now()
             WHERE id IN (SELECT id FROM emails
                          WHERE sent_at IS NULL AND attempts < 10
                            AND (enqueued_at IS NULL OR enqueued_at < now() - interval '10 minutes')
                          ORDER BY created_at LIMIT 500 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in &ids {
            if let Err(error) = queue.send(&id.to_string(), &[]).await {
                // Left marked: the next sweep after the window tries again.
                tracing::warn!(%id, %error, "could not enqueue a mail");
            }
        }
        Ok(ids.len())
    }
}

impl shared::runtime::FromSettings for Mailer {
    /// Reads `SERVICE_DATABASE_URL` (an `app_mailer` login), `EMAIL_FROM`, `APP_BASE_URL` and
    /// `EMAIL_QUEUE_URL`.
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let database = DatabaseConfig::from_lookup(&lookup, "SERVICE_DATABASE_URL")?;
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let queue = match settings.get("EMAIL_QUEUE_URL") {
            Some(url) => Some(Queue::connect(url).await),
            None => None,
        };
        Ok(Self {
            pool: shared::db::connect_as(&database, FUNCTION).await?,
            ses: aws_sdk_sesv2::Client::new(&config),
            from: settings.require("EMAIL_FROM")?,
            app_base_url: settings.require("APP_BASE_URL")?,
            queue,
            #[cfg(feature = "dev")]
            echo: false,
        })
    }
}

fn content(text: &str) -> Result<Content, SendError> {
    Content::builder().data(text).charset("UTF-8").build().map_err(|e| SendError::Ses(e.to_string()))
}

/// Sends each message of a batch; the failed ones are retried by SQS and dead-lettered.
pub async fn handle_batch(mailer: &Mailer, event: SqsEvent) -> SqsBatchResponse {
    shared::runtime::batch::each(event, "mail", shared::runtime::batch::Policy::Sequential, |body| async move {
        mailer.send(&body).await
    })
    .await
}

shared::sweeping_worker!(Mailer, FUNCTION, handle_batch);

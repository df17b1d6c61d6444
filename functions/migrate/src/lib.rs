//! Applies the database migrations on every deploy. The stack's custom resource `Migrations`
//! invokes this function, inside the VPC and with the migration owner's secret only, whenever
//! its code (which embeds `migrations/`) changes; a migration that fails fails the deploy.
//!
//! CloudFormation waits for an answer PUT to the request's presigned `ResponseURL`, for up to
//! an hour if none comes, so every request is answered: SUCCESS with the versions this run
//! applied, or FAILED with the reason (an unreachable database, a failed or edited migration,
//! the deadline). Deleting the resource (or the stack) changes nothing in the database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use shared::config::{DatabaseConfig, Settings, parse_or};
use sqlx::PgPool;

pub use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;

pub const FUNCTION: &str = "migrate";

/// The one physical resource this custom resource stands for: the schema of the stack's database.
const PHYSICAL_ID: &str = "database-migrations";

/// CloudFormation shows at most 4 KiB of a reason.
const MAX_REASON: usize = 3_000;

pub struct Migrate {
    /// Or why there is none: a missing login is an answer to send (FAILED, with the reason),
    /// not a function that cannot start and leaves the deploy waiting.
    database: Result<DatabaseConfig, String>,
    http: reqwest::Client,
    /// Kept below the function's timeout, so a slow migration is answered FAILED rather than
    /// leaving the deploy waiting.
    deadline: Duration,
}

impl shared::runtime::FromSettings for Migrate {
    /// Reads `MIGRATION_DATABASE_URL` (the migration owner's login) and `MIGRATE_DEADLINE_SECS`
    /// (default 240). Connects to nothing yet: a database that cannot be reached is an answer
    /// to send, not a failed start.
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let deadline = Duration::from_secs(parse_or(&lookup, "MIGRATE_DEADLINE_SECS", 240)?);
        let database = DatabaseConfig::from_lookup(&lookup, "MIGRATION_DATABASE_URL")
            .map(|mut database| {
                database.max_connections = 1;
                database.statement_timeout = deadline;
                database
            })
            .map_err(|error| format!("{error}: put it in the secret named by MigrationDatabaseSecretArn"));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
        Ok(Self { database, http, deadline })
    }
}

/// The answer CloudFormation reads from the response URL.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// `Applied`: the versions this run applied, comma-separated (empty when none was
    /// pending); `Latest`: the newest version the database has.
    pub data: BTreeMap<&'static str, String>,
}

/// Handles one custom-resource request and PUTs its answer to the response URL; returns the
/// answer too (for the invocation's log).
pub async fn handle(state: &Migrate, request: Request) -> Response {
    let (response_url, mut response) = match &request {
        Request::Create(r) => (&r.response_url, answer(&r.stack_id, &r.request_id, &r.logical_resource_id, None)),
        Request::Update(r) => {
            (&r.response_url, answer(&r.stack_id, &r.request_id, &r.logical_resource_id, Some(&r.physical_resource_id)))
        }
        Request::Delete(r) => {
            (&r.response_url, answer(&r.stack_id, &r.request_id, &r.logical_resource_id, Some(&r.physical_resource_id)))
        }
        _ => unreachable!("CloudFormation sends Create, Update or Delete"),
    };
    if !matches!(request, Request::Delete(_)) {
        let applied = async {
            match &state.database {
                Ok(database) => apply(database).await,
                Err(reason) => Err(reason.clone()),
            }
        };
        match tokio::time::timeout(state.deadline, applied).await {
            Ok(Ok((applied, latest))) => {
                tracing::info!(?applied, latest, "migrations applied");
                response.data.insert("Applied", applied.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
                response.data.insert("Latest", latest.map(|v| v.to_string()).unwrap_or_default());
            }
            Ok(Err(reason)) => fail(&mut response, reason),
            Err(_) => fail(&mut response, format!("the migrations did not finish within {:?}", state.deadline)),
        }
    }
    if let Err(error) = send(&state.http, response_url, &response).await {
        // Nothing more can be done: CloudFormation times the resource out.
        tracing::error!(%error, "the answer could not be sent to CloudFormation");
    }
    response
}

fn answer(stack_id: &str, request_id: &str, logical_id: &str, physical_id: Option<&str>) -> Response {
    Response {
        status: "SUCCESS",
        reason: None,
        physical_resource_id: physical_id.unwrap_or(PHYSICAL_ID).to_owned(),
        stack_id: stack_id.to_owned(),
        request_id: request_id.to_owned(),
        logical_resource_id: logical_id.to_owned(),
        data: BTreeMap::new(),
    }
}

fn fail(response: &mut Response, reason: String) {
    tracing::error!(reason, "the migrations failed");
    let mut reason = reason;
    if reason.len() > MAX_REASON {
        let cut = (0..=MAX_REASON).rev().find(|&i| reason.is_char_boundary(i)).unwrap_or(0);
        reason.truncate(cut);
    }
    response.status = "FAILED";
    response.reason = Some(reason);
}

/// Applies what is pending; answers the versions this run applied and the newest one applied.
async fn apply(database: &DatabaseConfig) -> Result<(Vec<i64>, Option<i64>), String> {
    let pool: PgPool = shared::db::connect_as(database, FUNCTION)
        .await
        .map_err(|error| format!("cannot connect to the database as the migration owner: {error}"))?;
    let report =
        shared::db::migrate::run_reporting(&pool).await.map_err(|error| format!("a migration failed: {error}"));
    pool.close().await;
    let report = report?;
    Ok((report.applied, report.latest))
}

/// The answer, as CloudFormation's presigned S3 URL takes it: a PUT with an empty content type
/// (the URL was signed without one). A failed PUT is tried twice more.
async fn send(http: &reqwest::Client, url: &str, response: &Response) -> Result<(), reqwest::Error> {
    let body = serde_json::to_vec(response).expect("the answer serializes");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => return Ok(()),
            Err(error) if attempt >= 3 => return Err(error),
            Err(error) => {
                tracing::warn!(%error, attempt, "sending the answer failed; trying again");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
        }
    }
}

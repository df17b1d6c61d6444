//! The `ai-runs` function: runs AI tools over workspace data, with the plan's feature flag, an
//! atomically reserved monthly quota, idempotent retries, and metered usage recorded only for
//! runs that succeeded (see `runs`).

mod runs;
pub mod tools;

use axum::Router;
use axum::extract::FromRef;
use shared::AppState;
use shared::ai::{AiClient, AiConfig};
use shared::config::{Config, Settings};
use shared::queue::Queue;

pub const FUNCTION: &str = "ai-runs";

#[derive(Clone)]
pub struct AiState {
    pub app: AppState,
    pub ai: AiClient,
    /// Where usage records go for the usage worker; `None` leaves them to the sweeper.
    pub usage_queue: Option<Queue>,
}

impl FromRef<AiState> for sqlx::PgPool {
    fn from_ref(state: &AiState) -> sqlx::PgPool {
        state.app.pool.clone()
    }
}

impl FromRef<AiState> for AppState {
    fn from_ref(state: &AiState) -> AppState {
        state.app.clone()
    }
}

pub fn router() -> shared::openapi::OpenApiRouter<AiState> {
    runs::router()
}

pub fn app(state: AiState) -> Router {
    let body_limit = state.app.config.max_body_bytes;
    shared::http::finish_with(router().merge(shared::http::health::routes()), state, FUNCTION, body_limit)
}

/// The Lambda entry point.
pub async fn run() -> Result<(), lambda_http::Error> {
    shared::telemetry::init(FUNCTION);
    let settings = Settings::load().await?;
    let config = Config::from_settings(&settings)?;
    let ai = AiClient::new(AiConfig::from_settings(&settings)?);
    let usage_queue = match settings.get("USAGE_QUEUE_URL") {
        Some(url) => Some(Queue::connect(url).await),
        None => None,
    };
    let pool = shared::db::connect(&config.database).await?;
    lambda_http::run(app(AiState { app: AppState::new(config, pool), ai, usage_queue })).await
}

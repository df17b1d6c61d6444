//! The `ai-runs` function: runs AI tools over workspace data, with the plan's feature flag, an
//! atomically reserved monthly quota, idempotent retries, and metered usage recorded only for
//! runs that succeeded (see `runs`).

mod constraints;
mod runs;
pub mod tools;

use axum::extract::FromRef;
use shared::AppState;
use shared::ai::{AiClient, AiConfig};
use shared::config::Settings;
use shared::queue::Queue;

pub const FUNCTION: &str = "ai-runs";

#[derive(Clone)]
pub struct AiState {
    pub app: AppState,
    pub ai: AiClient,
    /// Where usage records go for the usage worker; `None` leaves them to the sweeper.
    pub usage_queue: Option<Queue>,
}

impl FromRef<AiState> for std::sync::Arc<shared::auth::Authenticator> {
    fn from_ref(state: &AiState) -> Self {
        state.app.auth.clone()
    }
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
    shared::http::constrained(runs::router(), constraints::CONSTRAINTS)
}

shared::http_function!(AiState, |state| shared::http::finish_over(router(), state, FUNCTION));

/// The API's state, the AI provider's client and, when configured, the usage queue.
impl AiState {
    /// Over an application state already built (the local stack's, shared by every function it
    /// serves): the AI provider's settings and `USAGE_QUEUE_URL`, if set.
    pub async fn with_app(app: AppState, settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let ai = AiClient::new(AiConfig::from_settings(settings)?);
        let usage_queue = match settings.get("USAGE_QUEUE_URL") {
            Some(url) => Some(Queue::connect(url).await),
            None => None,
        };
        Ok(Self { app, ai, usage_queue })
    }
}

impl shared::runtime::FromSettings for AiState {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        Self::with_app(AppState::from_settings(settings).await?, settings).await
    }
}

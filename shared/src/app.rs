//! The state every handler shares, built once per execution environment.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Access;
use crate::auth::{Authenticator, Caller};
use crate::config::{Config, Settings};
use crate::db::{Cost, RateLimiter, TenantTx};
use crate::error::ApiError;

/// Clients and settings reused across invocations. Never holds tenant data.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub pool: PgPool,
    pub auth: Arc<Authenticator>,
    /// This instance's leases of the rate limits.
    pub limiter: RateLimiter,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The `Caller` extractor verifies tokens with the state's verifier.
impl axum::extract::FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Arc<Authenticator> {
        state.auth.clone()
    }
}

/// The health check reads the pool from the state.
impl axum::extract::FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> PgPool {
        state.pool.clone()
    }
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> Self {
        let auth = Arc::new(Authenticator::new(&config.auth));
        Self::with_authenticator(config, pool, auth)
    }

    fn with_authenticator(config: Config, pool: PgPool, auth: Arc<Authenticator>) -> Self {
        Self(Arc::new(Inner { config, pool, auth, limiter: RateLimiter::default() }))
    }

    /// Opens the caller's transaction, not counted against a rate limit (a request's later
    /// transactions; the first one opens with `open_personal` or `open_workspace`).
    pub async fn begin(&self, caller: &Caller) -> Result<TenantTx, ApiError> {
        TenantTx::begin(&self.pool, caller).await
    }

    /// Opens the caller's transaction on a route outside any workspace, counted against their
    /// own rate limit.
    pub async fn open_personal(&self, caller: &Caller) -> Result<TenantTx, ApiError> {
        TenantTx::begin_counted(&self.pool, &self.limiter, caller).await
    }

    /// Opens the caller's transaction inside the workspace and answers their access to it (404 if
    /// none), in one round trip.
    pub async fn open_workspace(&self, caller: &Caller, workspace_id: Uuid) -> Result<(TenantTx, Access), ApiError> {
        self.open_workspace_costing(caller, workspace_id, Cost::Standard).await
    }

    /// As `open_workspace`, for a route that also counts against the plan's budget of expensive
    /// requests (AI runs, checkout).
    pub async fn open_workspace_costing(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        cost: Cost,
    ) -> Result<(TenantTx, Access), ApiError> {
        let (tx, entry) = TenantTx::enter(&self.pool, &self.limiter, caller, workspace_id, None, cost).await?;
        tracing::Span::current().record("workspace_id", tracing::field::display(workspace_id));
        Ok((tx, Access::from_entry(&entry)?.0))
    }

    /// As `open_workspace`, and whether the caller can see `project_id` in it, learned in the
    /// same round trip; the handler decides which refusal comes first.
    pub async fn open_project(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        project_id: Uuid,
    ) -> Result<(TenantTx, Access, bool), ApiError> {
        let (tx, entry) =
            TenantTx::enter(&self.pool, &self.limiter, caller, workspace_id, Some(project_id), Cost::Standard).await?;
        tracing::Span::current().record("workspace_id", tracing::field::display(workspace_id));
        let (access, project_visible) = Access::from_entry(&entry)?;
        Ok((tx, access, project_visible))
    }
}

/// An API function's state: the configuration, then the pool (its first connection opened now,
/// during init, which shortens the first request) and, beside it, the identity provider's keys.
impl crate::runtime::FromSettings for AppState {
    async fn from_settings(settings: &Settings) -> Result<Self, crate::runtime::Error> {
        let config = Config::from_settings(settings)?;
        let auth = Arc::new(Authenticator::new(&config.auth));
        // The identity provider's keys and the database's first connection, side by side.
        let (pool, ()) = tokio::join!(crate::db::connect(&config.database), auth.prefetch());
        Ok(Self::with_authenticator(config, pool?, auth))
    }
}

//! `GET /v1/health`, without authentication: `200` when the function can reach its database
//! (one `SELECT 1`, bounded to two seconds so a load balancer's check never hangs), `503`
//! problem+json (`service_unavailable`) otherwise. Uptime checks and the local stack's readiness
//! wait ask it; it costs one pooled connection's round trip and touches no tenant data.

use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::error::ApiError;

pub const PATH: &str = "/v1/health";

/// The route, for any state the database pool can be taken from.
pub fn routes<S>() -> Router<S>
where
    PgPool: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(PATH, get(health))
}

async fn health(State(pool): State<PgPool>) -> Result<Json<Value>, ApiError> {
    let check = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool);
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(_)) => Ok(Json(json!({"status": "ok", "database": "ok"}))),
        Ok(Err(error)) => {
            tracing::error!(%error, "health check: the database refused");
            Err(ApiError::ServiceUnavailable("The database cannot be reached.".into()))
        }
        Err(_) => {
            tracing::error!("health check: the database did not answer within 2 s");
            Err(ApiError::ServiceUnavailable("The database did not answer in time.".into()))
        }
    }
}

//! `GET /v1/health`, without authentication: `200` when the function can reach its database
//! (one `SELECT 1`, bounded to two seconds so a load balancer's check never hangs), `503`
//! problem+json (`service_unavailable`) otherwise. Uptime checks and the local stack's readiness
//! wait ask it; it costs one pooled connection's round trip and touches no tenant data.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRef, State};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

pub const PATH: &str = "/v1/health";

/// The route, for any state the database pool can be taken from.
pub fn routes<S>() -> OpenApiRouter<S>
where
    PgPool: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` in a 200.
    #[schema(example = "ok")]
    status: &'static str,
    #[schema(example = "ok")]
    database: &'static str,
}

/// The function and its database answer.
#[utoipa::path(get, path = "/v1/health", operation_id = "health", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503)))]
async fn health(State(pool): State<PgPool>) -> Result<Json<Health>, ApiError> {
    let check = sqlx::query_scalar!("SELECT 1").fetch_one(&pool);
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(_)) => Ok(Json(Health { status: "ok", database: "ok" })),
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

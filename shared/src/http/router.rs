use axum::Router;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware::{self, Next};
use sqlx::PgPool;

use crate::app::AppState;
use crate::error::{ApiError, Constraint};
use crate::openapi::{self, OpenApiRouter};

/// Turns a function's routes into the service Lambda (or the local stack) runs: the health check
/// and the OpenAPI document of these routes, problem+json for unknown routes and methods, the
/// body size cap, and the request context.
pub fn finish(routes: OpenApiRouter<AppState>, state: AppState, function: &'static str) -> Router {
    let body_limit = state.config.max_body_bytes;
    finish_with(routes.merge(crate::http::health::routes()), state, function, body_limit)
}

/// `finish` for a function whose state wraps the API's (billing, AI runs): its routes with the
/// health check, under the API's body limit.
pub fn finish_over<S>(routes: OpenApiRouter<S>, state: S, function: &'static str) -> Router
where
    S: Clone + Send + Sync + 'static,
    AppState: FromRef<S>,
    PgPool: FromRef<S>,
{
    let body_limit = AppState::from_ref(&state).config.max_body_bytes;
    finish_with(routes.merge(crate::http::health::routes()), state, function, body_limit)
}

/// `finish` for a function whose state is not the database-backed `AppState`; a function with a
/// database merges `crate::http::health::routes()` into its routes first.
pub fn finish_with<S: Clone + Send + Sync + 'static>(
    routes: OpenApiRouter<S>,
    state: S,
    function: &'static str,
    max_body_bytes: usize,
) -> Router {
    let (routes, mut paths) = routes.split_for_parts();
    paths.merge(openapi::own_route());
    routes
        .merge(openapi::serve(paths, openapi::title(function)))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(crate::http::rate_limit::layer))
        .layer(middleware::from_fn_with_state(function, crate::http::request_context::layer))
        .with_state(state)
}

/// `routes` with `constraints` as what their requests' database errors mean (a function's own
/// table: the common crate names no constraint of a function's tables).
pub fn constrained<S>(routes: OpenApiRouter<S>, constraints: &'static [Constraint]) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.layer(middleware::from_fn(move |request: Request, next: Next| {
        crate::error::with_constraints(constraints, next.run(request))
    }))
}

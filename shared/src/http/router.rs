use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;

use crate::app::AppState;
use crate::error::ApiError;

/// Turns a function's routes into the service Lambda (or the local stack) runs: problem+json for
/// unknown routes and methods, the body size cap, and the request context.
pub fn finish(routes: Router<AppState>, state: AppState, function: &'static str) -> Router {
    let body_limit = state.config.max_body_bytes;
    routes
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(function, crate::http::request_context::layer))
        .with_state(state)
}

//! The `projects` function: projects, and their milestones, deliverables and comments.

mod comments;
mod deliverables;
mod milestones;
mod model;
mod projects;

use axum::Router;
use shared::AppState;
use shared::openapi::OpenApiRouter;

pub const FUNCTION: &str = "projects";

/// Every route this function serves, before the shared layers (the local stack merges these).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(projects::router())
        .merge(milestones::router())
        .merge(deliverables::router())
        .merge(comments::router())
}

/// The service Lambda runs.
/// The function, as Lambda, the local stack and the tests run it.
pub struct Function;

impl shared::runtime::Http for Function {
    const NAME: &'static str = FUNCTION;
    type State = AppState;

    fn app(state: AppState) -> Router {
        shared::http::finish(router(), state, FUNCTION)
    }
}

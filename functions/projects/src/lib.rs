//! The `projects` function: projects, and their milestones, deliverables and comments (with their
//! files).

mod comments;
mod constraints;
mod deliverables;
mod files;
mod milestones;
mod model;
mod projects;

use shared::AppState;
use shared::openapi::OpenApiRouter;

pub const FUNCTION: &str = "projects";

/// Every route this function serves, before the shared layers (the local stack merges these).
pub fn router() -> OpenApiRouter<AppState> {
    shared::http::constrained(
        OpenApiRouter::new()
            .merge(projects::router())
            .merge(milestones::router())
            .merge(deliverables::router())
            .merge(files::router())
            .merge(comments::router()),
        constraints::CONSTRAINTS,
    )
}

// The service Lambda runs.
shared::http_function!(AppState, |state| shared::http::finish(router(), state, FUNCTION));

//! The constraints of the tables this function's routes write, and what breaking each means
//! for the caller (installed for its requests by `shared::http::constrained`).

use shared::ApiError;
use shared::error::Constraint;

pub const CONSTRAINTS: &[Constraint] = &[
    ("ai_runs_idempotency_key", || ApiError::Conflict {
        code: "run_in_progress",
        detail: "A run with this Idempotency-Key is already in progress; retry shortly to get its result.".into(),
    }),
    ("ai_runs_project_fkey", || ApiError::NotFound("project")),
];

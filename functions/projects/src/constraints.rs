//! The constraints of the tables this function's routes write, and what breaking each means
//! for the caller (installed for its requests by `shared::http::constrained`).

use shared::ApiError;
use shared::error::Constraint;

pub const CONSTRAINTS: &[Constraint] = &[
    ("projects_client_fkey", || ApiError::validation("client_id", "no such client in this workspace")),
    ("deliverables_milestone_fkey", || ApiError::validation("milestone_id", "no such milestone in this project")),
    ("milestones_project_fkey", || ApiError::NotFound("project")),
    ("deliverables_project_fkey", || ApiError::NotFound("project")),
    ("comments_project_fkey", || ApiError::NotFound("project")),
    ("files_deliverable_fkey", || ApiError::NotFound("deliverable")),
    ("files_comment_fkey", || ApiError::NotFound("comment")),
    ("plan_limit_storage", || {
        ApiError::PlanLimitReached(
            "The file does not fit in the workspace's storage for its plan; delete files or upgrade the plan.".into(),
        )
    }),
    ("plan_limit_file_size", || {
        ApiError::PlanLimitReached(
            "The file is larger than the plan allows one file to be; upgrade the plan to add it.".into(),
        )
    }),
    ("plan_limit_projects", || {
        ApiError::PlanLimitReached("Your plan's project limit is reached; upgrade the plan to add more.".into())
    }),
];

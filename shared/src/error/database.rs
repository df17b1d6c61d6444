//! Turns database errors the caller caused (a duplicate, a missing parent, a broken rule) into
//! client errors, in one table instead of string matching in handlers.

use super::ApiError;

type Mapper = fn() -> ApiError;

/// Known constraint names and the problem each one means for the caller.
const CONSTRAINTS: &[(&str, Mapper)] = &[
    ("workspace_members_pkey", || ApiError::Conflict {
        code: "already_member",
        detail: "That user is already a member of this workspace.".into(),
    }),
    ("workspace_members_keep_an_owner", || ApiError::Conflict {
        code: "last_owner",
        detail: "A workspace must keep at least one owner; make someone else owner first.".into(),
    }),
    ("client_contacts_pkey", || ApiError::Conflict {
        code: "already_contact",
        detail: "That user is already a contact of this client.".into(),
    }),
    ("projects_client_fkey", || ApiError::validation("client_id", "no such client in this workspace")),
    ("deliverables_milestone_fkey", || ApiError::validation("milestone_id", "no such milestone in this project")),
    ("milestones_project_fkey", || ApiError::NotFound("project")),
    ("deliverables_project_fkey", || ApiError::NotFound("project")),
    ("comments_project_fkey", || ApiError::NotFound("project")),
    ("client_contacts_client_fkey", || ApiError::NotFound("client")),
    ("ai_runs_idempotency_key", || ApiError::Conflict {
        code: "run_in_progress",
        detail: "A run with this Idempotency-Key is already in progress; retry shortly to get its result.".into(),
    }),
    ("ai_runs_project_fkey", || ApiError::NotFound("project")),
    ("invitations_pending_key", || ApiError::Conflict {
        code: "invitation_pending",
        detail: "That address already has a pending invitation here; resend or revoke it.".into(),
    }),
    ("workspace_exports_one_open", || ApiError::Conflict {
        code: "export_in_progress",
        detail: "An export of this workspace is being written; follow it, then ask again if you need another.".into(),
    }),
    ("invitations_client_fkey", || ApiError::NotFound("client")),
    ("plan_limit_projects", || {
        ApiError::PlanLimitReached("Your plan's project limit is reached; upgrade the plan to add more.".into())
    }),
    ("plan_limit_members", || {
        ApiError::PlanLimitReached("Your plan's member limit is reached; upgrade the plan to add more.".into())
    }),
];

const INSUFFICIENT_PRIVILEGE: &str = "42501";
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";
/// A write in a read-only transaction: the request entered a suspended workspace.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";
const QUERY_CANCELED: &str = "57014";
/// Text PostgreSQL cannot store: a NUL character in a query parameter or a field the handler
/// passes through unvalidated.
const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

pub fn classify(error: sqlx::Error) -> ApiError {
    let Some(db) = error.as_database_error() else {
        return match error {
            // A pool that cannot hand out a connection in time is overloaded, not broken.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                ApiError::ServiceUnavailable("The database is busy; retry shortly.".into())
            }
            other => ApiError::Database(other),
        };
    };
    if let Some(name) = db.constraint()
        && let Some((_, mapper)) = CONSTRAINTS.iter().find(|(known, _)| *known == name)
    {
        return mapper();
    }
    match db.code().as_deref() {
        // A row-level security WITH CHECK failure: the caller may see the workspace but not write this.
        Some(INSUFFICIENT_PRIVILEGE) => ApiError::Forbidden("Your role does not allow this change.".into()),
        Some(SERIALIZATION_FAILURE | DEADLOCK_DETECTED) => {
            ApiError::ServiceUnavailable("The request conflicted with a concurrent change; retry it.".into())
        }
        Some(QUERY_CANCELED) => ApiError::ServiceUnavailable("The database took too long; retry shortly.".into()),
        Some(READ_ONLY_SQL_TRANSACTION) => suspended(),
        Some(CHARACTER_NOT_IN_REPERTOIRE) => ApiError::BadRequest {
            code: "invalid_text",
            detail: "The request carries text with a character that cannot be stored (NUL).".into(),
        },
        _ => ApiError::Database(error),
    }
}

/// Refused because the platform's operators suspended the workspace.
pub fn suspended() -> ApiError {
    ApiError::Denied {
        code: "workspace_suspended",
        detail: "This workspace is suspended: it can be read but not changed. Contact support.".into(),
    }
}

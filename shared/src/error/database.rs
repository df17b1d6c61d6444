//! Turns database errors the caller caused (a duplicate, a missing parent, a broken rule) into
//! client errors: by SQLSTATE here, and by constraint name through the table of the function
//! serving the request, instead of string matching in handlers.

use super::ApiError;

/// A constraint a caller can break, by name, and the problem that means for them. Each
/// function declares the constraints of the tables its routes write (`shared::http::constraints`
/// installs them for its requests); the common crate knows none of them.
pub type Constraint = (&'static str, fn() -> ApiError);

tokio::task_local! {
    static CONSTRAINTS: &'static [Constraint];
}

/// Runs `request` with `constraints` as what its database errors mean.
pub async fn with_constraints<F: std::future::Future>(constraints: &'static [Constraint], request: F) -> F::Output {
    CONSTRAINTS.scope(constraints, request).await
}

const INSUFFICIENT_PRIVILEGE: &str = "42501";
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";
/// A write in a read-only transaction: the request entered a suspended workspace.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";
const QUERY_CANCELED: &str = "57014";
/// Text PostgreSQL cannot store: a NUL character in a query parameter or a field the handler
/// passes through unvalidated.
const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

/// SQLSTATEs of a server that is going away or not yet back: shut down by an operator or a
/// failover (57P01), crashed (57P02), starting up or shutting down (57P03), out of connection
/// slots (53300); and the whole class 08, connection exceptions.
const SERVER_GOING_AWAY: [&str; 4] = ["57P01", "57P02", "57P03", "53300"];

/// Whether the connection or the server behind it is gone (a restart, a failover, a network
/// break): the service's own transient condition, not the caller's mistake and not a bug.
pub fn is_connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || SERVER_GOING_AWAY.contains(&code.as_ref()))
        }
        _ => false,
    }
}

pub fn classify(error: sqlx::Error) -> ApiError {
    if is_connection_lost(&error) {
        tracing::warn!(%error, "the database connection was lost");
        return ApiError::ServiceUnavailable(
            "The database is unavailable (restarting or failing over); retry shortly.".into(),
        );
    }
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
        && let Ok(Some(problem)) = CONSTRAINTS
            .try_with(|known| known.iter().find(|(constraint, _)| *constraint == name).map(|(_, problem)| problem()))
    {
        return problem;
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

//! The audit log's tamper evidence: each workspace's entries form a hash chain (written by the
//! database, see the `audit_every_change` migration), and this checks one.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The outcome of checking a workspace's chain from its first entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    /// Entries that verified, in order, before the first broken link (all of them if none).
    pub checked: i64,
    /// The position of the first broken link, if any.
    pub first_broken_seq: Option<i64>,
    /// That entry's id, when it exists (a missing tail has none).
    pub first_broken_id: Option<Uuid>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

impl ChainCheck {
    pub fn is_intact(&self) -> bool {
        self.first_broken_seq.is_none()
    }
}

/// Recomputes the workspace's chain (as a role allowed to read every entry, e.g. `app_service`).
pub async fn verify_chain(pool: &PgPool, workspace_id: Uuid) -> Result<ChainCheck, sqlx::Error> {
    sqlx::query_as!(
        ChainCheck,
        r#"SELECT checked AS "checked!", first_broken_seq, first_broken_id, problem
           FROM app.verify_audit_chain($1)"#,
        workspace_id,
    )
    .fetch_one(pool)
    .await
}

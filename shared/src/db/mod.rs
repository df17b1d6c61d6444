//! The PostgreSQL pool and the only way HTTP handlers reach the database: a transaction that
//! first tells row-level security who the caller is.

pub mod constraints;
#[cfg(feature = "migrations")]
pub mod migrate;

use std::ops::{Deref, DerefMut};

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::auth::Caller;
use crate::config::DatabaseConfig;
use crate::error::ApiError;

/// Builds the pool once per execution environment. A Lambda environment serves one request at
/// a time, so a couple of connections is plenty; idle ones are closed before RDS would drop them
/// while the environment is frozen.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.expose_secret().parse()?;
    let statement_timeout = config.statement_timeout.as_millis().to_string();
    let options = options.application_name("saas-backend").options([("statement_timeout", statement_timeout.as_str())]);
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(std::time::Duration::from_secs(240))
        // A connection idle for a while (a frozen Lambda environment, a database failover) is
        // checked before use; a warm request skips that extra round trip.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > std::time::Duration::from_secs(10) {
                    use sqlx::Connection as _;
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        // Opening the first connection during init shortens the first request.
        .connect_with(options)
        .await
}

/// A transaction scoped to one caller: `app.user_id` is set (transaction-local) before any other
/// statement, and the caller's user row exists. Dropping it without `commit` rolls back.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
}

impl TenantTx {
    /// One round trip: BEGIN, the caller's identity, and their user row (written only when it is
    /// missing or the e-mail changed), sent together as one simple-protocol batch.
    #[tracing::instrument(name = "db.begin", skip_all)]
    pub async fn begin(pool: &PgPool, caller: &Caller) -> Result<Self, ApiError> {
        let tx = pool.begin_with(sqlx::AssertSqlSafe(begin_as(caller))).await?;
        Ok(Self { tx })
    }

    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await.map_err(ApiError::from)
    }
}

/// The statements that open a caller's transaction. The simple protocol takes no bind
/// parameters, so every value is written as a literal that cannot carry SQL: the user id as a
/// UUID (hex digits and dashes), the strings from the token as hex-encoded UTF-8.
fn begin_as(caller: &Caller) -> String {
    let text = |value: &str| format!("convert_from(decode('{}', 'hex'), 'UTF8')", hex(value.as_bytes()));
    let email = caller.email.as_deref().map_or_else(|| "NULL".to_owned(), text);
    format!(
        "BEGIN; SELECT set_config('app.user_id', '{id}', true), app.ensure_user('{id}'::uuid, {issuer}, {subject}, {email})",
        id = caller.user_id.hyphenated(),
        issuer = text(&caller.issuer),
        subject = text(&caller.subject),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_batch_carries_only_a_uuid_and_hex() {
        let caller = Caller::new("https://issuer.example/".into(), "sub'); DROP TABLE users; --".into(), None);
        let sql = begin_as(&caller);
        assert!(!sql.contains("DROP TABLE"), "{sql}");
        assert!(sql.contains(&caller.user_id.hyphenated().to_string()));
        assert!(sql.ends_with("NULL)"), "no e-mail is NULL: {sql}");
        // Everything between the quotes is a UUID or hex digits.
        for (i, literal) in sql.split('\'').enumerate().filter(|(i, _)| i % 2 == 1) {
            assert!(
                literal.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                    || ["app.user_id", "hex", "UTF8"].contains(&literal),
                "literal {i}: {literal}"
            );
        }
    }
}

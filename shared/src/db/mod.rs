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
        .test_before_acquire(true)
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
    #[tracing::instrument(name = "db.begin", skip_all)]
    pub async fn begin(pool: &PgPool, caller: &Caller) -> Result<Self, ApiError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('app.user_id', $1::text, true), app.ensure_user($1, $2, $3, $4)")
            .bind(caller.user_id)
            .bind(&caller.issuer)
            .bind(&caller.subject)
            .bind(caller.email.as_deref())
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx })
    }

    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await.map_err(ApiError::from)
    }
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

//! Applying the migrations, for the local stack, the tests and deployment tooling.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Applies every pending migration as the connected (owner) role.
pub async fn run(owner_pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(owner_pool).await
}

//! Applying the migrations, for the local stack, the tests and deployment tooling.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The first version of the baseline schema, which replaced every migration before it.
const BASELINE: i64 = 20261207120001;

/// Why the migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database holds a migration the baseline squashed away: only development databases
    /// can, since none outside development applied them, and they are recreated rather than
    /// carried across.
    #[error(
        "this database was migrated before the baseline schema (it applied migration {0}, which the \
         baseline of 2026-12-07 replaced): recreate it (scripts/dev.sh --reset for the local one)"
    )]
    BeforeBaseline(i64),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Applies every pending migration as the connected (owner) role.
pub async fn run(owner_pool: &PgPool) -> Result<(), MigrationError> {
    match MIGRATOR.run(owner_pool).await {
        Err(MigrateError::VersionMissing(version)) if version < BASELINE => {
            Err(MigrationError::BeforeBaseline(version))
        }
        outcome => Ok(outcome?),
    }
}

/// What one run of the migrations did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The versions this run applied, oldest first (none when nothing was pending).
    pub applied: Vec<i64>,
    /// The newest version the database has.
    pub latest: Option<i64>,
}

/// As [`run`], answering which versions this run applied (for the deploy's migrate function).
pub async fn run_reporting(owner_pool: &PgPool) -> Result<Report, MigrationError> {
    let before = applied_versions(owner_pool).await?;
    run(owner_pool).await?;
    let after = applied_versions(owner_pool).await?;
    Ok(Report {
        applied: after.iter().copied().filter(|v| !before.contains(v)).collect(),
        latest: after.last().copied(),
    })
}

/// The versions applied so far, through sqlx's own bookkeeping (its table is created if missing,
/// as applying would).
async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, MigrateError> {
    use sqlx::migrate::Migrate as _;
    let mut conn = pool.acquire().await?;
    conn.ensure_migrations_table(&MIGRATOR.table_name).await?;
    let mut versions: Vec<i64> =
        conn.list_applied_migrations(&MIGRATOR.table_name).await?.iter().map(|m| m.version).collect();
    versions.sort_unstable();
    Ok(versions)
}

/// The worker roles, each limited to the tables its worker uses.
pub const WORKER_ROLES: [&str; 9] = [
    "app_billing",
    "app_usage",
    "app_sweeper",
    "app_mailer",
    "app_webhooks",
    "app_fanout",
    "app_admin",
    "app_exporter",
    "app_files",
];

/// Lets the API, service and worker roles log in with a password (the worker roles' password is
/// their name). Local development and tests only: deployments grant these roles to their own
/// login users instead (see docs/operations.md).
pub async fn enable_local_logins(
    owner_pool: &PgPool,
    api_password: &str,
    service_password: &str,
) -> Result<(), sqlx::Error> {
    let workers = WORKER_ROLES.map(|role| (role, role));
    // ALTER ROLE takes no bind parameters; the passwords are quoted as literals by PostgreSQL.
    for (role, password) in [("app_api", api_password), ("app_service", service_password)].into_iter().chain(workers) {
        let quoted: String =
            sqlx::query_scalar!(r#"SELECT quote_literal($1) AS "quoted!""#, password).fetch_one(owner_pool).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER ROLE {role} WITH LOGIN PASSWORD {quoted}")))
            .execute(owner_pool)
            .await?;
    }
    Ok(())
}

/// Creates the database named in `url` if it does not exist, connecting to `postgres` beside it.
pub async fn create_database_if_missing(url: &str) -> Result<(), sqlx::Error> {
    use sqlx::ConnectOptions;
    use sqlx::postgres::PgConnectOptions;
    let options: PgConnectOptions = url.parse()?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, &name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted: String =
            sqlx::query_scalar!(r#"SELECT quote_ident($1) AS "quoted!""#, &name).fetch_one(&mut admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"))).execute(&mut admin).await?;
    }
    Ok(())
}

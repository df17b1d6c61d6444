//! The local stack: every HTTP function's routes on one port, plus the helpers developers need
//! (migrations, a demo workspace, development tokens).

pub mod demo;

use std::collections::HashMap;

use axum::Router;
use shared::AppState;

/// Settings used when the environment does not give them, matching `scripts/dev.sh`.
pub const DEV_DATABASE_URL: &str = "postgres://app_api:app_api@127.0.0.1:5432/saas_dev";
pub const DEV_SERVICE_DATABASE_URL: &str = "postgres://app_service:app_service@127.0.0.1:5432/saas_dev";
pub const DEV_MIGRATION_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/saas_dev";
/// The development HS256 secret. Publicly known: never configure it anywhere but a laptop.
pub const DEV_HS256_SECRET: &str = "local-development-secret-never-use-in-production";

pub fn dev_defaults() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("DATABASE_URL", DEV_DATABASE_URL),
        ("MIGRATION_DATABASE_URL", DEV_MIGRATION_DATABASE_URL),
        ("SERVICE_DATABASE_URL", DEV_SERVICE_DATABASE_URL),
        ("AUTH_HS256_SECRET", DEV_HS256_SECRET),
        ("DB_MAX_CONNECTIONS", "10"),
    ])
}

/// Every HTTP function's routes, merged, behind the same shared layers each function uses.
pub fn app(state: AppState) -> Router {
    shared::http::finish(workspaces::router().merge(projects::router()), state, "local")
}

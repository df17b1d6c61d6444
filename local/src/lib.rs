//! The local stack: every HTTP function's routes on one port, the Stripe webhook feeding the
//! billing worker through a local SQS queue (moto), plus the helpers developers need
//! (migrations, a demo workspace, development tokens, reconciliation).

pub mod ai;
pub mod cors;
pub mod demo;
pub mod events;
pub mod queues;
pub mod realtime;
pub mod stripe;

use std::collections::HashMap;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use shared::AppState;
use shared::billing::BillingState;
use shared::openapi::OpenApiRouter;

/// Settings used when the environment does not give them, matching `scripts/dev.sh`.
pub const DEV_DATABASE_URL: &str = "postgres://app_api:app_api@127.0.0.1:5432/saas_dev";
pub const DEV_SERVICE_DATABASE_URL: &str = "postgres://app_service:app_service@127.0.0.1:5432/saas_dev";
pub const DEV_MIGRATION_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/saas_dev";
/// The development HS256 secret. Publicly known: never configure it anywhere but a laptop.
pub const DEV_HS256_SECRET: &str = "local-development-secret-never-use-in-production";
/// The development webhook signing secret (use `stripe listen`'s own secret with the Stripe CLI).
pub const DEV_WEBHOOK_SECRET: &str = "whsec_local_development";
/// The key the billing functions present to the local Stripe (which accepts any).
pub const LOCAL_STRIPE_KEY: &str = "sk_test_local_stripe";

pub fn dev_defaults() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("DATABASE_URL", DEV_DATABASE_URL),
        ("MIGRATION_DATABASE_URL", DEV_MIGRATION_DATABASE_URL),
        ("SERVICE_DATABASE_URL", DEV_SERVICE_DATABASE_URL),
        ("AUTH_HS256_SECRET", DEV_HS256_SECRET),
        ("STRIPE_WEBHOOK_SECRETS", DEV_WEBHOOK_SECRET),
        ("DB_MAX_CONNECTIONS", "10"),
        // Webhook endpoints may be plain http to this machine (scripts/webhook-receiver.py).
        ("WEBHOOKS_ALLOW_LOOPBACK_HTTP", "true"),
        // The platform operator of local development: `local-stack token --sub demo-operator`.
        ("ADMIN_SUBJECTS", "demo-operator"),
        // Workspace exports go to this bucket in the local S3 (moto).
        ("EXPORTS_BUCKET", "saas-local-exports"),
        // Files on deliverables, in the local S3 too.
        ("FILES_BUCKET", "saas-local-files"),
    ])
}

/// Every HTTP function's routes, merged, behind the same shared layers each function uses. Each
/// function keeps its own state and body limit; billing, AI and the webhook join when configured.
/// `GET /v1/openapi.json` documents the routes served.
pub fn app(
    state: AppState,
    billing: Option<BillingState>,
    webhook: Option<(stripe_webhook::WebhookState, usize)>,
    ai: Option<ai_runs::AiState>,
    admin: Option<admin::AdminState>,
) -> Router {
    let api_limit = state.config.max_body_bytes;
    let mut routes: OpenApiRouter = workspaces::router()
        .merge(projects::router())
        .merge(shared::http::health::routes())
        .with_state(state)
        .layer(DefaultBodyLimit::max(api_limit));
    if let Some(billing) = billing {
        routes = routes.merge(
            checkout::router().merge(portal::router()).with_state(billing).layer(DefaultBodyLimit::max(api_limit)),
        );
    }
    if let Some(ai) = ai {
        routes = routes.merge(ai_runs::router().with_state(ai).layer(DefaultBodyLimit::max(api_limit)));
    }
    if let Some(admin) = admin {
        routes = routes.merge(admin::router().with_state(admin).layer(DefaultBodyLimit::max(api_limit)));
    }
    if let Some((webhook, limit)) = webhook {
        routes = routes.merge(stripe_webhook::router().with_state(webhook).layer(DefaultBodyLimit::max(limit)));
    }
    shared::http::finish_with(routes, (), API_TITLE, usize::MAX)
}

/// The title of the whole API's document (the local stack serves every function's routes).
const API_TITLE: &str = "local";

/// The document of every HTTP function's routes: what `openapi.json` at the repository's root
/// holds, and what the local stack serves with billing, AI, admin and the webhook configured.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut paths = workspaces::router().into_openapi();
    for other in [
        projects::router().into_openapi(),
        shared::http::health::routes::<AppState>().into_openapi(),
        checkout::router().into_openapi(),
        portal::router().into_openapi(),
        ai_runs::router().into_openapi(),
        admin::router().into_openapi(),
        stripe_webhook::router().into_openapi(),
        shared::openapi::own_route(),
    ] {
        paths.merge(other);
    }
    shared::openapi::document(paths, &shared::openapi::title(API_TITLE))
}

//! The `workspaces` function: workspaces, their members, their clients and client contacts, the
//! workspace's billing state (read-only), its audit log, its API keys, invitations, webhook endpoints
//! and data exports.

mod account;
mod activity;
mod ai_overage;
mod api_keys;
mod audit;
mod billing;
mod clients;
mod constraints;
mod contacts;
mod exports;
mod invitations;
mod members;
mod views;
mod webhooks;
mod workspaces;

use shared::AppState;
use shared::openapi::OpenApiRouter;

pub const FUNCTION: &str = "workspaces";

/// Every route this function serves, before the shared layers (the local stack merges these).
pub fn router() -> OpenApiRouter<AppState> {
    shared::http::constrained(
        OpenApiRouter::new()
            .merge(workspaces::router())
            .merge(activity::router())
            .merge(account::router())
            .merge(members::router())
            .merge(clients::router())
            .merge(contacts::router())
            .merge(billing::router())
            .merge(ai_overage::router())
            .merge(audit::router())
            .merge(api_keys::router())
            .merge(invitations::router())
            .merge(webhooks::router())
            .merge(exports::router()),
        constraints::CONSTRAINTS,
    )
}

// The service Lambda runs.
shared::http_function!(AppState, |state| shared::http::finish(router(), state, FUNCTION));

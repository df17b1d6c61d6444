//! The `workspaces` function: workspaces, their members, their clients and client contacts, the
//! workspace's billing state (read-only), its audit log, its API keys and invitations.

mod api_keys;
mod audit;
mod billing;
mod clients;
mod contacts;
mod invitations;
mod members;
mod views;
mod workspaces;

use axum::Router;
use shared::AppState;

pub const FUNCTION: &str = "workspaces";

/// Every route this function serves, before the shared layers (the local stack merges these).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(workspaces::router())
        .merge(members::router())
        .merge(clients::router())
        .merge(contacts::router())
        .merge(billing::router())
        .merge(audit::router())
        .merge(api_keys::router())
        .merge(invitations::router())
}

/// The service Lambda runs.
pub fn app(state: AppState) -> Router {
    shared::http::finish(router(), state, FUNCTION)
}

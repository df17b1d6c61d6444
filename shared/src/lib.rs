//! The common crate every Lambda function links: configuration and secrets, the database pool
//! and the tenant-scoped transaction, authentication, the error type and its problem+json
//! mapping, HTTP plumbing (extractors, pagination, request context), and telemetry.
//!
//! Functions depend on this crate; this crate never depends on a function.

pub mod access;
pub mod activity;
#[cfg(feature = "ai")]
pub mod ai;
pub mod app;
pub mod audit;
pub mod auth;
#[cfg(feature = "stripe")]
pub mod billing;
#[cfg(feature = "billing-sync")]
pub mod billing_sync;
pub mod caller;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
#[cfg(feature = "exports")]
pub mod exports;
#[cfg(feature = "files")]
pub mod files;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod plans;
#[cfg(feature = "queue")]
pub mod queue;
#[cfg(feature = "realtime")]
pub mod realtime;
pub mod role;
pub mod runtime;
pub mod secrets;
#[cfg(feature = "stripe")]
pub mod stripe;
pub mod telemetry;
pub mod validate;
#[cfg(feature = "webhooks")]
pub mod webhooks;

pub use app::AppState;
pub use error::ApiError;

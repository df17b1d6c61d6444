//! HTTP plumbing shared by every function: extractors that answer problem+json, pagination,
//! the per-request context (request id, trace span), and the finishing of a function's router.

pub mod cors;
pub mod extract;
pub mod health;
pub mod pagination;
pub mod rate_limit;
pub mod request_context;
mod router;

pub use router::{constrained, finish, finish_over, finish_with};

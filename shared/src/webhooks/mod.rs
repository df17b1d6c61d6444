//! Outgoing webhooks' building blocks: the event catalog and the URLs an endpoint may name,
//! signing as the Standard Webhooks specification signs, and an HTTP client that only reaches
//! public addresses (no SSRF into the platform's own network, its metadata service or
//! loopback).

pub mod catalog;
pub mod egress;
pub mod signature;

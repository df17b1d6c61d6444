//! Outgoing webhooks' building blocks: signing as the Standard Webhooks specification signs,
//! and an HTTP client that only reaches public addresses (no SSRF into the platform's own
//! network, its metadata service or loopback).

pub mod egress;
pub mod signature;

//! Every integration test file as a module of one test binary (but `metrics.rs`, which installs a
//! process-wide sink and keeps a binary of its own). One binary links once, and the code the
//! files share (the functions, the SDKs, sqlx, axum) is compiled and linked once instead of once
//! per file. Each module still gets a database of its own (`integration_tests::database`).
//!
//! Run one module with `cargo test -p integration-tests --test suite role_matrix::`.

mod activity;
mod admin;
mod admin_billing;
mod ai_overage;
mod ai_runs;
mod api_keys;
mod audit_log;
mod auth;
mod authorizer;
mod bad_input;
mod baseline;
mod bench_statements;
mod billing_flow;
mod billing_worker;
mod browser_cors;
mod checkout_portal;
mod compile_time_sql;
mod cross_tenant;
mod data_lifecycle;
mod database_outage;
mod email_worker;
mod events;
mod exports;
mod features;
mod files;
mod health;
mod identity_edges;
mod invitations;
mod invoices;
mod list_plans;
mod local_ai;
mod local_stripe;
mod migrate_function;
mod module_graph;
mod openapi;
mod overrides;
mod pagination;
mod plan_changes;
mod plan_limits;
mod production_builds;
mod projects_api;
mod rate_leases;
mod realtime;
mod realtime_transport;
mod reconcile;
mod request_cost;
mod rls_raw_sql;
mod rls_schema;
mod role_matrix;
mod seats;
mod secrets_manager;
mod stripe_webhook;
mod subscription_changes;
mod suspension;
mod template;
mod upload_form;
mod usage_billing;
mod webhook_egress;
mod webhooks;
mod workspaces_api;

//! `GET /v1/health`: every HTTP function and the local stack answer it without a token while the
//! database answers, and say 503 (problem+json) within seconds when it does not.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use integration_tests::{TestApp, admin_router, base_settings, respond};
use serde_json::json;
use shared::AppState;
use shared::config::Config;

fn health() -> Request<Body> {
    Request::get("/v1/health").body(Body::empty()).unwrap()
}

#[tokio::test]
async fn every_http_function_answers_without_a_token() {
    let app = TestApp::new().await;
    for function in ["workspaces", "projects", "checkout", "portal", "ai-runs"] {
        let answer = app.send_to(function, health()).await;
        assert_eq!(
            (answer.status, &answer.body),
            (StatusCode::OK, &json!({"status": "ok", "database": "ok"})),
            "{function}"
        );
    }
    let admin = respond(admin_router(base_settings()).await, health()).await;
    assert_eq!(admin.status, StatusCode::OK);
    let local = respond(local_stack::app(app.state.clone(), None, None, None, None), health()).await;
    assert_eq!(local.status, StatusCode::OK);
    // Other methods are not health checks.
    let posted = app.send_to("workspaces", Request::post("/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!(posted.problem(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_is_a_503_within_seconds() {
    let settings = base_settings();
    let config = Config::from_lookup(|name| {
        if name == "DATABASE_URL" {
            // Nothing listens on port 1.
            return Some("postgres://app_api:app_api@127.0.0.1:1/nowhere".into());
        }
        settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy("postgres://app_api:app_api@127.0.0.1:1/nowhere")
        .unwrap();
    let app = TestApp::from_state(AppState::new(config, pool)).await;
    let started = Instant::now();
    let answer = app.send_to("workspaces", health()).await;
    assert_eq!(answer.problem(StatusCode::SERVICE_UNAVAILABLE), "service_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

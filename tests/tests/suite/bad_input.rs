//! Bad input gets a clear problem+json with a stable code, never a 500, and writes nothing.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use integration_tests::{Tenant, TestApp, count, service_pool};
use serde_json::json;

async fn writes(t: &Tenant) -> (i64, i64, i64) {
    let pool = service_pool().await;
    (
        count(&pool, "projects", t.id).await,
        count(&pool, "clients", t.id).await,
        count(&pool, "workspace_members", t.id).await,
    )
}

fn raw(t: &Tenant, path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(format!("{}{path}", t.path()))
        .header(header::AUTHORIZATION, format!("Bearer {}", t.owner.token))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn malformed_oversized_and_mistyped_bodies_are_refused_without_writing() {
    let app = TestApp::new().await;
    let t = app.tenant("bad").await;
    let before = writes(&t).await;
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "truncated JSON",
            raw(&t, "/projects", "application/json", r#"{"name": "x""#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "trailing garbage",
            raw(&t, "/projects", "application/json", r#"{"name": "x"} {}"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        ("not JSON", raw(&t, "/projects", "application/json", "name=x"), StatusCode::BAD_REQUEST, "malformed_json"),
        ("empty body", raw(&t, "/projects", "application/json", ""), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            "form content type",
            raw(&t, "/projects", "application/x-www-form-urlencoded", "name=x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            raw(
                &t,
                "/projects",
                "application/json",
                json!({"name": "x", "description": "y".repeat(20_000)}).to_string(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "array instead of object",
            raw(&t, "/clients", "application/json", "[]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "invalid UTF-8",
            raw(&t, "/clients", "application/json", vec![b'{', b'"', 0xff, b'"', b'}']),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (name, request, status, code) in cases {
        let response = app.send(request).await;
        assert_eq!(response.status, status, "{name}: {}", response.body);
        assert_eq!(response.problem(status), code, "{name}");
    }
    assert_eq!(writes(&t).await, before);
}

#[tokio::test]
async fn invalid_fields_are_all_reported_by_name() {
    let app = TestApp::new().await;
    let t = app.tenant("fields").await;
    let before = writes(&t).await;
    let cases = [
        ("/projects", json!({"name": ""}), vec!["name"]),
        ("/projects", json!({"name": "x".repeat(201)}), vec!["name"]),
        ("/projects", json!({"name": "ok", "status": "done"}), vec!["status"]),
        ("/projects", json!({"name": "ok", "due_date": "31/12/2026"}), vec!["due_date"]),
        ("/projects", json!({"name": "ok", "client_id": "not-a-uuid"}), vec!["client_id"]),
        ("/projects", json!({"name": "ok", "owner": "me"}), vec!["body"]),
        ("/projects", json!({"name": "ok", "client_id": uuid::Uuid::now_v7()}), vec!["client_id"]),
        ("/projects", json!({"name": " ", "description": "\u{7}"}), vec!["name", "description"]),
        ("/clients", json!({"name": "Acme", "email": "not-an-email"}), vec!["email"]),
        ("/clients", json!({"name": 42}), vec!["name"]),
        ("/invitations", json!({"email": "not-an-email", "role": "member"}), vec!["email"]),
        ("/invitations", json!({"email": t.viewer.email, "role": "superuser"}), vec!["role"]),
    ];
    for (path, body, fields) in cases {
        let response = app.post(&t.owner, &format!("{}{path}", t.path()), body.clone()).await;
        assert_eq!(response.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{path} {body}");
        let reported: Vec<&str> =
            response.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        let unknown_field = fields == ["body"];
        if unknown_field {
            assert!(response.body["errors"][0]["message"].as_str().unwrap().contains("unknown field `owner`"));
        } else {
            assert_eq!(reported, fields, "{path} {body}");
        }
    }
    let bad_url = app
        .post(
            &t.owner,
            &format!("{}/deliverables", t.project_path()),
            json!({"title": "x", "url": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(bad_url.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    assert_eq!(writes(&t).await, before);
}

#[tokio::test]
async fn bad_paths_queries_routes_and_methods_are_client_errors() {
    let app = TestApp::new().await;
    let t = app.tenant("paths").await;
    let cases = [
        ("/v1/workspaces/not-a-uuid".to_owned(), StatusCode::BAD_REQUEST, "invalid_path"),
        (format!("{}/projects/123", t.path()), StatusCode::BAD_REQUEST, "invalid_path"),
        (format!("{}/projects?status=nope", t.path()), StatusCode::BAD_REQUEST, "invalid_query"),
        (format!("{}/projects?colour=red", t.path()), StatusCode::BAD_REQUEST, "invalid_query"),
        (format!("{}/projects?limit=abc", t.path()), StatusCode::BAD_REQUEST, "invalid_query"),
        (format!("{}/projects?limit=0", t.path()), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (format!("{}/projects?limit=1000", t.path()), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (format!("{}/projects?cursor=zzz", t.path()), StatusCode::BAD_REQUEST, "invalid_cursor"),
        // A NUL in a filter reaches PostgreSQL, which cannot store it (found by schemathesis).
        (format!("{}/audit-log?actor=a%00b", t.path()), StatusCode::BAD_REQUEST, "invalid_text"),
        ("/v1/nothing-here".to_owned(), StatusCode::NOT_FOUND, "route_not_found"),
        (format!("{}/members/{}", t.path(), t.owner.id), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ];
    for (path, status, code) in cases {
        let response = app.get(&t.owner, &path).await;
        assert_eq!(response.problem(status), code, "GET {path}");
    }
    let patch = app.call(Method::PATCH, &t.project_path(), Some(&t.owner.token), Some(&json!({"name": "x"}))).await;
    assert_eq!(patch.problem(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
}

#[tokio::test]
async fn errors_carry_the_request_id_that_the_response_header_echoes() {
    let app = TestApp::new().await;
    let request =
        Request::get("/v1/workspaces").header("x-request-id", "client-chosen-42").body(Body::empty()).unwrap();
    let response = app.send(request).await;
    assert_eq!(response.body["request_id"], "client-chosen-42");
    assert_eq!(response.headers.get("x-request-id").unwrap(), "client-chosen-42");
    // A request id that could inject into logs is replaced.
    let request = Request::get("/v1/workspaces").header("x-request-id", "a\"b c").body(Body::empty()).unwrap();
    let response = app.send(request).await;
    assert_ne!(response.body["request_id"], "a\"b c");
}

#[tokio::test]
async fn an_unreachable_database_is_a_quick_503_not_a_500_or_a_hang() {
    let mut settings = integration_tests::base_settings();
    settings.push(("DATABASE_URL".into(), "postgres://app_api:app_api@127.0.0.1:1/nowhere".into()));
    settings.push(("DB_ACQUIRE_TIMEOUT_MS".into(), "500".into()));
    let config = shared::config::Config::from_lookup(|name| {
        settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(config.database.acquire_timeout)
        .connect_lazy(&database_url(&config))
        .unwrap();
    let app = TestApp::from_state(shared::AppState::new(config, pool)).await;
    let user = integration_tests::mint("down", None, std::time::Duration::from_secs(60));
    let started = std::time::Instant::now();
    let response = app.call(Method::GET, "/v1/workspaces", Some(&user), None).await;
    assert_eq!(response.problem(StatusCode::SERVICE_UNAVAILABLE), "service_unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

fn database_url(config: &shared::config::Config) -> String {
    use secrecy::ExposeSecret;
    config.database.url.expose_secret().to_owned()
}

//! Entitlement overrides: an operator lifts a workspace's limit above its plan's, exactly, under
//! concurrency, until it expires or is revoked; each grant and revocation audited with the
//! operator.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use integration_tests::{TestApp, base_settings, mint, owner_pool, service_pool, subscribe};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

async fn admin() -> axum::Router {
    let mut settings = base_settings();
    settings.push(("ADMIN_SUBJECTS".into(), "dev-operator".into()));
    integration_tests::admin_router(settings).await
}

async fn call(router: &axum::Router, token: &str, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn in_an_hour() -> String {
    (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn an_override_lifts_a_limit_exactly_under_concurrency_until_it_ends() {
    let app = TestApp::new().await;
    let admin = admin().await;
    let operator = mint("dev-operator", None, Duration::from_secs(600));
    let t = app.tenant("override").await;
    subscribe(t.id, "free", "active").await;
    let projects = format!("{}/projects", t.path());
    let create = || async { app.post(&t.owner, &projects, json!({"name": "More"})).await.status };
    // The free plan's 3 projects (the fixture made 2).
    assert_eq!(create().await, StatusCode::CREATED);
    assert_eq!(create().await, StatusCode::PAYMENT_REQUIRED);

    let overrides = format!("/v1/admin/workspaces/{}/overrides", t.id);
    for (body, field) in [
        (json!({"entitlement": "ai_runs", "value": 9, "expires_at": in_an_hour(), "reason": "Pilot"}), "entitlement"),
        (
            json!({"entitlement": "projects", "value": 9, "expires_at": "2020-01-01T00:00:00Z", "reason": "Pilot"}),
            "expires_at",
        ),
        (json!({"entitlement": "projects", "value": 9, "expires_at": in_an_hour(), "reason": " "}), "reason"),
    ] {
        let (status, problem) = call(&admin, &operator, "POST", &overrides, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let (status, _) = call(
        &admin,
        &t.owner.token,
        "POST",
        &overrides,
        Some(json!({"entitlement": "projects", "value": 99,
        "expires_at": in_an_hour(), "reason": "Please"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a tenant cannot grant itself anything");

    let (status, granted) = call(
        &admin,
        &operator,
        "POST",
        &overrides,
        Some(json!({"entitlement": "projects", "value": 5,
        "expires_at": in_an_hour(), "reason": "Enterprise pilot, signed 2026-11-27"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
    // Six at once against two free places: exactly two get in.
    let results = futures::future::join_all((0..6).map(|_| create())).await;
    assert_eq!(results.iter().filter(|s| **s == StatusCode::CREATED).count(), 2, "{results:?}");
    assert!(results.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::PAYMENT_REQUIRED));
    let count: i64 = integration_tests::count(&service_pool().await, "projects", t.id).await;
    assert_eq!(count, 5);
    let (_, overview) = call(&admin, &operator, "GET", &format!("/v1/admin/workspaces/{}", t.id), None).await;
    assert_eq!(overview["effective_limits"]["projects"], 5);
    assert_eq!(overview["overrides"][0]["reason"], "Enterprise pilot, signed 2026-11-27");

    // Revoked: back to the plan's limit.
    let id = granted["id"].as_str().unwrap();
    let (status, revoked) =
        call(&admin, &operator, "POST", &format!("{overrides}/{id}/revoke"), Some(json!({"reason": "Pilot ended"})))
            .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(create().await, StatusCode::PAYMENT_REQUIRED);

    // Expired: likewise, with nobody revoking it.
    let (_, unlimited) = call(
        &admin,
        &operator,
        "POST",
        &overrides,
        Some(json!({"entitlement": "projects", "value": null,
        "expires_at": in_an_hour(), "reason": "Migration weekend"})),
    )
    .await;
    assert_eq!(create().await, StatusCode::CREATED, "null is unlimited");
    sqlx::query("UPDATE entitlement_overrides SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(unlimited["id"].as_str().unwrap())
        .execute(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(create().await, StatusCode::PAYMENT_REQUIRED);

    // Every grant and revocation is in the workspace's audit log, by the operator.
    let actor = format!("operator:{}|dev-operator", integration_tests::HS256_ISSUER);
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE workspace_id = $1 AND table_name = 'entitlement_overrides' AND actor = $2
         ORDER BY seq",
    )
    .bind(t.id)
    .bind(&actor)
    .fetch_all(&service_pool().await)
    .await
    .unwrap();
    assert_eq!(
        audited,
        ["entitlement_overrides.insert", "entitlement_overrides.update", "entitlement_overrides.insert"]
    );
    let (_, listed) = call(&admin, &operator, "GET", &overrides, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

//! Entitlement overrides: an operator lifts a workspace's limit above its plan's, exactly, under
//! concurrency, until it expires or is revoked; each grant and revocation audited with the
//! operator.

use axum::http::StatusCode;
use integration_tests::{AdminApi, TestApp, grant_override, owner_pool, service_pool, subscribe};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The admin API's answer to `method uri`, as the holder of `token`.
async fn call(admin: &AdminApi, token: &str, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let answer = admin.call(token, method.parse().expect("a method"), uri, body).await;
    (answer.status, answer.body)
}

fn in_an_hour() -> String {
    (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn an_override_lifts_a_limit_exactly_under_concurrency_until_it_ends() {
    let app = TestApp::new().await;
    let admin = AdminApi::new().await;
    let operator = admin.operator.clone();
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

/// Features are granted and withheld, for people, contacts and API keys alike (the access check
/// in the request's first statement, and each route's feature check, see the override).
#[tokio::test]
async fn a_feature_override_grants_or_withholds_the_feature_everywhere_it_is_checked() {
    let app = TestApp::new().await;
    let admin = AdminApi::new().await;
    let operator = admin.operator.clone();
    let t = app.tenant("override-features").await;
    subscribe(t.id, "free", "active").await;
    let keys = format!("{}/api-keys", t.path());
    let key_request = json!({"name": "CI", "role": "member"});
    assert_eq!(
        app.post(&t.owner, &keys, key_request.clone()).await.problem(StatusCode::PAYMENT_REQUIRED),
        "feature_not_in_plan"
    );
    let contact_view = format!("{}/projects", t.path());
    assert_eq!(app.get(&t.contact, &contact_view).await.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
    let webhooks = format!("{}/webhooks", t.path());
    let endpoint = json!({"url": "https://hooks.example.test/in", "events": ["project.created"]});
    assert_eq!(app.post(&t.owner, &webhooks, endpoint.clone()).await.status, StatusCode::PAYMENT_REQUIRED);

    let api_access = grant_override(t.id, "api_access", json!(1)).await;
    grant_override(t.id, "client_portal", json!(1)).await;
    grant_override(t.id, "webhooks", json!(1)).await;
    let key = app.post(&t.owner, &keys, key_request.clone()).await;
    let key = key.expect(StatusCode::CREATED)["key"].as_str().unwrap().to_owned();
    let by_key = app.call(axum::http::Method::GET, &format!("{}/projects", t.path()), Some(&key), None).await;
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.body);
    app.get(&t.contact, &contact_view).await.expect(StatusCode::OK);
    app.post(&t.owner, &webhooks, endpoint.clone()).await.expect(StatusCode::CREATED);
    let billing = app.get(&t.owner, &format!("{}/billing", t.path())).await;
    assert_eq!(billing.body["plan"], "free");
    assert_eq!(billing.body["entitlements"]["features"]["api_access"], true, "{}", billing.body);

    // Revoked: the key stops on its next request, as after a downgrade.
    call(
        &admin,
        &operator,
        "POST",
        &format!("/v1/admin/workspaces/{}/overrides/{}/revoke", t.id, api_access["id"].as_str().unwrap()),
        Some(json!({"reason": "Pilot over"})),
    )
    .await;
    let by_key = app.call(axum::http::Method::GET, &format!("{}/projects", t.path()), Some(&key), None).await;
    assert_eq!(by_key.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");

    // Withheld: a Studio workspace without webhooks.
    let studio = app.tenant("override-withheld").await;
    grant_override(studio.id, "webhooks", json!(0)).await;
    let refused = app.post(&studio.owner, &format!("{}/webhooks", studio.path()), endpoint).await;
    assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");

    for (entitlement, value) in [
        ("api_access", json!(2)),
        ("webhooks", json!(null)),
        ("ai_runs_per_month", json!(null)),
        ("requests_per_minute", json!(0)),
    ] {
        let (status, problem) = call(
            &admin,
            &operator,
            "POST",
            &format!("/v1/admin/workspaces/{}/overrides", t.id),
            Some(json!({"entitlement": entitlement, "value": value, "expires_at": in_an_hour(), "reason": "Pilot"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{entitlement} = {value}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "value");
    }
}

/// The AI allowance and the rate limits follow their overrides exactly.
#[tokio::test]
async fn ai_allowance_and_rate_limit_overrides_hold_exactly() {
    let app = TestApp::new().await;
    let t = app.tenant("override-ai").await;
    subscribe(t.id, "free", "active").await;
    grant_override(t.id, "ai_tools", json!(1)).await;
    grant_override(t.id, "ai_runs_per_month", json!(2)).await;
    let runs = format!("{}/ai/runs", t.path());
    let run = json!({"tool": "proposal_draft", "input": {"brief": "A site"}});
    for _ in 0..2 {
        app.post(&t.owner, &runs, run.clone()).await.expect(StatusCode::CREATED);
    }
    assert_eq!(app.post(&t.owner, &runs, run).await.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");

    let limited = app.tenant("override-rate").await;
    grant_override(limited.id, "requests_per_minute", json!(3)).await;
    // A fresh minute: the fixture's own requests spent some of the plan's budget.
    sqlx::query("DELETE FROM rate_limit_buckets WHERE bucket = $1")
        .bind(format!("workspace:{}", limited.id))
        .execute(&owner_pool().await)
        .await
        .unwrap();
    // A changed limit applies from an instance's next lease; this one has none yet (the
    // fixture's instance still spends tokens leased at the plan's rate for a few seconds).
    let instance = TestApp::new().await;
    let path = format!("{}/projects", limited.path());
    let answers = [
        instance.get(&limited.owner, &path).await,
        instance.get(&limited.owner, &path).await,
        instance.get(&limited.owner, &path).await,
        instance.get(&limited.owner, &path).await,
    ];
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(answers[3].problem(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
    let policy = answers[0].headers.get("ratelimit-policy").unwrap().to_str().unwrap();
    assert!(policy.contains("q=3"), "{policy}");
}

/// The request budgets' overrides reach the limiter's several-bucket path too: a key's request
/// (its workspace's budget and its own, which is at most the workspace's) and an expensive route
/// (the expensive budget, all or nothing with the workspace's).
#[tokio::test]
async fn budget_overrides_hold_for_keys_and_expensive_routes() {
    let app = TestApp::new().await;
    let t = app.tenant("override-budgets").await;
    let key = app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "CI", "role": "member"})).await;
    let key = key.expect(StatusCode::CREATED)["key"].as_str().unwrap().to_owned();
    grant_override(t.id, "requests_per_minute", json!(5)).await;
    grant_override(t.id, "expensive_per_minute", json!(2)).await;
    let fresh_minute = || async {
        sqlx::query("DELETE FROM rate_limit_buckets WHERE bucket LIKE '%' || $1")
            .bind(t.id.to_string())
            .execute(&owner_pool().await)
            .await
            .unwrap();
    };

    fresh_minute().await;
    let by_key = app.call(axum::http::Method::GET, &format!("{}/projects", t.path()), Some(&key), None).await;
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.body);
    let policy = by_key.headers["ratelimit-policy"].to_str().unwrap();
    assert!(policy.contains("\"workspace\";q=5;w=60") && policy.contains("\"api_key\";q=5;w=60"), "{policy}");

    fresh_minute().await;
    let runs = format!("{}/ai/runs", t.path());
    let run = json!({"tool": "proposal_draft", "input": {"brief": "A site"}});
    let first = app.post(&t.member, &runs, run.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let policy = first.headers["ratelimit-policy"].to_str().unwrap();
    assert!(policy.contains("\"expensive\";q=2;w=60") && policy.contains("\"workspace\";q=5;w=60"), "{policy}");
    app.post(&t.member, &runs, run.clone()).await.expect(StatusCode::CREATED);
    assert_eq!(app.post(&t.member, &runs, run).await.problem(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
    // The refused run spent nothing: the workspace's budget still has its three requests.
    let path = format!("{}/projects", t.path());
    for _ in 0..3 {
        app.get(&t.member, &path).await.expect(StatusCode::OK);
    }
    assert_eq!(app.get(&t.member, &path).await.problem(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
}

/// A person's requests go through the limiter's one-bucket path (no key, a standard route):
/// N + k of them at once at a limit of N let exactly N through, including the request that
/// creates the bucket; the others are 429 with Retry-After and the bucket's state.
#[tokio::test]
async fn a_workspace_limit_holds_exactly_under_concurrency_for_people() {
    let app = TestApp::new().await;
    let limited = app.tenant("override-rate-burst").await;
    grant_override(limited.id, "requests_per_minute", json!(4)).await;
    // A changed limit applies from an instance's next lease; this one has none yet.
    let app = TestApp::new().await;
    for round in 0..2 {
        // A fresh minute, and in the first round no bucket at all: the first requests create it.
        sqlx::query("DELETE FROM rate_limit_buckets WHERE bucket = $1")
            .bind(format!("workspace:{}", limited.id))
            .execute(&owner_pool().await)
            .await
            .unwrap();
        let path = format!("{}/projects", limited.path());
        let callers = [&limited.owner, &limited.member, &limited.owner, &limited.member];
        let calls = (0..10).map(|i| app.get(callers[i % callers.len()], &path));
        let answers = futures::future::join_all(calls).await;
        let passed = answers.iter().filter(|a| a.status == StatusCode::OK).count();
        let refused: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
        assert_eq!(
            (passed, refused.len()),
            (4, 6),
            "round {round}: {:?}",
            answers.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        for answer in &refused {
            assert_eq!(answer.problem(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
            let retry: u32 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
            // At most one emission interval (15 s at 4 a minute), rounded up: a refused request's
            // clock is its transaction's start, which may precede the admitted ones' by a
            // fraction of a second, so 15 s and a fraction answers 16.
            assert!((1..=16).contains(&retry), "{retry}");
            let state = answer.headers["ratelimit"].to_str().unwrap();
            assert!(state.starts_with("\"workspace\";r=0;t="), "{state}");
        }
        for answer in &answers {
            assert_eq!(answer.headers["ratelimit-policy"], "\"workspace\";q=4;w=60", "{:?}", answer.headers);
        }
    }
}

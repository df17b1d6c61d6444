//! API keys as principals: each role gets exactly what a member of that role gets, nothing in
//! another workspace; malformed, unknown, revoked and expired keys are refused with their own
//! codes; API access follows the plan; and rate limits hold exactly under concurrency.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use integration_tests::routes::{Ctx, rows};
use integration_tests::{TestApp, TestUser, count, owner_pool, service_pool, subscribe};
use serde_json::json;
use sha2::Digest;
use uuid::Uuid;

/// A key made by the tenant's owner, as a caller the test helpers can use.
async fn key(app: &TestApp, owner: &TestUser, workspace: Uuid, body: serde_json::Value) -> (Uuid, TestUser) {
    let created = app.post(owner, &format!("/v1/workspaces/{workspace}/api-keys"), body).await;
    let key = TestUser::api_key(&created);
    (key.id, key)
}

const KEY_ROLES: [(&str, usize); 3] = [("admin", 1), ("member", 2), ("viewer", 3)];

/// Where a key is not a member of its role, by design: it cannot create a workspace (it acts
/// inside its own only), has no membership to leave (it is revoked instead), cannot accept an
/// invitation (a person does), has no account to delete, and cannot create keys (people issue
/// them, so none outlives the authority of the one that made it).
fn differs_for_keys(method: &Method, pattern: &str) -> Option<u16> {
    match (method.as_str(), pattern) {
        ("POST", "/v1/workspaces") | ("POST", "/v1/invitations/accept") | ("DELETE", "/v1/me") => Some(403),
        ("POST", "/v1/workspaces/{workspace_id}/api-keys") => Some(403),
        ("DELETE", "/v1/workspaces/{workspace_id}/members/{user_id}") => Some(403),
        _ => None,
    }
}

/// The whole role matrix, called with a key of each role instead of a person: the same answers
/// as the matrix gives a member of that role.
#[tokio::test]
async fn a_key_of_each_role_gets_what_a_member_of_that_role_gets() {
    let app = TestApp::new().await;
    let mut mismatches = Vec::new();
    for (role, column) in KEY_ROLES {
        let shared_ctx = Ctx::new(&app, &format!("key-{role}")).await;
        let shared_key =
            key(&app, &shared_ctx.tenant.owner, shared_ctx.tenant.id, json!({"name": role, "role": role})).await.1;
        for row in rows() {
            let fresh;
            let (ctx, caller) = if row.fresh {
                let ctx = Ctx::new(&app, &format!("key-{role}")).await;
                let caller = key(&app, &ctx.tenant.owner, ctx.tenant.id, json!({"name": role, "role": role})).await.1;
                fresh = (ctx, caller);
                (&fresh.0, &fresh.1)
            } else {
                (&shared_ctx, &shared_key)
            };
            let (method, path, body) = (row.request)(ctx);
            let response = app.call(method.clone(), &path, Some(&caller.token), body.as_ref()).await;
            let leaving = row.expect[column] == 204 && column == 3;
            let expected = match differs_for_keys(&method, row.pattern) {
                Some(status) if !row.pattern.contains("/members/") || leaving => status,
                _ => row.expect[column],
            };
            if response.status.as_u16() != expected {
                mismatches.push(format!(
                    "{role:>6} key {method} {} -> {} (a {role} gets {}) {}",
                    row.pattern, response.status, row.expect[column], response.body
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "keys differ from members of their role:\n{}", mismatches.join("\n"));
}

/// Every route of another workspace answers a key as it answers an outsider: 404.
#[tokio::test]
async fn a_key_reaches_nothing_in_another_workspace() {
    let app = TestApp::new().await;
    let home = app.tenant("key-home").await;
    let (_, admin_key) = key(&app, &home.owner, home.id, json!({"name": "admin", "role": "admin"})).await;
    let other = Ctx::new(&app, "key-other").await;
    let before = integration_tests::count(&service_pool().await, "projects", other.tenant.id).await;
    for row in rows().into_iter().filter(|row| row.pattern.contains("{workspace_id}")) {
        let (method, path, body) = (row.request)(&other);
        let response = app.call(method.clone(), &path, Some(&admin_key.token), body.as_ref()).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {}: {}", row.pattern, response.body);
    }
    assert_eq!(integration_tests::count(&service_pool().await, "projects", other.tenant.id).await, before);
    // Its own workspace is the only one it lists, and it cannot make another.
    let listed = app.get(&admin_key, "/v1/workspaces").await;
    let ids: Vec<_> = listed.body["items"].as_array().unwrap().iter().map(|w| w["id"].clone()).collect();
    assert!(ids.iter().all(|id| *id == json!(home.id)), "{}", listed.body);
    let created = app.post(&admin_key, "/v1/workspaces", json!({"name": "Key's own"})).await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{}", created.body);
}

#[tokio::test]
async fn malformed_unknown_revoked_and_expired_keys_are_refused_each_with_its_code() {
    let app = TestApp::new().await;
    let t = app.tenant("key-states").await;
    let projects = format!("{}/projects", t.path());
    let (id, good) = key(&app, &t.owner, t.id, json!({"name": "good", "role": "member"})).await;
    assert_eq!(app.get(&good, &projects).await.status, StatusCode::OK);
    // The same key in the X-Api-Key header.
    let request = Request::builder().uri(&projects).header("x-api-key", &good.token).body(Body::empty()).unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::OK);

    let refused = |token: String| {
        let app = &app;
        let projects = projects.clone();
        async move {
            let response = app.call(Method::GET, &projects, Some(&token), None).await;
            (response.status, response.problem(StatusCode::UNAUTHORIZED).to_owned())
        }
    };
    let mut typo = good.token.clone().into_bytes();
    typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
    let cases = [
        (String::from_utf8(typo).unwrap(), "api_key_malformed"),
        (good.token[..good.token.len() - 1].to_owned(), "api_key_malformed"),
        ("sak_not-a-key".to_owned(), "api_key_malformed"),
        (shared::auth::api_key::generate().unwrap().text, "api_key_unknown"),
    ];
    for (token, code) in cases {
        assert_eq!(refused(token.clone()).await, (StatusCode::UNAUTHORIZED, code.to_owned()), "{token}");
    }
    // The right id with another secret is unknown too (nothing tells the two apart).
    let mut forged = shared::auth::api_key::generate().unwrap().text;
    forged.replace_range(4..26, &good.token[4..26]);
    let reparsed = shared::auth::api_key::parse(&forged);
    assert!(reparsed.is_err(), "a forged key fails its checksum before any lookup");

    let (expiring, expiring_key) = key(&app, &t.owner, t.id, json!({"name": "soon", "role": "member"})).await;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expiring)
        .execute(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(refused(expiring_key.token).await.1, "api_key_expired");

    app.delete(&t.owner, &format!("{}/api-keys/{id}", t.path())).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(refused(good.token.clone()).await.1, "api_key_revoked");
    app.delete(&t.owner, &format!("{}/api-keys/{id}", t.path())).await.expect(StatusCode::NO_CONTENT);

    // Only the hash is stored, and the list shows the display prefix, never the key.
    let (hash, prefix): (Vec<u8>, String) =
        sqlx::query_as("SELECT secret_hash, display_prefix FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&owner_pool().await)
            .await
            .unwrap();
    assert_eq!(hash, sha2::Sha256::digest(good.token.as_bytes()).to_vec());
    assert_eq!(prefix, good.token[..12]);
    let listed = app.get(&t.owner, &format!("{}/api-keys", t.path())).await;
    let text = listed.body.to_string();
    assert!(!text.contains(&good.token[12..]) && !text.contains("secret_hash"), "{text}");
    assert!(listed.body["items"].as_array().unwrap().iter().all(|k| k["id"] != json!(id)), "revoked keys are gone");
}

#[tokio::test]
async fn api_access_follows_the_plan_even_for_existing_keys() {
    let app = TestApp::new().await;
    let t = app.tenant("key-plan").await;
    let (_, existing) = key(&app, &t.owner, t.id, json!({"name": "before", "role": "member"})).await;
    subscribe(t.id, "pro", "active").await;
    let used = app.get(&existing, &format!("{}/projects", t.path())).await;
    assert_eq!(used.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
    let create =
        app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "after", "role": "member"})).await;
    assert_eq!(create.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
    subscribe(t.id, "studio", "active").await;
    assert_eq!(app.get(&existing, &format!("{}/projects", t.path())).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_key_requests_are_refused_before_anything_is_written() {
    let app = TestApp::new().await;
    let t = app.tenant("key-input").await;
    let path = format!("{}/api-keys", t.path());
    for (body, field) in [
        (json!({"name": "x", "role": "owner"}), "role"),
        (json!({"name": " ", "role": "member"}), "name"),
        (json!({"name": "x", "role": "member", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"name": "x", "role": "member", "requests_per_minute": 0}), "requests_per_minute"),
        (json!({"name": "x", "role": "member", "requests_per_minute": 1_000_000}), "requests_per_minute"),
    ] {
        let refused = app.post(&t.owner, &path, body.clone()).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{body}");
        assert_eq!(refused.body["errors"][0]["field"], field, "{body}");
    }
    let unknown_role = app.post(&t.owner, &path, json!({"name": "x", "role": "root"})).await;
    assert!(unknown_role.status.is_client_error());
    assert_eq!(count(&owner_pool().await, "api_keys", t.id).await, 0);
}

/// What a key does is audited as the key, and it names the key where a person would be named.
#[tokio::test]
async fn a_keys_changes_are_audited_as_the_key() {
    let app = TestApp::new().await;
    let t = app.tenant("key-audit").await;
    let (id, member_key) = key(&app, &t.owner, t.id, json!({"name": "ci", "role": "member"})).await;
    let created = app.post(&member_key, &format!("{}/projects", t.path()), json!({"name": "By a key"})).await;
    let body = created.expect(StatusCode::CREATED);
    assert_eq!(body["created_by"], json!(id));
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE workspace_id = $1 AND action = 'projects.insert' ORDER BY seq DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!(actor, format!("api_key:{id}"));
    let key_created: (String, serde_json::Value) = sqlx::query_as(
        "SELECT actor, changes FROM audit_log WHERE workspace_id = $1 AND action = 'api_keys.insert' ORDER BY seq DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!(key_created.0, format!("user:{}", t.owner.id));
    assert!(key_created.1.get("secret_hash").is_none(), "{}", key_created.1);
}

/// N + k requests at once at a limit of N: exactly N pass; the others are 429 problem+json with
/// Retry-After and write nothing; every answer carries the RateLimit fields.
#[tokio::test]
async fn rate_limits_hold_exactly_under_concurrency_and_a_refusal_writes_nothing() {
    let app = TestApp::new().await;
    let t = app.tenant("key-limits").await;
    let (_, limited) =
        key(&app, &t.owner, t.id, json!({"name": "limited", "role": "member", "requests_per_minute": 5})).await;
    let before = count(&service_pool().await, "projects", t.id).await;
    let path = format!("{}/projects", t.path());
    let calls = (0..8).map(|i| app.post(&limited, &path, json!({"name": format!("Burst {i}")})));
    let responses = futures::future::join_all(calls).await;
    let created = responses.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let limited_out: Vec<_> = responses.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((created, limited_out.len()), (5, 3), "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(count(&service_pool().await, "projects", t.id).await, before + 5, "a refused request wrote");
    for refused in &limited_out {
        assert_eq!(refused.problem(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
        let retry: u32 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    for response in &responses {
        assert!(response.headers.contains_key("ratelimit-policy"), "{} {:?}", response.status, response.headers);
        let policy = response.headers["ratelimit-policy"].to_str().unwrap();
        assert!(policy.contains("\"workspace\";q=6000;w=60") && policy.contains("\"api_key\";q=5;w=60"), "{policy}");
        assert!(
            response.headers["ratelimit"].to_str().unwrap().starts_with("\"api_key\";r="),
            "{:?}",
            response.headers
        );
    }
    // A person in the same workspace is not held back by the key's own limit.
    let person = app.get(&t.member, &path).await;
    person.expect(StatusCode::OK);
    let state = person.headers["ratelimit"].to_str().unwrap();
    assert!(state.starts_with("\"workspace\";r=") && person.headers.get("retry-after").is_none(), "{state}");
    // Outside any workspace a person counts against their own limit (the free plan's rate), and
    // a key against its workspace's and its own.
    let own = app.get(&t.member, "/v1/workspaces").await;
    assert_eq!(own.headers["ratelimit-policy"], "\"user\";q=300;w=60", "{:?}", own.headers);
    let key_outside = app.get(&limited, "/v1/workspaces").await;
    assert!(
        key_outside.headers.get("ratelimit-policy").is_some_and(|p| p.to_str().unwrap().contains("\"api_key\";q=5"))
    );
    // An expensive route also counts against the plan's smaller budget for those.
    let run = app
        .post(
            &t.member,
            &format!("{}/ai/runs", t.path()),
            json!({"tool": "proposal_draft", "input": {"brief": "A site"}}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.body);
    assert!(
        run.headers["ratelimit-policy"].to_str().unwrap().contains("\"expensive\";q=300;w=60"),
        "{:?}",
        run.headers
    );
}

/// A stranger's requests do not spend a workspace's budget, nor learn its limits.
#[tokio::test]
async fn only_the_workspaces_own_callers_count_against_its_limit() {
    let app = TestApp::new().await;
    let t = app.tenant("key-stranger").await;
    let stranger = app.user("stranger").await;
    let tat = || async {
        sqlx::query_scalar::<_, time::OffsetDateTime>(
            "SELECT tat FROM rate_limit_buckets WHERE bucket = 'workspace:' || $1",
        )
        .bind(t.id.to_string())
        .fetch_one(&owner_pool().await)
        .await
        .unwrap()
    };
    let before = tat().await;
    for _ in 0..3 {
        let answer = app.get(&stranger, &format!("{}/projects", t.path())).await;
        answer.expect(StatusCode::NOT_FOUND);
        assert!(answer.headers.get("ratelimit").is_none(), "a stranger learns nothing of the workspace's limits");
    }
    assert_eq!(tat().await, before, "a stranger's requests were counted");
    app.get(&t.member, &format!("{}/projects", t.path())).await.expect(StatusCode::OK);
    assert!(tat().await > before, "a member's request is counted");
}

/// By raw SQL the API role can neither mint a key (nor its user row), nor move a rate limit
/// bucket, nor write the audit log: keys come only from `app.create_api_key` (owners and admins
/// of the entered workspace), buckets only from `app.lease_rate_limit`. And nobody logs in as the
/// audit writer.
#[tokio::test]
async fn the_api_role_cannot_mint_keys_move_buckets_or_write_the_log_by_sql() {
    let app = TestApp::new().await;
    let t = app.tenant("key-sql").await;
    let pool = integration_tests::api_pool().await;
    let caller = shared::auth::Caller::new(
        integration_tests::HS256_ISSUER.to_owned(),
        t.owner.subject.clone(),
        Some(t.owner.email.clone()),
    );
    let statements = [
        "INSERT INTO api_keys (id, workspace_id, name, role, display_prefix, secret_hash)
         VALUES (gen_random_uuid(), $1, 'forged', 'admin', 'sak_forged', '\\x00')",
        "UPDATE api_keys SET role = 'admin', secret_hash = '\\x00' WHERE workspace_id = $1",
        "INSERT INTO rate_limit_buckets (bucket, tat) VALUES ('workspace:' || $1, '-infinity')",
        "UPDATE rate_limit_buckets SET tat = '-infinity' WHERE bucket = 'workspace:' || $1",
        "INSERT INTO audit_log (workspace_id, actor, action) VALUES ($1, 'forged', 'forged')",
    ];
    for statement in statements {
        let (mut tx, _) = shared::db::TenantTx::enter(
            &pool,
            &shared::db::RateLimiter::default(),
            &caller,
            t.id,
            None,
            shared::db::Cost::Standard,
        )
        .await
        .unwrap();
        match sqlx::query(statement).bind(t.id).execute(&mut *tx).await {
            Err(sqlx::Error::Database(db)) => assert_eq!(db.code().as_deref(), Some("42501"), "{statement}: {db}"),
            other => panic!("{statement}: expected a refusal, got {other:?}"),
        }
    }
    // A viewer (not an owner or admin) cannot mint one through the function either.
    let viewer = shared::auth::Caller::new(
        integration_tests::HS256_ISSUER.to_owned(),
        t.viewer.subject.clone(),
        Some(t.viewer.email.clone()),
    );
    let (mut tx, _) = shared::db::TenantTx::enter(
        &pool,
        &shared::db::RateLimiter::default(),
        &viewer,
        t.id,
        None,
        shared::db::Cost::Standard,
    )
    .await
    .unwrap();
    let minted =
        sqlx::query("SELECT app.create_api_key(gen_random_uuid(), $1, 'x', 'admin', 'sak_x', '\\x01', NULL, NULL)")
            .bind(t.id)
            .execute(&mut *tx)
            .await;
    assert!(
        matches!(minted, Err(sqlx::Error::Database(ref db)) if db.code().as_deref() == Some("42501")),
        "{minted:?}"
    );
    let audit_members: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_auth_members WHERE roleid = 'app_audit'::regrole")
            .fetch_one(&owner_pool().await)
            .await
            .unwrap();
    let can_login: bool = sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_audit'")
        .fetch_one(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!((audit_members, can_login), (0, false), "nobody acts as the audit writer but its triggers");
}

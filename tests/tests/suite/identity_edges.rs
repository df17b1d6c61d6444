//! How callers are recognised and matched, tried as an attacker would: claims that cannot be
//! stored, an address claimed in another case by another subject, keys that outlive their
//! creator's rights, a contact who spends the team's budget or still sees a workspace whose plan
//! lost the portal.

use axum::http::StatusCode;
use integration_tests::{TestApp, TestUser, owner_pool, subscribe};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

fn signed_in(subject: &str, email: Option<&str>) -> TestUser {
    TestUser::signed_in(subject, email)
}

/// Characters that do not compress: hex of fresh UUIDs.
fn random_text(chars: usize) -> String {
    let mut text = String::new();
    while text.len() < chars {
        text.push_str(&Uuid::new_v4().simple().to_string());
    }
    text.truncate(chars);
    text
}

async fn users(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await.unwrap()
}

/// A bucket's state (its theoretical arrival time, as text), if it exists.
async fn bucket(pool: &PgPool, name: String) -> Option<String> {
    sqlx::query_scalar("SELECT tat::text FROM rate_limit_buckets WHERE bucket = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn claims_that_cannot_be_stored_are_refused_with_401_before_any_database_work() {
    let app = TestApp::new().await;
    let owner = owner_pool().await;
    let before = users(&owner).await;
    let long_email = format!("{}@corp.test", random_text(100_000));
    let cases: Vec<(&str, TestUser)> = vec![
        ("a sub of 100,000 random characters", signed_in(&random_text(100_000), Some("a@corp.test"))),
        ("a sub of 3,000 random characters", signed_in(&random_text(3_000), Some("b@corp.test"))),
        ("a sub of 100,000 repeated characters", signed_in(&"a".repeat(100_000), Some("c@corp.test"))),
        ("a sub of 256 characters", signed_in(&"s".repeat(256), None)),
        ("an email of 100,000 random characters", signed_in("long-email", Some(&long_email))),
        ("a NUL in sub", signed_in("nul\u{0}sub", None)),
        ("a NUL in email", signed_in("nul-email", Some("nul\u{0}@corp.test"))),
        ("a line break in sub", signed_in("line\nbreak", None)),
    ];
    for (case, user) in &cases {
        let listed = app.get(user, "/v1/workspaces").await;
        assert_eq!(listed.problem(StatusCode::UNAUTHORIZED), "unauthenticated", "{case}: GET /v1/workspaces");
        let created = app.post(user, "/v1/workspaces", json!({"name": "Mine"})).await;
        assert_eq!(created.problem(StatusCode::UNAUTHORIZED), "unauthenticated", "{case}: POST /v1/workspaces");
    }
    assert_eq!(users(&owner).await, before, "no refused token became a user");
    // The longest subject and address the standards allow are stored.
    let longest = signed_in(&"s".repeat(255), Some(&format!("{}@corp.test", "e".repeat(244))));
    app.get(&longest, "/v1/workspaces").await.expect(StatusCode::OK);
    assert_eq!(users(&owner).await, before + 1);
}

#[tokio::test]
async fn an_address_claimed_in_another_case_by_another_subject_never_receives_the_membership() {
    let app = TestApp::new().await;
    let t = app.tenant("lookalike").await;
    let domain = format!("corp-{}.test", Uuid::new_v4().simple());
    let (victim_address, squatted) = (format!("victim@{domain}"), format!("VICTIM@{}", domain.to_uppercase()));
    // The attacker signs in first with the victim's address in capitals; then the victim.
    let squatter = signed_in(&format!("squatter-{}", Uuid::new_v4().simple()), Some(&squatted));
    app.get(&squatter, "/v1/workspaces").await.expect(StatusCode::OK);
    let victim = signed_in(&format!("victim-{}", Uuid::new_v4().simple()), Some(&victim_address));
    app.get(&victim, "/v1/workspaces").await.expect(StatusCode::OK);

    // No route binds an account by its address: adding a member by e-mail does not exist.
    let members = format!("{}/members", t.path());
    let direct = app.post(&t.owner, &members, json!({"email": victim_address, "role": "admin"})).await;
    assert_eq!(direct.problem(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
    // An invitation answers the same whether or not the address has an account.
    let invitations = format!("{}/invitations", t.path());
    let invited = app.post(&t.owner, &invitations, json!({"email": victim_address, "role": "admin"})).await;
    let nobody = app.post(&t.owner, &invitations, json!({"email": format!("nobody@{domain}"), "role": "admin"})).await;
    let shape = |body: &serde_json::Value| {
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(shape(invited.expect(StatusCode::CREATED)), shape(nobody.expect(StatusCode::CREATED)));
    assert!(invited.body.get("user_id").is_none(), "{}", invited.body);

    // Even holding the token, the look-alike account cannot take the invitation.
    let token = integration_tests::invitation_token(invited.id()).await;
    let taken = app.post(&squatter, "/v1/invitations/accept", json!({"token": token})).await;
    assert_eq!(taken.problem(StatusCode::FORBIDDEN), "invitation_email_mismatch");
    assert_eq!(app.get(&squatter, &t.path()).await.problem(StatusCode::NOT_FOUND), "not_found");
    // The victim accepts and is the admin; the squatter is nobody here.
    app.post(&victim, "/v1/invitations/accept", json!({"token": token})).await.expect(StatusCode::OK);
    assert_eq!(app.get(&victim, &t.path()).await.expect(StatusCode::OK)["role"], "admin");
    let listed = app.get(&t.owner, &format!("{members}?limit=100")).await;
    let ids: Vec<&str> = listed.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&victim.id.to_string().as_str()) && !ids.contains(&squatter.id.to_string().as_str()));
}

#[tokio::test]
async fn a_key_works_only_while_its_creator_holds_its_role_and_keys_cannot_mint_keys() {
    let app = TestApp::new().await;
    let t = app.tenant("key-creator").await;
    let keys = format!("{}/api-keys", t.path());
    let created = app.post(&t.admin, &keys, json!({"name": "Admin's", "role": "admin"})).await;
    let key = TestUser::api_key(&created);
    let projects = format!("{}/projects", t.path());
    app.get(&key, &projects).await.expect(StatusCode::OK);
    // A key cannot mint a key that would outlive it.
    let minted = app.post(&key, &keys, json!({"name": "Child", "role": "viewer"})).await;
    assert_eq!(minted.problem(StatusCode::FORBIDDEN), "api_key_cannot_create_keys");

    // The owner removes the admin: the key stops at once, and cannot restore its creator.
    app.delete(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id)).await.expect(StatusCode::NO_CONTENT);
    let pool = owner_pool().await;
    let spent = bucket(&pool, format!("api_key:{}", key.id)).await;
    let refused = app.get(&key, &projects).await;
    assert_eq!(refused.problem(StatusCode::UNAUTHORIZED), "api_key_creator_lacks_role");
    let restore =
        app.post(&key, &format!("{}/invitations", t.path()), json!({"email": t.admin.email, "role": "admin"})).await;
    assert_eq!(restore.problem(StatusCode::UNAUTHORIZED), "api_key_creator_lacks_role");
    assert_eq!(bucket(&pool, format!("api_key:{}", key.id)).await, spent, "a refused key spends nothing");

    // Back as a member, below the key's role: still refused; an owner makes them admin again.
    app.add_member(&t.owner, t.id, &t.admin, "member").await;
    assert_eq!(app.get(&key, &projects).await.problem(StatusCode::UNAUTHORIZED), "api_key_creator_lacks_role");
    app.put(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id), json!({"role": "admin"}))
        .await
        .expect(StatusCode::OK);
    app.get(&key, &projects).await.expect(StatusCode::OK);
    // A key below its creator's role keeps working when the creator is demoted to it.
    let viewer_key = app.post(&t.admin, &keys, json!({"name": "Viewer's", "role": "viewer"})).await;
    let viewer_key = TestUser::api_key(&viewer_key);
    app.put(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id), json!({"role": "viewer"}))
        .await
        .expect(StatusCode::OK);
    app.get(&viewer_key, &projects).await.expect(StatusCode::OK);
    assert_eq!(app.get(&key, &projects).await.problem(StatusCode::UNAUTHORIZED), "api_key_creator_lacks_role");
}

#[tokio::test]
async fn a_contact_spends_their_own_budget_and_one_refused_for_the_plan_spends_nothing() {
    let app = TestApp::new().await;
    let t = app.tenant("contact-budget").await;
    let pool = owner_pool().await;
    // A small team budget, so the finding reproduces in a few requests: before, each of the
    // contact's refused requests was counted against it.
    sqlx::query(
        "INSERT INTO entitlement_overrides (id, workspace_id, entitlement, value, reason, granted_by, expires_at)
         VALUES (gen_random_uuid(), $1, 'requests_per_minute', 10, 'test', 'operator:test', now() + interval '1 hour')",
    )
    .bind(t.id)
    .execute(&pool)
    .await
    .unwrap();
    let team_bucket = format!("workspace:{}", t.id);
    let contact_bucket = format!("user:{}", t.contact.id);

    // With the portal: the contact's requests count against their own bucket, not the team's.
    let team_before = bucket(&pool, team_bucket.clone()).await;
    for _ in 0..12 {
        let response = app.get(&t.contact, &t.project_path()).await;
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        response.expect(StatusCode::OK);
        assert!(response.headers["ratelimit-policy"].to_str().unwrap().starts_with("\"user\""));
    }
    assert_eq!(bucket(&pool, team_bucket.clone()).await, team_before, "the contact spent the team's budget");
    assert!(bucket(&pool, contact_bucket.clone()).await.is_some(), "the contact's own bucket counts them");

    // The plan loses the portal: the contact is refused, and spends nothing anywhere.
    subscribe(t.id, "studio", "canceled").await;
    let contact_before = bucket(&pool, contact_bucket.clone()).await;
    for _ in 0..30 {
        let refused = app.get(&t.contact, &t.project_path()).await;
        assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
    }
    assert_eq!(bucket(&pool, team_bucket).await, team_before);
    assert_eq!(bucket(&pool, contact_bucket).await, contact_before);
    // The owner's budget is whole: their next request is not refused.
    app.get(&t.owner, &t.path()).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_contact_of_a_workspace_whose_plan_lost_the_portal_sees_nothing_of_it() {
    let app = TestApp::new().await;
    let t = app.tenant("contact-downgraded").await;
    let listed = |user: TestUser| {
        let app = &app;
        async move {
            let body = app.get(&user, "/v1/workspaces?limit=100").await.expect(StatusCode::OK).clone();
            body["items"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(t.contact.clone()).await, [t.id.to_string()]);
    subscribe(t.id, "studio", "canceled").await;
    assert!(listed(t.contact.clone()).await.is_empty(), "the list still names the workspace");
    for path in [t.path(), format!("{}/projects", t.path()), t.project_path(), format!("{}/clients", t.path())] {
        let refused = app.get(&t.contact, &path).await;
        assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan", "GET {path}");
        assert!(!refused.body.to_string().contains("Free"), "the refusal names the team's plan: {}", refused.body);
    }
    // The team is not affected, and the portal comes back with the plan.
    assert_eq!(listed(t.owner.clone()).await, [t.id.to_string()]);
    subscribe(t.id, "studio", "active").await;
    assert_eq!(listed(t.contact.clone()).await, [t.id.to_string()]);
    app.get(&t.contact, &t.path()).await.expect(StatusCode::OK);
}

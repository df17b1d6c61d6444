//! The platform admin surface: only operators (an identity provider's group, or a configured
//! development subject) get anything from `/v1/admin`; tenants of every role and API keys get
//! 403, forged group claims are refused; operators find a workspace by name, member e-mail or
//! Stripe customer and see why its plan is what it is; the admin database role reads every
//! tenant and can change nothing, nor read a secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use integration_tests::{TestApp, base_settings, fill_other_tables, mint, worker_pool};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RSA_KEY: &[u8] = include_bytes!("../../fixtures/rsa-test-key.pem");
const AUDIENCE: &str = "api-client-id";
const GROUP: &str = "platform-operators";

/// An identity provider serving its JWKS; tokens it signs carry whatever claims a test gives.
async fn identity_provider() -> (MockServer, String) {
    let server = MockServer::start().await;
    let mut rsa = Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(RSA_KEY).unwrap(), Algorithm::RS256).unwrap();
    rsa.common.key_id = Some("rsa-1".into());
    Mock::given(method("GET"))
        .and(path("/idp/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(JwkSet { keys: vec![rsa] }))
        .mount(&server)
        .await;
    let issuer = format!("{}/idp", server.uri());
    (server, issuer)
}

fn signed(issuer: &str, subject: &str, groups: &[&str]) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"iss": issuer, "sub": subject, "aud": AUDIENCE, "exp": now + 600, "iat": now,
                        "cognito:groups": groups});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(RSA_KEY).unwrap()).unwrap()
}

struct Admin {
    router: axum::Router,
}

impl Admin {
    async fn start(issuer: &str) -> Self {
        let mut settings = base_settings();
        settings.push(("AUTH_OIDC_ISSUERS".into(), issuer.to_owned()));
        settings.push(("AUTH_AUDIENCES".into(), format!("{AUDIENCE},{}", integration_tests::AUDIENCE)));
        settings.push(("ADMIN_GROUP".into(), GROUP.into()));
        settings.push(("ADMIN_SUBJECTS".into(), "dev-operator".into()));
        Self { router: integration_tests::admin_router(settings).await }
    }

    async fn get(&self, token: Option<&str>, uri: &str) -> (StatusCode, Value) {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn only_operators_get_anything_and_forged_groups_are_refused() {
    let (_idp, issuer) = identity_provider().await;
    let (_evil, evil_issuer) = identity_provider().await;
    let app = TestApp::new().await;
    let t = app.tenant("admin-tenant").await;
    let admin = Admin::start(&issuer).await;
    let key = app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "K", "role": "admin"})).await;
    let key = key.body["key"].as_str().unwrap().to_owned();
    let routes =
        ["/v1/admin/workspaces".to_owned(), format!("/v1/admin/workspaces/{}", t.id), "/v1/admin/totals".into()];
    // Tenants of every role, by their tokens; a token of the trusted issuer without the group;
    // the development issuer claiming the group (development tokens' groups count for nothing).
    let dev_with_group = {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({"iss": integration_tests::HS256_ISSUER, "sub": t.owner.subject, "aud": integration_tests::AUDIENCE,
                            "exp": now + 600, "cognito:groups": [GROUP], "groups": [GROUP]});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(integration_tests::HS256_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let refused: Vec<String> = [&t.owner, &t.admin, &t.member, &t.viewer, &t.contact]
        .iter()
        .map(|user| user.token.clone())
        .chain([signed(&issuer, "someone", &["tenants"]), dev_with_group])
        .collect();
    for route in &routes {
        for token in &refused {
            let (status, body) = admin.get(Some(token), route).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_an_operator")), "{route}");
        }
        // An API key is not a person, let alone an operator.
        assert_eq!(admin.get(Some(&key), route).await.0, StatusCode::UNAUTHORIZED, "{route}");
        // Another issuer's token naming the operators' group, signed with a key it controls.
        assert_eq!(
            admin.get(Some(&signed(&evil_issuer, "mallory", &[GROUP])), route).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(admin.get(None, route).await.0, StatusCode::UNAUTHORIZED, "{route}");
        // The group from the trusted issuer, and the configured development subject, get in.
        assert_eq!(admin.get(Some(&signed(&issuer, "alice", &[GROUP])), route).await.0, StatusCode::OK, "{route}");
        let dev = mint("dev-operator", None, Duration::from_secs(600));
        assert_eq!(admin.get(Some(&dev), route).await.0, StatusCode::OK, "{route}");
    }
}

#[tokio::test]
async fn an_operator_finds_a_workspace_and_sees_why_its_plan_is_what_it_is() {
    let (_idp, issuer) = identity_provider().await;
    let app = TestApp::new().await;
    let t = app.tenant("admin-findme").await;
    let other = app.tenant("admin-other").await;
    fill_other_tables(&t).await;
    let admin = Admin::start(&issuer).await;
    let operator = signed(&issuer, "alice", &[GROUP]);
    let ids = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect()
    };
    let by_name = admin.get(Some(&operator), "/v1/admin/workspaces?q=admin-findme").await;
    assert_eq!(ids(&by_name.1), [t.id.to_string()]);
    assert_eq!(by_name.1["items"][0]["plan"], "studio");
    let email = t.member.email.to_uppercase();
    let by_email = admin.get(Some(&operator), &format!("/v1/admin/workspaces?q={email}")).await;
    assert_eq!(ids(&by_email.1), [t.id.to_string()]);
    let customer = format!("cus_{}", t.id.simple());
    let by_customer = admin.get(Some(&operator), &format!("/v1/admin/workspaces?q={customer}")).await;
    assert_eq!(ids(&by_customer.1), [t.id.to_string()]);
    // LIKE's wildcards are matched literally.
    assert_eq!(ids(&admin.get(Some(&operator), "/v1/admin/workspaces?q=%25").await.1), Vec::<String>::new());
    let all = admin.get(Some(&operator), "/v1/admin/workspaces?limit=100").await.1;
    assert!(ids(&all).contains(&other.id.to_string()));
    // A workspace that never subscribed: no subscription row to join (found by fuzzing: its
    // status was read as non-null, a 500).
    let free_owner = app.user("admin-free-owner").await;
    let free = app.workspace(&free_owner, "admin-free-findme").await;
    let (status, found) = admin.get(Some(&operator), "/v1/admin/workspaces?q=admin-free-findme").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(ids(&found), [free.to_string()]);
    assert_eq!(found["items"][0]["plan"], "free");
    assert_eq!(found["items"][0]["subscription_status"], Value::Null);

    let (status, overview) = admin.get(Some(&operator), &format!("/v1/admin/workspaces/{}", t.id)).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["plan"], "studio");
    assert_eq!(overview["subscription"]["status"], "active");
    assert_eq!(overview["subscription"]["plan_id"], "studio");
    assert_eq!(overview["limits"]["members"], 50);
    assert_eq!(overview["features"]["api_access"], true);
    assert!(overview["usage"]["projects"].as_i64().unwrap() >= 2);
    // One run of the quota (the fixture's), none beyond it, no cap.
    assert_eq!(overview["usage"]["ai_runs_this_period"], 1, "{overview}");
    assert_eq!(
        (&overview["usage"]["ai_overage_runs_this_period"], &overview["usage"]["ai_overage_cap"]),
        (&json!(0), &Value::Null)
    );
    assert_eq!(overview["members"].as_array().unwrap().len(), 4);
    assert!(!overview["recent_audit"].as_array().unwrap().is_empty());
    assert_eq!(overview["recent_stripe_events"][0]["outcome"], "applied");
    assert_eq!(overview["unreported_ai_usage"]["records"], 1);
    let (missing, _) = admin.get(Some(&operator), &format!("/v1/admin/workspaces/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    let (_, totals) = admin.get(Some(&operator), "/v1/admin/totals").await;
    assert!(totals["workspaces"].as_i64().unwrap() >= 2);
    assert!(totals["by_plan"]["studio"].as_i64().unwrap() >= 2, "{totals}");
    assert!(totals["subscriptions_by_status"]["active"].as_i64().unwrap() >= 2, "{totals}");
}

/// Refused by row-level security or by privileges: both are SQLSTATE 42501.
fn assert_denied(error: &sqlx::Error, what: &str) {
    match error {
        sqlx::Error::Database(db) => assert_eq!(db.code().as_deref(), Some("42501"), "{what}: {db}"),
        other => panic!("{what}: {other}"),
    }
}

#[tokio::test]
async fn the_admin_role_reads_every_tenant_changes_nothing_and_sees_no_secret() {
    let app = TestApp::new().await;
    let t = app.tenant("admin-raw").await;
    fill_other_tables(&t).await;
    let pool = worker_pool("app_admin").await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '\\_sqlx%'
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'workspace_id')
         ORDER BY 1",
    )
    .fetch_all(&integration_tests::owner_pool().await)
    .await
    .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    for table in &tables {
        let sql = |text: String| sqlx::AssertSqlSafe(text);
        let seen: Result<i64, _> =
            sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE workspace_id = $1")))
                .bind(t.id)
                .fetch_one(&pool)
                .await;
        assert!(seen.unwrap() > 0, "app_admin should read {table}");
        let deleted =
            sqlx::query(sql(format!("DELETE FROM {table} WHERE workspace_id = $1"))).bind(t.id).execute(&pool).await;
        assert_denied(&deleted.unwrap_err(), &format!("deleting from {table}"));
        let updated =
            sqlx::query(sql(format!("UPDATE {table} SET workspace_id = workspace_id WHERE workspace_id = $1")))
                .bind(t.id)
                .execute(&pool)
                .await;
        assert_denied(&updated.unwrap_err(), &format!("updating {table}"));
    }
    let inserted = sqlx::query("INSERT INTO workspaces (id, name, created_by) VALUES (gen_random_uuid(), 'x', NULL)")
        .execute(&pool)
        .await;
    assert_denied(&inserted.unwrap_err(), "inserting a workspace");
    for (table, column) in [
        ("webhook_endpoints", "secret"),
        ("webhook_endpoints", "previous_secret"),
        ("api_keys", "secret_hash"),
        ("invitations", "token_hash"),
        ("emails", "params"),
    ] {
        let read =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {column} FROM {table} LIMIT 1"))).fetch_all(&pool).await;
        assert_denied(&read.unwrap_err(), &format!("reading {table}.{column}"));
    }
}

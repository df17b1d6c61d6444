//! Bearer token verification against a local OIDC identity provider (wiremock serving a JWKS),
//! and HS256 development tokens: only a token with a valid signature, issuer, audience and time
//! window gets in; everything else is 401 problem+json.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode, header};
use integration_tests::{TestApp, base_settings};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RSA_KEY: &[u8] = include_bytes!("../../fixtures/rsa-test-key.pem");
const EC_KEY: &[u8] = include_bytes!("../../fixtures/ec-test-key.pem");
const AUDIENCE: &str = "api-client-id";
const JWKS_PATH: &str = "/idp/.well-known/jwks.json";

struct IdentityProvider {
    server: MockServer,
    issuer: String,
}

impl IdentityProvider {
    async fn start() -> Self {
        let server = MockServer::start().await;
        let mut rsa = Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(RSA_KEY).unwrap(), Algorithm::RS256).unwrap();
        rsa.common.key_id = Some("rsa-1".into());
        let mut ec = Jwk::from_encoding_key(&EncodingKey::from_ec_pem(EC_KEY).unwrap(), Algorithm::ES256).unwrap();
        ec.common.key_id = Some("ec-1".into());
        Mock::given(method("GET"))
            .and(path(JWKS_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(JwkSet { keys: vec![rsa, ec] }))
            .mount(&server)
            .await;
        let issuer = format!("{}/idp", server.uri());
        Self { server, issuer }
    }

    async fn app(&self) -> TestApp {
        let mut settings = base_settings();
        settings.push(("AUTH_OIDC_ISSUERS".into(), self.issuer.clone()));
        settings.push(("AUTH_AUDIENCES".into(), AUDIENCE.into()));
        TestApp::with_settings(settings).await
    }

    async fn jwks_fetches(&self) -> usize {
        self.server.received_requests().await.unwrap_or_default().iter().filter(|r| r.url.path() == JWKS_PATH).count()
    }

    fn claims(&self) -> Value {
        json!({ "iss": self.issuer, "sub": "user-1", "aud": AUDIENCE, "email": "u1@example.com", "exp": now() + 600, "iat": now() })
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_KEY).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_KEY).unwrap(),
        _ => unreachable!(),
    };
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

async fn status_for(app: &TestApp, token: Option<&str>) -> (StatusCode, Value) {
    let response = app.call(Method::GET, "/v1/workspaces", token, None).await;
    if response.status == StatusCode::UNAUTHORIZED {
        assert_eq!(response.problem(StatusCode::UNAUTHORIZED), "unauthenticated");
        assert_eq!(response.headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
    (response.status, response.body)
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_from_the_issuers_jwks_are_accepted() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &idp.claims()))).await.0, StatusCode::OK);
    assert_eq!(status_for(&app, Some(&sign(Algorithm::ES256, "ec-1", &idp.claims()))).await.0, StatusCode::OK);
    assert_eq!(idp.jwks_fetches().await, 1, "the JWKS is cached for the life of the environment");
}

/// An execution environment fetches its issuer's keys during init, beside opening the database,
/// so its first request verifies the token without waiting for the identity provider.
#[tokio::test]
async fn the_issuers_keys_are_fetched_during_init_not_by_the_first_request() {
    let idp = IdentityProvider::start().await;
    let mut settings = base_settings();
    settings.push(("AUTH_OIDC_ISSUERS".into(), idp.issuer.clone()));
    settings.push(("AUTH_AUDIENCES".into(), AUDIENCE.into()));
    let lookup = move |name: &str| settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let state =
        <shared::AppState as shared::runtime::FromSettings>::from_settings(&shared::config::Settings::from_fn(lookup))
            .await
            .unwrap();
    assert_eq!(idp.jwks_fetches().await, 1, "the keys are fetched at init");
    let app = TestApp::from_state(state).await;
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &idp.claims()))).await.0, StatusCode::OK);
    assert_eq!(idp.jwks_fetches().await, 1, "the first request fetched nothing");
}

#[tokio::test]
async fn a_cognito_access_token_is_matched_on_client_id() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    let mut claims = idp.claims();
    claims.as_object_mut().unwrap().remove("aud");
    claims["client_id"] = json!(AUDIENCE);
    claims["token_use"] = json!("access");
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &claims))).await.0, StatusCode::OK);
    let wrong = with(claims, "client_id", json!("another-app"));
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &wrong))).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_not_yet_valid_wrong_issuer_and_wrong_audience_tokens_are_refused() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    let cases = [
        ("expired", with(idp.claims(), "exp", json!(now() - 120)), "The token has expired."),
        ("not yet valid", with(idp.claims(), "nbf", json!(now() + 600)), "The token is not valid yet."),
        (
            "wrong issuer",
            with(idp.claims(), "iss", json!("https://evil.example.com/")),
            "The token's issuer is not trusted.",
        ),
        (
            "wrong audience",
            with(idp.claims(), "aud", json!("someone-else")),
            "The token is not meant for this API (audience).",
        ),
        (
            "audience list without ours",
            with(idp.claims(), "aud", json!(["a", "b"])),
            "The token is not meant for this API (audience).",
        ),
        (
            "no expiry",
            {
                let mut c = idp.claims();
                c.as_object_mut().unwrap().remove("exp");
                c
            },
            "The token lacks a required claim: exp.",
        ),
    ];
    for (name, claims, detail) in cases {
        let (status, body) = status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &claims))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(body["detail"], detail, "{name}");
    }
    let listed = with(idp.claims(), "aud", json!(["other", AUDIENCE]));
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &listed))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    let valid = sign(Algorithm::RS256, "rsa-1", &idp.claims());
    let parts: Vec<&str> = valid.split('.').collect();

    // A payload swapped under a valid signature.
    let other_payload = sign(Algorithm::RS256, "rsa-1", &with(idp.claims(), "sub", json!("admin")));
    let tampered = format!("{}.{}.{}", parts[0], other_payload.split('.').nth(1).unwrap(), parts[2]);
    assert_eq!(status_for(&app, Some(&tampered)).await.1["detail"], "The token's signature is invalid.");

    // The RSA-signed token presented as if the EC key signed it.
    let wrong_key = sign(Algorithm::ES256, "rsa-1", &idp.claims());
    assert_eq!(status_for(&app, Some(&wrong_key)).await.0, StatusCode::UNAUTHORIZED);

    // alg "none".
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    assert_eq!(status_for(&app, Some(&format!("{none_header}.{}.", parts[1]))).await.0, StatusCode::UNAUTHORIZED);

    // Algorithm confusion: HS256 over the issuer's claims, "keyed" with anything.
    let confused =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &idp.claims(), &EncodingKey::from_secret(RSA_KEY))
            .unwrap();
    assert_eq!(status_for(&app, Some(&confused)).await.1["detail"], "The token's issuer is not trusted.");

    // An HS256 development token signed with the wrong secret.
    let dev = shared::auth::dev_token::DevToken {
        secret: "not-the-secret",
        issuer: integration_tests::HS256_ISSUER,
        audience: integration_tests::AUDIENCE,
        subject: "x",
        email: None,
        ttl: std::time::Duration::from_secs(60),
    }
    .mint()
    .unwrap();
    assert_eq!(status_for(&app, Some(&dev)).await.1["detail"], "The token's signature is invalid.");

    // Not a JWT at all, and header shapes that are not a bearer token.
    assert_eq!(status_for(&app, Some("not-a-jwt")).await.1["detail"], "The bearer token is not a well-formed JWT.");
    assert_eq!(status_for(&app, None).await.0, StatusCode::UNAUTHORIZED);
    let basic = app
        .send(
            axum::http::Request::get("/v1/workspaces")
                .header("authorization", "Basic dXNlcjpwYXNz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(basic.problem(StatusCode::UNAUTHORIZED), "unauthenticated");
}

#[tokio::test]
async fn an_unknown_key_id_refetches_the_jwks_at_most_once_per_interval() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &idp.claims()))).await.0, StatusCode::OK);
    for _ in 0..5 {
        let (status, body) = status_for(&app, Some(&sign(Algorithm::RS256, "rotated-away", &idp.claims()))).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("The token is signed with an unknown key."))
        );
    }
    assert_eq!(idp.jwks_fetches().await, 1, "random key ids must not hammer the identity provider");
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_503_not_a_401() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let issuer = format!("{}/idp", server.uri());
    let mut settings = base_settings();
    settings.push(("AUTH_OIDC_ISSUERS".into(), issuer.clone()));
    settings.push(("AUTH_AUDIENCES".into(), AUDIENCE.into()));
    let app = TestApp::with_settings(settings).await;
    let claims = json!({ "iss": issuer, "sub": "u", "aud": AUDIENCE, "exp": now() + 600 });
    let response = app.call(Method::GET, "/v1/workspaces", Some(&sign(Algorithm::RS256, "rsa-1", &claims)), None).await;
    assert_eq!(response.problem(StatusCode::SERVICE_UNAVAILABLE), "service_unavailable");
}

#[tokio::test]
async fn the_user_row_is_created_on_first_sight_and_keeps_its_email_current() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    let sub = format!("first-sight-{}", uuid::Uuid::new_v4());
    let claims = with(idp.claims(), "sub", json!(sub));
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &claims))).await.0, StatusCode::OK);
    let renamed = with(claims, "email", json!("new@example.com"));
    assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &renamed))).await.0, StatusCode::OK);
    let pool = integration_tests::service_pool().await;
    let (id, email): (uuid::Uuid, Option<String>) =
        sqlx::query_as("SELECT id, email FROM users WHERE issuer = $1 AND subject = $2")
            .bind(&idp.issuer)
            .bind(&sub)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(id, shared::auth::user_id_for(&idp.issuer, &sub));
    assert_eq!(email.as_deref(), Some("new@example.com"));
}

/// An address the identity provider marks unverified (`email_verified` false, as a boolean or
/// as older Cognito pools write it, a string) is not used: it is not stored on the user, so it
/// cannot match an invitation or a member lookup. A verified one (or no claim) is.
#[tokio::test]
async fn an_unverified_email_is_not_used() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    let stored = |subject: &'static str| {
        let issuer = idp.issuer.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>("SELECT email FROM users WHERE id = $1")
                .bind(shared::auth::user_id_for(&issuer, subject))
                .fetch_one(&integration_tests::owner_pool().await)
                .await
                .unwrap()
        }
    };
    for (subject, verified, kept) in [
        ("unverified-bool", json!(false), false),
        ("unverified-text", json!("false"), false),
        ("verified-bool", json!(true), true),
        ("verified-text", json!("true"), true),
    ] {
        let claims = with(with(idp.claims(), "sub", json!(subject)), "email_verified", verified);
        assert_eq!(status_for(&app, Some(&sign(Algorithm::RS256, "rsa-1", &claims))).await.0, StatusCode::OK);
        assert_eq!(stored(subject).await.is_some(), kept, "{subject}");
    }
}

/// A user federated into the Cognito user pool from an enterprise identity provider (the
/// template's SAML or OIDC SSO): Cognito's ID token carries `identities` and
/// `cognito:username`, and usually no `email_verified` (a SAML assertion has none). Such a user
/// signs in, is created once, and keeps one user row (and its id) across sign-ins; the mapped
/// e-mail is theirs.
#[tokio::test]
async fn a_federated_sso_user_signs_in_and_keeps_one_user_row() {
    let idp = IdentityProvider::start().await;
    let app = idp.app().await;
    let sub = uuid::Uuid::new_v4().to_string();
    let federated = |email: &str| {
        let mut claims = with(idp.claims(), "sub", json!(sub));
        claims["email"] = json!(email);
        claims["cognito:username"] = json!(format!("CompanySSO_{email}"));
        claims["token_use"] = json!("id");
        claims["identities"] = json!([{
            "userId": email, "providerName": "CompanySSO", "providerType": "SAML",
            "issuer": "http://www.okta.com/exk1abcd", "primary": "true", "dateCreated": "1795348800000"
        }]);
        sign(Algorithm::RS256, "rsa-1", &claims)
    };
    for _ in 0..3 {
        assert_eq!(status_for(&app, Some(&federated("jdoe@acme.example"))).await.0, StatusCode::OK);
    }
    // The identity provider renamed the address: the same user, its e-mail current.
    assert_eq!(status_for(&app, Some(&federated("john.doe@acme.example"))).await.0, StatusCode::OK);
    let rows: Vec<(uuid::Uuid, Option<String>)> =
        sqlx::query_as("SELECT id, email FROM users WHERE issuer = $1 AND subject = $2")
            .bind(&idp.issuer)
            .bind(&sub)
            .fetch_all(&integration_tests::owner_pool().await)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "one user row across sign-ins");
    assert_eq!(rows[0], (shared::auth::user_id_for(&idp.issuer, &sub), Some("john.doe@acme.example".to_owned())));
}

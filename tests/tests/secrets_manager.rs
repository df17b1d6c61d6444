//! Configuration from an AWS Secrets Manager JSON secret, over the real wire protocol against a
//! local AWS-compatible server (moto). `scripts/test.sh` starts moto and exports
//! `AWS_ENDPOINT_URL` (loopback), a region and dummy credentials.

use aws_config::BehaviorVersion;
use axum::http::StatusCode;
use integration_tests::{HS256_ISSUER, TestApp, database};
use secrecy::ExposeSecret;
use shared::auth::dev_token::DevToken;
use shared::config::{Config, ConfigError};
use shared::secrets::SecretsError;
use uuid::Uuid;

async fn local_secrets_manager() -> aws_sdk_secretsmanager::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at the local moto server (got {endpoint:?}); run the suite with scripts/test.sh"
    );
    aws_sdk_secretsmanager::Client::new(&aws_config::defaults(BehaviorVersion::latest()).load().await)
}

async fn create_secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = format!("saas/test/{}", Uuid::new_v4().simple());
    client.create_secret().name(&name).secret_string(value).send().await.expect("create secret in moto");
    name
}

fn env_with(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn the_secret_supplies_credentials_and_wins_over_the_environment() {
    let client = local_secrets_manager().await;
    let secret = serde_json::json!({
        "DATABASE_URL": database().api_url,
        "AUTH_HS256_SECRET": "signing-key-from-the-secret",
        "DB_MAX_CONNECTIONS": 3
    });
    let id = create_secret(&client, &secret.to_string()).await;
    let config = Config::load_from(env_with(vec![
        ("APP_SECRET_ID", id),
        ("DATABASE_URL", "postgres://wrong@127.0.0.1:1/nope".into()),
        ("AUTH_HS256_SECRET", "signing-key-from-the-environment".into()),
        ("MAX_BODY_BYTES", "2048".into()),
    ]))
    .await
    .expect("config from the secret");
    assert_eq!(config.database.url.expose_secret(), database().api_url);
    assert_eq!(config.auth.hs256.as_ref().unwrap().secret.expose_secret(), "signing-key-from-the-secret");
    assert_eq!(config.database.max_connections, 3);
    assert_eq!(config.max_body_bytes, 2048, "the environment fills what the secret lacks");

    // The app built from it uses both: the database and the secret's signing key.
    let pool = shared::db::connect(&config.database).await.expect("database from the secret");
    let app = TestApp::from_state(shared::AppState::new(config, pool)).await;
    let token = DevToken {
        secret: "signing-key-from-the-secret",
        issuer: HS256_ISSUER,
        audience: "saas-local",
        subject: "secret-user",
        email: None,
        ttl: std::time::Duration::from_secs(60),
    }
    .mint()
    .unwrap();
    let response = app.call(axum::http::Method::GET, "/v1/workspaces", Some(&token), None).await;
    response.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_error() {
    let _ = local_secrets_manager().await;
    let error = Config::load_from(env_with(vec![("APP_SECRET_ID", "saas/does-not-exist".into())])).await.unwrap_err();
    let ConfigError::Secret(SecretsError::Fetch { id, reason }) = &error else { panic!("unexpected {error:?}") };
    assert_eq!(id, "saas/does-not-exist");
    assert!(reason.contains("ResourceNotFound"), "{reason}");
}

#[tokio::test]
async fn a_secret_that_is_not_a_json_object_is_refused_without_echoing_it() {
    let client = local_secrets_manager().await;
    let id = create_secret(&client, "postgres://user:hunter2@db/app").await;
    let error = Config::load_from(env_with(vec![("APP_SECRET_ID", id)])).await.unwrap_err();
    assert!(matches!(error, ConfigError::Secret(SecretsError::Format { .. })), "{error:?}");
    assert!(!error.to_string().contains("hunter2"));
}

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

#[tokio::test]
async fn several_secrets_are_read_in_one_call_and_merged() {
    let client = local_secrets_manager().await;
    let with_database =
        create_secret(&client, &serde_json::json!({"DATABASE_URL": database().api_url}).to_string()).await;
    let signing =
        create_secret(&client, &serde_json::json!({"AUTH_HS256_SECRET": "from-the-second-secret"}).to_string()).await;
    let config = Config::load_from(env_with(vec![("APP_SECRET_IDS", format!("{with_database}, {signing}"))]))
        .await
        .expect("config from two secrets");
    assert_eq!(config.database.url.expose_secret(), database().api_url);
    assert_eq!(config.auth.hs256.as_ref().unwrap().secret.expose_secret(), "from-the-second-secret");
}

#[tokio::test]
async fn a_setting_in_two_secrets_is_refused() {
    let client = local_secrets_manager().await;
    let one = create_secret(&client, &serde_json::json!({"DATABASE_URL": "postgres://a@h/db"}).to_string()).await;
    let two = create_secret(&client, &serde_json::json!({"DATABASE_URL": "postgres://b@h/db"}).to_string()).await;
    let error = Config::load_from(env_with(vec![("APP_SECRET_IDS", format!("{one},{two}"))])).await.unwrap_err();
    assert!(
        matches!(&error, ConfigError::Secret(SecretsError::Duplicate { key, .. }) if key == "DATABASE_URL"),
        "{error:?}"
    );
    assert!(!error.to_string().contains("postgres://"), "the values are not echoed: {error}");
}

#[tokio::test]
async fn an_api_function_refuses_a_secret_holding_the_service_roles_credentials() {
    let client = local_secrets_manager().await;
    let secret = serde_json::json!({
        "DATABASE_URL": database().api_url,
        "SERVICE_DATABASE_URL": database().service_url,
        "AUTH_HS256_SECRET": "k"
    });
    let id = create_secret(&client, &secret.to_string()).await;
    let error = Config::load_from(env_with(vec![("APP_SECRET_ID", id.clone())])).await.unwrap_err();
    assert!(matches!(error, ConfigError::Invalid { name: "SERVICE_DATABASE_URL", .. }), "{error:?}");
    assert!(!error.to_string().contains("app_service:"), "the value is not echoed: {error}");
    // The same variable in the environment of local tools is not a secret and is allowed.
    let settings =
        shared::config::Settings::load_from(env_with(vec![("SERVICE_DATABASE_URL", "x".into())])).await.unwrap();
    settings.refuse_in_secrets(&shared::config::SERVICE_ONLY_SECRETS).expect("only secrets are checked");
}

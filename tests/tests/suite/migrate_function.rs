//! The migrate function, as CloudFormation's custom resource drives it on every deploy: each
//! request is answered by a PUT to its response URL (here a local server standing in for the
//! presigned S3 URL), SUCCESS with the versions applied, FAILED with the reason; a second run
//! applies nothing; Delete touches no database.

use migrate::Migrate;
use serde_json::{Value, json};
use shared::runtime::FromSettings as _;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A database of its own, created empty: the migrate function starts from nothing.
async fn empty_database() -> String {
    let admin = std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("saas_test_migrate_{}", Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("the admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

async fn function(database_url: &str) -> Migrate {
    let settings = integration_tests::settings(&[
        ("MIGRATION_DATABASE_URL", database_url.to_owned()),
        ("DB_ACQUIRE_TIMEOUT_MS", "2000".to_owned()),
    ]);
    Migrate::from_settings(&settings).await.expect("the function from its settings")
}

/// A custom-resource request as CloudFormation sends it.
fn request(kind: &str, cloudformation: &MockServer) -> migrate::Request {
    let mut request = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:stack-MigrateFunction",
        "ResponseURL": format!("{}/cloudformation-response?X-Amz-Signature=abc", cloudformation.uri()),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/saas/1",
        "RequestId": format!("request-{}", Uuid::new_v4()),
        "ResourceType": "Custom::Migrations",
        "LogicalResourceId": "Migrations",
        "ResourceProperties": {"ServiceToken": "arn:...", "Version": "7"},
    });
    if kind != "Create" {
        request["PhysicalResourceId"] = json!("database-migrations");
    }
    if kind == "Update" {
        request["OldResourceProperties"] = json!({"ServiceToken": "arn:...", "Version": "6"});
    }
    serde_json::from_value(request).expect("a custom-resource request")
}

async fn cloudformation() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/cloudformation-response"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The answers the stand-in received, in order; each as CloudFormation requires it: a PUT with
/// an empty content type and the request's identifiers echoed.
async fn answers(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|sent| {
            assert_eq!(sent.headers.get("content-type").map(|v| v.as_bytes()), Some(&b""[..]), "content type");
            serde_json::from_slice(&sent.body).expect("a JSON answer")
        })
        .collect()
}

fn versions() -> Vec<String> {
    shared::db::migrate::MIGRATOR.iter().map(|m| m.version.to_string()).collect()
}

#[tokio::test]
async fn a_deploy_applies_what_is_pending_and_the_next_applies_nothing() {
    let url = empty_database().await;
    let function = function(&url).await;
    let server = cloudformation().await;

    let created = request("Create", &server);
    let answer = migrate::handle(&function, created.clone()).await;
    assert_eq!(answer.status, "SUCCESS", "{answer:?}");
    let sent = answers(&server).await;
    assert_eq!(sent.len(), 1);
    let all = versions();
    assert_eq!(sent[0]["Status"], "SUCCESS");
    assert_eq!(sent[0]["Data"]["Applied"], all.join(","));
    assert_eq!(sent[0]["Data"]["Latest"], *all.last().unwrap());
    assert_eq!(sent[0]["PhysicalResourceId"], "database-migrations");
    assert_eq!(sent[0]["LogicalResourceId"], "Migrations");
    assert_eq!(sent[0]["StackId"], "arn:aws:cloudformation:us-east-1:123456789012:stack/saas/1");
    let migrate::Request::Create(create) = &created else { unreachable!() };
    assert_eq!(sent[0]["RequestId"], create.request_id.as_str());

    // The next deploy: nothing pending, the same resource.
    migrate::handle(&function, request("Update", &server)).await;
    let sent = answers(&server).await;
    assert_eq!(sent[1]["Status"], "SUCCESS", "{}", sent[1]);
    assert_eq!(sent[1]["Data"]["Applied"], "");
    assert_eq!(sent[1]["Data"]["Latest"], *all.last().unwrap());
    assert_eq!(sent[1]["PhysicalResourceId"], "database-migrations");

    // The schema is the migrations' (the roles' grants included): the API role sees the plans.
    let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
        .fetch_one(&sqlx::PgPool::connect(&url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(plans, 4);
}

#[tokio::test]
async fn a_failed_migration_fails_the_deploy_with_its_reason() {
    let url = empty_database().await;
    let function = function(&url).await;
    let server = cloudformation().await;
    migrate::handle(&function, request("Create", &server)).await;
    // An applied migration edited afterwards: sqlx refuses to go on, and so does the deploy.
    sqlx::query(
        "UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&sqlx::PgPool::connect(&url).await.unwrap())
    .await
    .unwrap();
    let answer = migrate::handle(&function, request("Update", &server)).await;
    assert_eq!(answer.status, "FAILED");
    let sent = answers(&server).await;
    assert_eq!(sent[1]["Status"], "FAILED");
    let reason = sent[1]["Reason"].as_str().unwrap();
    assert!(reason.contains("a migration failed") && reason.contains("modified"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_failed_deploy_and_delete_touches_nothing() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let function = function(&format!("postgres://owner:secret@127.0.0.1:{closed_port}/app")).await;
    let server = cloudformation().await;
    let answer = migrate::handle(&function, request("Create", &server)).await;
    assert_eq!(answer.status, "FAILED");
    let reason = answer.reason.unwrap();
    assert!(reason.contains("cannot connect to the database"), "{reason}");
    assert!(!reason.contains("secret"), "the reason does not carry the password: {reason}");

    // Deleting the resource (or the stack) leaves the database alone: no connection is made.
    let answer = migrate::handle(&function, request("Delete", &server)).await;
    assert_eq!(answer.status, "SUCCESS", "{answer:?}");
    let sent = answers(&server).await;
    assert_eq!((sent[0]["Status"].as_str(), sent[1]["Status"].as_str()), (Some("FAILED"), Some("SUCCESS")));
    assert_eq!(sent[1]["PhysicalResourceId"], "database-migrations");
    assert!(sent[1]["Data"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_login_is_a_failed_deploy_with_the_reason() {
    let function = Migrate::from_settings(&integration_tests::settings(&[])).await.expect("starts without a login");
    let server = cloudformation().await;
    let answer = migrate::handle(&function, request("Create", &server)).await;
    assert_eq!(answer.status, "FAILED");
    assert!(answer.reason.as_deref().unwrap().contains("MIGRATION_DATABASE_URL"), "{answer:?}");
    assert_eq!(answers(&server).await[0]["Status"], "FAILED");
}

#[tokio::test]
async fn an_answer_the_response_url_refuses_is_sent_again() {
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(503)).up_to_n_times(2).mount(&server).await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let function = function("postgres://owner@127.0.0.1:1/app").await;
    migrate::handle(&function, request("Delete", &server)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

//! The Lambda transport of live activity, API Gateway's Management API: frames posted over the
//! real wire protocol (to moto's server), and a closed connection's `410 GoneException` read as
//! "forget it" while any other failure is a failure.

use integration_tests::local_aws;
use shared::realtime::{ApiGatewayTransport, PushError, Transport};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn frames_are_posted_to_the_connection_over_the_management_api() {
    local_aws().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let transport = ApiGatewayTransport::new(endpoint);
    let connection = format!("conn-{}", uuid::Uuid::new_v4().simple());
    // moto parses and accepts the signed PostToConnection calls (it keeps what each connection
    // was sent, but shows it nowhere; the request itself is checked below).
    transport.push(&connection, r#"{"type":"pong"}"#).await.unwrap();
    transport.push(&connection, r#"{"type":"pong"}"#).await.unwrap();
}

#[tokio::test]
async fn a_gone_connection_is_told_apart_from_a_failure() {
    local_aws().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/@connections/closed"))
        .respond_with(
            ResponseTemplate::new(410)
                .insert_header("x-amzn-errortype", "GoneException")
                .set_body_json(serde_json::json!({"message": "the connection is gone"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/@connections/open"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/@connections/broken"))
        .respond_with(ResponseTemplate::new(403).insert_header("x-amzn-errortype", "ForbiddenException"))
        .mount(&server)
        .await;
    let transport = ApiGatewayTransport::new(server.uri());
    transport.push("open", "{}").await.unwrap();
    assert!(matches!(transport.push("closed", "{}").await, Err(PushError::Gone)));
    assert!(matches!(transport.push("broken", "{}").await, Err(PushError::Failed(_))));
    // PostToConnection as API Gateway documents it: POST /@connections/{id}, the frame as the
    // body, signed with SigV4 for execute-api.
    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent[0].url.path(), "/@connections/open");
    assert_eq!(sent[0].body, b"{}");
    let authorization = sent[0].headers.get("authorization").unwrap().to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256") && authorization.contains("/execute-api/aws4_request"),
        "{authorization}"
    );
}

//! The AI provider as the tests see it: a local server answering as Anthropic's Messages API
//! documents, and recording what it was asked.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const API_KEY: &str = "sk-ant-test-key-never-leaves-the-server";

pub fn reply(text: &str) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 321, "output_tokens": 123}
    })
}

pub fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(reply("Here is the draft."))
}

pub async fn start_default_provider() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).mount(&server).await;
    server
}

pub async fn messages_requests(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/v1/messages")
        .collect()
}

//! The local AI provider the local stack serves without a key: the product's AI client gets
//! deterministic answers in the Messages API's shape, and the provider misbehaves on request so
//! the retry paths can be tried (a rate limit is retried through, a lasting failure is one).

use std::time::Duration;

use shared::ai::{AiClient, AiConfig, ProviderError};

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = local_stack::ai::router(local_stack::ai::LocalAi::default());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn client(base: &str, budget: Duration) -> AiClient {
    AiClient::new(AiConfig {
        api_key: "sk-ant-local".to_owned().into(),
        base_url: base.to_owned(),
        model: "claude-local".into(),
        max_tokens: 300,
        time_budget: budget,
    })
}

async fn set_mode(base: &str, mode: serde_json::Value) {
    let answer = reqwest::Client::new().post(format!("{base}/mode")).json(&mode).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn answers_deterministically_and_misbehaves_on_request() {
    let base = serve().await;
    let ai = client(&base, Duration::from_secs(10));
    let first = ai.complete("You write proposals.", "A website for a bakery").await.unwrap();
    let again = ai.complete("You write proposals.", "A website for a bakery").await.unwrap();
    assert_eq!(first, again, "the same request, the same answer");
    assert!(first.text.contains("A website for a bakery"), "{}", first.text);
    assert!(first.input_tokens > 0 && first.output_tokens > 0);
    assert_eq!(first.model, "claude-local");

    // Rate limited twice: the client waits out retry-after and gets through.
    set_mode(&base, serde_json::json!({"mode": "rate_limited", "times": 2})).await;
    assert!(ai.complete("s", "after two 429s").await.is_ok());
    // Failing for good: the client gives up with the provider's failure.
    set_mode(&base, serde_json::json!({"mode": "failing"})).await;
    assert!(matches!(ai.complete("s", "x").await, Err(ProviderError::Failed(_))));
    // Slow beyond the budget: a timeout.
    set_mode(&base, serde_json::json!({"mode": "slow", "delay_ms": 2000})).await;
    let hurried = client(&base, Duration::from_millis(500));
    assert_eq!(hurried.complete("s", "x").await, Err(ProviderError::Timeout));
    set_mode(&base, serde_json::json!({"mode": "normal"})).await;
    assert!(ai.complete("s", "back to normal").await.is_ok());

    // As the real API: no key, no answer.
    let refused = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&serde_json::json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

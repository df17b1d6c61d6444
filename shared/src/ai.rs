//! The AI provider client: Anthropic's Messages API by default (any compatible base URL). The
//! key never leaves the server. A call has one total time budget; 429, 5xx and timeouts are
//! retried with exponential backoff and full jitter while the budget allows.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::config::{ConfigError, Settings, parse_or};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone)]
pub struct AiConfig {
    pub api_key: SecretString,
    pub base_url: String,
    pub model: String,
    pub max_tokens: u32,
    /// Everything a run may spend on the provider, retries included.
    pub time_budget: Duration,
}

impl AiConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let lookup = |name: &str| settings.get(name);
        Ok(Self {
            api_key: SecretString::from(settings.require("AI_PROVIDER_API_KEY")?),
            base_url: settings.get("AI_PROVIDER_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            model: settings.get("AI_MODEL").unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            max_tokens: parse_or(&lookup, "AI_MAX_TOKENS", 1024)?,
            time_budget: Duration::from_millis(parse_or(&lookup, "AI_TIME_BUDGET_MS", 25_000)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The time budget ran out (the last attempt timed out or there was no time to retry).
    #[error("the AI provider did not answer in time")]
    Timeout,
    /// The provider refused, or kept failing until the budget or attempts ran out.
    #[error("the AI provider failed: {0}")]
    Failed(String),
    /// A success status with a body that is not a Messages response.
    #[error("the AI provider's reply was malformed: {0}")]
    Malformed(String),
}

impl ProviderError {
    /// A short reason stored with a failed run.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

#[derive(Clone)]
pub struct AiClient {
    http: reqwest::Client,
    config: AiConfig,
}

#[derive(Deserialize)]
struct MessagesResponse {
    model: Option<String>,
    content: Vec<ContentBlock>,
    usage: Usage,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}

const MAX_ATTEMPTS: u32 = 4;

impl AiClient {
    pub fn new(config: AiConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http, config }
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    pub async fn complete(&self, system: &str, prompt: &str) -> Result<Completion, ProviderError> {
        let deadline = Instant::now() + self.config.time_budget;
        let url = format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'));
        let body = json!({
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "system": system,
            "messages": [{ "role": "user", "content": prompt }],
        });
        let mut last = ProviderError::Timeout;
        for attempt in 0..MAX_ATTEMPTS {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(50) {
                break;
            }
            let sent = self
                .http
                .post(&url)
                .timeout(remaining)
                .header("x-api-key", self.config.api_key.expose_secret())
                .header("anthropic-version", ANTHROPIC_VERSION)
                .json(&body)
                .send()
                .await;
            let retry_after = match sent {
                Err(error) if error.is_timeout() => {
                    last = ProviderError::Timeout;
                    None
                }
                Err(error) => {
                    last = ProviderError::Failed(format!("request failed: {}", error.without_url()));
                    None
                }
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let text = response.text().await.map_err(|e| ProviderError::Malformed(e.to_string()))?;
                        return parse(&text, &self.config.model);
                    }
                    let retryable = status.as_u16() == 429 || status.as_u16() == 529 || status.is_server_error();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(Duration::from_secs_f64);
                    last = ProviderError::Failed(format!("HTTP {status}"));
                    if !retryable {
                        return Err(last);
                    }
                    retry_after
                }
            };
            if attempt + 1 < MAX_ATTEMPTS {
                let wait = retry_after.unwrap_or_else(|| backoff(attempt));
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
        }
        Err(last)
    }
}

/// Full jitter: a random wait up to 200 ms x 2^attempt.
fn backoff(attempt: u32) -> Duration {
    let cap = 200u64 * 2u64.pow(attempt);
    let random = (uuid::Uuid::new_v4().as_u128() % u128::from(cap + 1)) as u64;
    Duration::from_millis(random)
}

fn parse(text: &str, requested_model: &str) -> Result<Completion, ProviderError> {
    let response: MessagesResponse = serde_json::from_str(text).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let text: String = response
        .content
        .iter()
        .filter(|block| block.kind == "text")
        .filter_map(|block| block.text.as_deref())
        .collect();
    if text.trim().is_empty() {
        return Err(ProviderError::Malformed("no text in the reply".into()));
    }
    Ok(Completion {
        text,
        model: response.model.unwrap_or_else(|| requested_model.to_owned()),
        input_tokens: response.usage.input_tokens,
        output_tokens: response.usage.output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_blocks_are_joined_and_usage_read() {
        let reply = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":3}}"#;
        assert_eq!(
            parse(reply, "x").unwrap(),
            Completion { text: "Hello there".into(), model: "m".into(), input_tokens: 12, output_tokens: 3 }
        );
    }

    #[test]
    fn replies_without_text_or_usage_are_malformed() {
        assert!(matches!(
            parse(r#"{"content":[],"usage":{"input_tokens":1,"output_tokens":0}}"#, "m"),
            Err(ProviderError::Malformed(_))
        ));
        assert!(matches!(parse(r#"{"content":[{"type":"text","text":"x"}]}"#, "m"), Err(ProviderError::Malformed(_))));
        assert!(matches!(parse("<html>", "m"), Err(ProviderError::Malformed(_))));
    }

    /// Full jitter: every wait within [0, cap], spread over the whole range (a constant or a
    /// zero backoff fails), and the range doubling with each attempt. 4,000 draws per attempt
    /// make a false failure astronomically unlikely (the bounds are > 10 standard errors wide).
    #[test]
    fn backoff_is_full_jitter_that_doubles_per_attempt() {
        let mut previous_mean = 0.0;
        for attempt in 0..4 {
            let cap = 200.0 * f64::from(2u32.pow(attempt));
            let draws: Vec<f64> = (0..4000).map(|_| backoff(attempt).as_secs_f64() * 1000.0).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let (min, max) = draws.iter().fold((f64::MAX, 0.0f64), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
            assert!(max <= cap, "attempt {attempt}: {max} ms over the cap {cap}");
            assert!(min < cap * 0.05 && max > cap * 0.95, "attempt {attempt}: draws span only {min}..{max} ms");
            assert!(
                (mean - cap / 2.0).abs() < cap * 0.05,
                "attempt {attempt}: mean {mean} ms, expected ~{}",
                cap / 2.0
            );
            if attempt > 0 {
                let growth = mean / previous_mean;
                assert!((1.7..2.3).contains(&growth), "attempt {attempt}: the mean grew {growth}x, not ~2x");
            }
            previous_mean = mean;
        }
    }
}

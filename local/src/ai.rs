//! A local AI provider for development without a key: `POST /v1/messages` as Anthropic's
//! Messages API documents it (the `x-api-key` and `anthropic-version` headers required, the
//! reply's shape and token usage), answering deterministically from the request, so AI runs,
//! quotas and metered usage work out of the box. It can be told to misbehave, to try the retry
//! paths: `POST /mode {"mode": "slow" | "rate_limited" | "overloaded" | "failing" | "normal",
//! "times": N, "delay_ms": D}` makes the next N calls (all of them without `times`) wait D ms
//! first, answer 429 with `retry-after: 1`, 529, or 500. Only the local stack serves it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Normal,
    Slow,
    RateLimited,
    Overloaded,
    Failing,
}

#[derive(Debug, Default)]
struct Behaviour {
    mode: Mode,
    /// Calls left in `mode`; `None`: until told otherwise.
    times: Option<u32>,
    delay: Duration,
}

#[derive(Clone, Default)]
pub struct LocalAi {
    behaviour: Arc<Mutex<Behaviour>>,
}

#[derive(Deserialize)]
struct ModeRequest {
    mode: Mode,
    times: Option<u32>,
    delay_ms: Option<u64>,
}

pub fn router(ai: LocalAi) -> Router {
    Router::new().route("/v1/messages", post(messages)).route("/mode", post(set_mode)).with_state(ai)
}

/// Takes the body as JSON whatever its content type (`curl -d` sends a form's).
async fn set_mode(State(ai): State<LocalAi>, body: axum::body::Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<ModeRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "expected {\"mode\": \"normal|slow|rate_limited|overloaded|failing\", \"times\"?: N, \"delay_ms\"?: D}",
        );
    };
    let mut behaviour = ai.behaviour.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *behaviour = Behaviour {
        mode: request.mode,
        times: request.times,
        delay: Duration::from_millis(request.delay_ms.unwrap_or(if request.mode == Mode::Slow { 30_000 } else { 0 })),
    };
    Json(json!({ "mode": request.mode, "times": request.times })).into_response()
}

/// The behaviour of this call, counting it against `times`.
fn next(ai: &LocalAi) -> (Mode, Duration) {
    let mut behaviour = ai.behaviour.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let current = (behaviour.mode, behaviour.delay);
    if let Some(times) = behaviour.times.as_mut() {
        *times = times.saturating_sub(1);
        if *times == 0 {
            *behaviour = Behaviour::default();
        }
    }
    current
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"type": "error", "error": {"type": kind, "message": message}}))).into_response()
}

async fn messages(State(ai): State<LocalAi>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if headers.get("x-api-key").is_none() {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "x-api-key header is required");
    }
    if headers.get("anthropic-version").is_none() {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "anthropic-version header is required");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "the body is not JSON");
    };
    let prompt: String = request["messages"]
        .as_array()
        .map(|messages| messages.iter().filter_map(|m| m["content"].as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    if prompt.is_empty() || request["max_tokens"].as_u64().is_none() {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "messages and max_tokens are required");
    }
    let (mode, delay) = next(&ai);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match mode {
        Mode::RateLimited => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "Number of requests exceeded");
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return response;
        }
        Mode::Overloaded => {
            return error(
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "overloaded_error",
                "Overloaded",
            );
        }
        Mode::Failing => return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "Internal server error"),
        Mode::Normal | Mode::Slow => {}
    }
    let text = reply_to(request["system"].as_str().unwrap_or_default(), &prompt);
    let max_tokens = request["max_tokens"].as_u64().unwrap_or(1024);
    Json(json!({
        "id": format!("msg_local_{:016x}", fingerprint(&prompt)),
        "type": "message", "role": "assistant",
        "model": request["model"].as_str().unwrap_or("claude-local"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": tokens(&prompt) + tokens(request["system"].as_str().unwrap_or_default()),
                  "output_tokens": tokens(&text).min(max_tokens)},
    }))
    .into_response()
}

/// The same request always gets the same answer.
fn reply_to(system: &str, prompt: &str) -> String {
    let brief: String = prompt.split_whitespace().take(40).collect::<Vec<_>>().join(" ");
    let role = system.split('.').next().unwrap_or_default().trim();
    format!(
        "[local AI provider: a deterministic stand-in]\n{}Draft based on: {brief}\n\n1. Goals\n2. Scope\n3. Timeline",
        if role.is_empty() { String::new() } else { format!("As asked ({role}).\n") }
    )
}

/// About four characters a token, as a rough stand-in for the provider's count.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

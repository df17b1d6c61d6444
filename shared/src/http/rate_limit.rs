//! The request's rate limits, as learned in its first round trip, answered on every response in
//! the IETF `RateLimit-Policy` and `RateLimit` header fields
//! (draft-ietf-httpapi-ratelimit-headers): every limit that applied, and the one closest to
//! running out.

use std::sync::Mutex;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// One limit the request counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// `workspace`, `api_key` or `expensive`.
    pub policy: String,
    /// Requests per window.
    pub quota: u32,
    pub remaining: u32,
    /// Seconds until the limit is whole again.
    pub reset: u32,
}

/// The window of every limit, in seconds.
pub const WINDOW_SECONDS: u32 = 60;

tokio::task_local! {
    static QUOTAS: Mutex<Vec<Quota>>;
}

/// Notes the limits of the request being served (outside a request, nothing happens).
pub fn record(quotas: Vec<Quota>) {
    let _ = QUOTAS.try_with(|cell| {
        if let Ok(mut current) = cell.lock() {
            *current = quotas;
        }
    });
}

pub async fn layer(request: Request, next: Next) -> Response {
    let (mut response, quotas) = QUOTAS
        .scope(Mutex::new(Vec::new()), async {
            let response = next.run(request).await;
            let quotas = QUOTAS.with(|cell| cell.lock().map(|q| q.clone()).unwrap_or_default());
            (response, quotas)
        })
        .await;
    if let Some((policy, state)) = header_values(&quotas) {
        response.headers_mut().insert("ratelimit-policy", policy);
        response.headers_mut().insert("ratelimit", state);
    }
    response
}

fn header_values(quotas: &[Quota]) -> Option<(HeaderValue, HeaderValue)> {
    let nearest = quotas.iter().min_by_key(|q| (q.remaining, std::cmp::Reverse(q.reset)))?;
    let policy = quotas
        .iter()
        .map(|q| format!("\"{}\";q={};w={WINDOW_SECONDS}", q.policy, q.quota))
        .collect::<Vec<_>>()
        .join(", ");
    let state = format!("\"{}\";r={};t={}", nearest.policy, nearest.remaining, nearest.reset);
    Some((HeaderValue::from_str(&policy).ok()?, HeaderValue::from_str(&state).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_is_listed_and_the_nearest_to_running_out_is_the_state() {
        let quotas = [
            Quota { policy: "workspace".into(), quota: 600, remaining: 590, reset: 1 },
            Quota { policy: "expensive".into(), quota: 30, remaining: 2, reset: 56 },
        ];
        let (policy, state) = header_values(&quotas).unwrap();
        assert_eq!(policy, "\"workspace\";q=600;w=60, \"expensive\";q=30;w=60");
        assert_eq!(state, "\"expensive\";r=2;t=56");
        assert!(header_values(&[]).is_none());
    }
}

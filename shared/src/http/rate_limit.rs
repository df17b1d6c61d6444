//! The request's rate limits, as learned in its first round trip, answered on every response in
//! the IETF `RateLimit-Policy` and `RateLimit` header fields
//! (draft-ietf-httpapi-ratelimit-headers): every limit that applied, and the one closest to
//! running out.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::context::Quota;

/// The window of every limit, in seconds.
pub const WINDOW_SECONDS: u32 = 60;

pub async fn layer(request: Request, next: Next) -> Response {
    let (mut response, quotas) = crate::context::with_quotas(next.run(request)).await;
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

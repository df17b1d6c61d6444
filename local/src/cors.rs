//! The local stack's CORS, as API Gateway answers for the HTTP API when the stack's
//! `AllowedOrigins` is set: preflights answered before any route, the allowed origins echoed
//! with credentials allowed, the API's headers exposed (`shared::http::cors`). An origin not
//! on the list gets no CORS headers, so the browser keeps the answer from the page.

use axum::http::{HeaderName, HeaderValue, Method};
use shared::http::cors::{ALLOWED_HEADERS, ALLOWED_METHODS, EXPOSED_HEADERS, MAX_AGE_SECS};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Origins as `scheme://host[:port]`, exactly as browsers send them in `Origin`.
pub fn layer(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods(ALLOWED_METHODS.map(|method| Method::from_bytes(method.as_bytes()).expect("a method")))
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(MAX_AGE_SECS))
}

/// `ALLOWED_ORIGINS` (comma-separated) and the stack's own origins on `port`: a page the local
/// stack serves, or a front end a developer names, may call it.
pub fn origins(port: u16, allowed: Option<&str>) -> Vec<String> {
    let mut origins = vec![format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")];
    origins.extend(
        allowed
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty()),
    );
    origins.dedup();
    origins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_allows_its_own_origins_on_its_port_and_the_ones_named() {
        assert_eq!(
            origins(4000, Some(" https://app.example.test/, http://localhost:5173,")),
            ["http://127.0.0.1:4000", "http://localhost:4000", "https://app.example.test", "http://localhost:5173"]
        );
        assert_eq!(origins(3000, None), ["http://127.0.0.1:3000", "http://localhost:3000"]);
    }
}

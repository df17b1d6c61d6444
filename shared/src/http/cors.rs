//! What a browser on another origin may send to the API and read from its answers: the CORS
//! contract that the HTTP API's `CorsConfiguration` (template.yaml, from `AllowedOrigins`) and
//! the local stack's preflight answers both follow. A test holds the template to these lists.

/// The methods the routes use.
pub const ALLOWED_METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// The request headers a front end sends: the token or API key, JSON bodies, an idempotency key
/// (AI runs), its own request id.
pub const ALLOWED_HEADERS: [&str; 5] =
    ["authorization", "content-type", "idempotency-key", "x-api-key", "x-request-id"];

/// The answer headers a front end reads: the rate limits, when to retry, an idempotent replay,
/// the request id to quote to support.
pub const EXPOSED_HEADERS: [&str; 5] =
    ["ratelimit", "ratelimit-policy", "retry-after", "idempotent-replayed", "x-request-id"];

/// How long a browser may reuse a preflight's answer.
pub const MAX_AGE_SECS: u64 = 600;

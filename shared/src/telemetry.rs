//! Structured logs. JSON without timestamps on Lambda (CloudWatch adds them); the request span
//! adds request id, function, user and workspace to every line, and on Lambda every line also
//! lists its enclosing spans, the runtime's invocation span among them (its `requestId` and,
//! with active tracing, `xrayTraceId`). Tokens and secrets are never recorded: nothing logs
//! headers or configuration values.

use tracing_subscriber::EnvFilter;

pub fn init(function: &'static str) {
    crate::metrics::set_function(function);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("pretty"));
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if pretty {
        builder.try_init()
    } else if on_lambda {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(true).without_time().try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    };
    // A second init (tests, the local stack) keeps the first subscriber.
    if result.is_ok() {
        tracing::debug!(function, "telemetry initialised");
    }
}

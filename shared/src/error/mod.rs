//! The one error type at the HTTP edge, answered as RFC 9457 `application/problem+json`.
//!
//! Client mistakes carry a stable `code` and a `detail` a person can act on. Database and
//! unexpected errors are logged with their cause and answered with a bare 500 that leaks nothing.

mod database;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use database::{Constraint, is_connection_lost, suspended, with_constraints};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    /// An API key that is malformed, unknown, revoked or expired (each its own `code`).
    #[error("{detail}")]
    ApiKeyRejected { code: &'static str, detail: String },
    /// Too many requests for one of the caller's rate limits; retry after that many seconds.
    #[error("{detail}")]
    RateLimited { retry_after: u32, detail: String },
    #[error("{0}")]
    Forbidden(String),
    /// Refused for a reason with its own code (403).
    #[error("{detail}")]
    Denied { code: &'static str, detail: String },
    /// It existed and is no longer usable (410), e.g. an expired or revoked invitation.
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    /// The resource does not exist or row-level security hides it; both answer the same.
    #[error("No such {0}, or you cannot see it.")]
    NotFound(&'static str),
    #[error("The request has invalid fields; see `errors`.")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// A conflict with what must change first, one entry per thing (in `errors`).
    #[error("{detail}")]
    Blocked { code: &'static str, detail: String, errors: Vec<FieldError> },
    /// The workspace's plan does not allow more of something; upgrading does.
    #[error("{0}")]
    PlanLimitReached(String),
    /// The workspace's plan does not include a feature.
    #[error("{0}")]
    FeatureNotInPlan(String),
    #[error("{0}")]
    QuotaExceeded(String),
    /// Runs past the quota would cost more than the workspace's spending cap allows.
    #[error("{0}")]
    SpendingCapReached(String),
    #[error("The request body is larger than this API accepts.")]
    PayloadTooLarge,
    #[error("No such route.")]
    RouteNotFound,
    #[error("This route does not support that method.")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// An outside service (Stripe, the AI provider) failed in a way retrying will not fix.
    #[error("{detail}")]
    Upstream { code: &'static str, detail: String },
    #[error("{0}")]
    UpstreamTimeout(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// Row-level security re-checks the caller's role when a statement runs: a write it refused
    /// after the handler's own checks passed means the role changed while the request ran.
    pub fn role_changed() -> Self {
        Self::Forbidden("Your role changed while this request ran; it no longer allows this.".into())
    }

    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) | Self::ApiKeyRejected { .. } => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::Gone { .. } => StatusCode::GONE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } | Self::Blocked { .. } => StatusCode::CONFLICT,
            Self::PlanLimitReached(_) | Self::FeatureNotInPlan(_) => StatusCode::PAYMENT_REQUIRED,
            Self::QuotaExceeded(_) | Self::SpendingCapReached(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Validation(_) => "validation_failed",
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Blocked { code, .. }
            | Self::Upstream { code, .. }
            | Self::ApiKeyRejected { code, .. }
            | Self::Denied { code, .. }
            | Self::Gone { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::PlanLimitReached(_) => "plan_limit_reached",
            Self::FeatureNotInPlan(_) => "feature_not_in_plan",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::SpendingCapReached(_) => "spending_cap_reached",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::ServiceUnavailable(_) => "service_unavailable",
            Self::Database(_) | Self::Internal(_) => "internal_error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Database(_) | Self::Internal(_) => {
                "The server could not complete the request; it has been logged.".into()
            }
            other => other.to_string(),
        }
    }
}

/// Seconds a 503 asks the caller to wait: long enough for a pool to reconnect, short enough that
/// a client retrying through a Multi-AZ failover behind RDS Proxy (a few seconds) notices little.
pub const SERVICE_UNAVAILABLE_RETRY_AFTER: u32 = 2;

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        database::classify(error)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Database(source) => {
                tracing::error!(error = %source, cause = ?source, "database error")
            }
            Self::Internal(source) => {
                tracing::error!(error = %source, cause = ?source, "internal error")
            }
            Self::ServiceUnavailable(reason) => tracing::warn!(reason, "service unavailable"),
            _ => tracing::debug!(code = self.code(), "client error"),
        }
        let errors = match &self {
            Self::Validation(errors) | Self::Blocked { errors, .. } => errors.as_slice(),
            _ => &[],
        };
        let problem = Problem {
            kind: format!("/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code(),
            request_id: crate::context::current_request_id(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::RateLimited { retry_after, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        // Every 503 is a condition that passes (a busy or restarting database, a conflict, an
        // outside service): said so clients and API Gateway's callers retry, after a pause.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(SERVICE_UNAVAILABLE_RETRY_AFTER));
        }
        response
    }
}

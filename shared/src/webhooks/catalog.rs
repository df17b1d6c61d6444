//! What a workspace can subscribe an endpoint to, in which format, and which URLs it may name.

use serde::{Deserialize, Serialize};

use super::egress::{self, EgressError};

/// Every event type changes cause (written by the database's triggers, in the transaction of
/// the change); docs/messaging.md lists what each carries.
pub const EVENT_TYPES: [&str; 12] = [
    "project.created",
    "project.updated",
    "project.deleted",
    "deliverable.status_changed",
    "file.added",
    "file.deleted",
    "comment.created",
    "member.joined",
    "member.left",
    "subscription.updated",
    "ai_run.succeeded",
    "ai_run.failed",
];

/// The document's schema of an endpoint's `events`: event types from the catalog, at least one.
pub fn events_schema() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new().items(crate::openapi::schemas::one_of(&EVENT_TYPES)).min_items(Some(1))
}

/// The event `POST .../webhooks/{id}/test` sends, to that endpoint only.
pub const TEST_EVENT: &str = "webhook.test";

/// What a delivery's body is: the Standard Webhooks envelope, or a chat service's incoming
/// webhook message (best effort; the signature headers are sent all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Format {
    Standard,
    Slack,
    Discord,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Slack => "slack",
            Self::Discord => "discord",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("must be an absolute URL")]
    Malformed,
    #[error("must not carry credentials")]
    Credentials,
    #[error("must be at most {MAX_URL_CHARS} characters (as normalized)")]
    TooLong,
    #[error("{0}")]
    Refused(String),
}

/// The longest endpoint URL stored (the column's check), measured after normalization: parsing
/// may lengthen what was sent (a trailing `/`, percent-encoding, punycode).
pub const MAX_URL_CHARS: usize = 2048;

/// An endpoint URL as a tenant may register it: at most `MAX_URL_CHARS`, absolute, no user-info, `https` (plain `http`
/// to loopback only when local development allows it) and no literal address outside the
/// public internet. Names are checked again each time the dispatcher connects.
pub fn endpoint_url(raw: &str, allow_loopback_http: bool) -> Result<reqwest::Url, UrlError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| UrlError::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    if url.as_str().len() > MAX_URL_CHARS {
        return Err(UrlError::TooLong);
    }
    egress::check_url(&url, allow_loopback_http).map_err(|error| match error {
        EgressError::Scheme if allow_loopback_http => UrlError::Refused("must be https (or http to loopback)".into()),
        EgressError::Scheme => UrlError::Refused("must be https".into()),
        other => UrlError::Refused(other.to_string()),
    })?;
    Ok(url)
}

/// The event types of `requested` that are unknown (an endpoint must name only known ones).
pub fn unknown_events(requested: &[String]) -> Vec<&str> {
    requested.iter().map(String::as_str).filter(|e| !EVENT_TYPES.contains(e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert!(endpoint_url("https://hooks.example.com/in", false).is_ok());
        assert_eq!(endpoint_url("hooks.example.com", false), Err(UrlError::Malformed));
        assert_eq!(endpoint_url("https://u:p@hooks.example.com/", false), Err(UrlError::Credentials));
        assert!(matches!(endpoint_url("http://hooks.example.com/", false), Err(UrlError::Refused(_))));
        assert!(matches!(endpoint_url("https://169.254.169.254/latest", false), Err(UrlError::Refused(_))));
        assert!(matches!(endpoint_url("http://127.0.0.1:9000/", false), Err(UrlError::Refused(_))));
        assert!(endpoint_url("http://127.0.0.1:9000/", true).is_ok());
        // 2048 characters as sent, 2049 once parsing adds the path's `/`.
        let mut host = String::from("example.com");
        while "https://".len() + host.len() + 64 <= 2048 {
            host = format!("{}.{host}", "a".repeat(63));
        }
        host = format!("{}.{host}", "b".repeat(2048 - "https://".len() - host.len() - 1));
        let sent = format!("https://{host}");
        assert_eq!(sent.len(), 2048);
        assert_eq!(endpoint_url(&sent, false), Err(UrlError::TooLong));
    }

    #[test]
    fn unknown_event_types_are_named() {
        let asked = vec!["project.created".to_owned(), "project.exploded".to_owned()];
        assert_eq!(unknown_events(&asked), ["project.exploded"]);
    }
}

//! Extractors whose rejections are problem+json with stable codes, instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON body. Request types use `#[serde(deny_unknown_fields)]`, so a misspelt field is an error
/// naming the field rather than a silently ignored value.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType(
                "Send the body as JSON with Content-Type: application/json.".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

/// The client's `Idempotency-Key` header, if any: 1 to 200 visible ASCII characters.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, FieldError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
            .map(|k| Some(k.to_owned()))
            .ok_or_else(|| FieldError::new("Idempotency-Key", "must be 1 to 200 visible ASCII characters")),
    }
}

/// The raw request body, for payloads that must be verified byte for byte (webhooks).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state).await.map(RawBody).map_err(body_rejection)
    }
}

/// Parses JSON, naming the offending field on a type error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            malformed(&inner)
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::Validation(vec![FieldError::new(field, strip_position(&inner.to_string()))])
        }
    })?;
    // Trailing bytes after the value make the body malformed, not partially accepted.
    deserializer.end().map_err(|error| malformed(&error))?;
    Ok(parsed)
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::BadRequest { code: "malformed_json", detail: format!("The body is not valid JSON: {error}.") }
}

/// serde_json appends " at line 1 column 17", which means nothing to an API caller.
fn strip_position(message: &str) -> String {
    message.split(" at line ").next().unwrap_or(message).to_owned()
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest { code: "unreadable_body", detail: "The request body could not be read.".into() }
    }
}

/// Path parameters; a malformed id is the caller's mistake, answered 400 `invalid_path`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::BadRequest { code: "invalid_path", detail: rejection.body_text() })
    }
}

/// Query string parameters; unknown or malformed ones answer 400 `invalid_query`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|e| ApiError::BadRequest { code: "invalid_query", detail: format!("Invalid query string: {e}.") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: Option<u32>,
    }

    #[test]
    fn type_errors_name_the_field() {
        let Err(ApiError::Validation(errors)) = parse_json::<Body>(br#"{"name": 5}"#) else {
            panic!("expected validation")
        };
        assert_eq!(errors[0].field, "name");
        assert_eq!(errors[0].message, "invalid type: integer `5`, expected a string");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let Err(ApiError::Validation(errors)) = parse_json::<Body>(br#"{"name": "a", "nmae": 1}"#) else { panic!() };
        assert!(errors[0].message.contains("unknown field `nmae`"), "{errors:?}");
    }

    #[test]
    fn broken_json_is_malformed() {
        assert!(matches!(
            parse_json::<Body>(br#"{"name": "#),
            Err(ApiError::BadRequest { code: "malformed_json", .. })
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"name": "a"} trailing"#),
            Err(ApiError::BadRequest { code: "malformed_json", .. })
        ));
    }

    #[test]
    fn json_content_types() {
        use axum::http::HeaderValue;
        assert!(is_json(Some(&HeaderValue::from_static("application/json; charset=utf-8"))));
        assert!(is_json(Some(&HeaderValue::from_static("application/merge-patch+json"))));
        assert!(!is_json(Some(&HeaderValue::from_static("text/plain"))));
        assert!(!is_json(None));
    }
}

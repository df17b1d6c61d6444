//! Authentication: who is calling.
//!
//! Bearer JWTs are verified here even though API Gateway's JWT authorizer checked them already,
//! so local runs and a misconfigured gateway are just as safe. RS256/ES256 tokens are verified
//! against each configured OIDC issuer's JWKS (Cognito, Supabase, Auth0, ...); HS256 tokens with
//! a shared secret exist for local development only, compiled in only with the `dev` feature.

pub mod api_key;
#[cfg(feature = "dev")]
pub mod dev_token;
mod jwks;
mod verifier;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

pub use verifier::{AuthError, Authenticator};

use crate::app::AppState;
use crate::error::ApiError;

/// Namespace of the user ids derived from (issuer, subject); fixed forever, since ids are stored.
const USER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5a4c_0f0e_8d1b_4b9e_9c3a_6f1e_2d7b_8a01);

/// The verified caller of a request: a person (a verified token), or an API key (shape and
/// checksum verified here; the key itself is checked by the request's first statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Stable id derived from issuer and subject, so no lookup is needed to know it; for an API
    /// key, the key's own id (its principal).
    pub user_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub api_key: Option<api_key::PresentedKey>,
    /// The identity provider's groups (`cognito:groups` or `groups`) from a token of an OIDC
    /// issuer; never from a development (HS256) token, nor an API key.
    pub groups: Vec<String>,
    /// When the token stops being valid (its `exp`, Unix seconds); none for an API key, which
    /// is checked on every request.
    pub expires_at: Option<i64>,
}

impl Caller {
    pub fn new(issuer: String, subject: String, email: Option<String>) -> Self {
        Self {
            user_id: user_id_for(&issuer, &subject),
            issuer,
            subject,
            email,
            api_key: None,
            groups: Vec::new(),
            expires_at: None,
        }
    }

    pub fn for_api_key(key: api_key::PresentedKey) -> Self {
        Self {
            user_id: key.id,
            issuer: API_KEY_ISSUER.to_owned(),
            subject: key.id.to_string(),
            email: None,
            api_key: Some(key),
            groups: Vec::new(),
            expires_at: None,
        }
    }
}

/// The issuer recorded on an API key's user row.
pub const API_KEY_ISSUER: &str = "urn:saas:api-key";

/// The user id a token with this issuer and subject maps to.
pub fn user_id_for(issuer: &str, subject: &str) -> Uuid {
    Uuid::new_v5(&USER_ID_NAMESPACE, format!("{issuer}\n{subject}").as_bytes())
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(key) = presented_api_key(parts)? {
            let key = api_key::parse(key).map_err(|error| ApiError::ApiKeyRejected {
                code: "api_key_malformed",
                detail: format!("{}.", capitalized(&error.to_string())),
            })?;
            let caller = Caller::for_api_key(key);
            tracing::Span::current().record("user_id", tracing::field::display(caller.user_id));
            return Ok(caller);
        }
        let token = bearer_token(parts)?;
        let app = AppState::from_ref(state);
        let caller = app.auth.authenticate(token).await.map_err(|error| match error {
            AuthError::KeysUnavailable(reason) => {
                tracing::warn!(%reason, "identity provider keys unavailable");
                ApiError::ServiceUnavailable("The identity provider could not be reached; retry shortly.".into())
            }
            other => ApiError::Unauthenticated(other.to_string()),
        })?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.user_id));
        Ok(caller)
    }
}

/// An API key sent as `X-Api-Key: <key>` or `Authorization: Bearer sak_...`.
fn presented_api_key(parts: &Parts) -> Result<Option<&str>, ApiError> {
    if let Some(header) = parts.headers.get(API_KEY_HEADER) {
        let key =
            header.to_str().map_err(|_| ApiError::Unauthenticated("The X-Api-Key header is not valid text.".into()))?;
        return Ok(Some(key.trim()));
    }
    Ok(bearer_token(parts).ok().filter(|token| api_key::looks_like_key(token)))
}

pub const API_KEY_HEADER: &str = "x-api-key";

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthenticated("Send an Authorization: Bearer <token> header.".into()))?;
    let value =
        header.to_str().map_err(|_| ApiError::Unauthenticated("The Authorization header is not valid text.".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(ApiError::Unauthenticated("The Authorization header must be: Bearer <token>.".into())),
    }
}

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

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
pub use verifier::{AuthError, Authenticator};

pub use crate::caller::{API_KEY_ISSUER, Caller, user_id_for};
use crate::error::ApiError;

/// The caller of a request, from any state that can lend the token verifier.
impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
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
        let auth = Arc::<Authenticator>::from_ref(state);
        let caller = auth.authenticate(token).await.map_err(|error| match error {
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

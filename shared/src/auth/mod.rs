//! Authentication: who is calling.
//!
//! Bearer JWTs are verified here even though API Gateway's JWT authorizer checked them already,
//! so local runs and a misconfigured gateway are just as safe. RS256/ES256 tokens are verified
//! against each configured OIDC issuer's JWKS (Cognito, Supabase, Auth0, ...); HS256 tokens with
//! a shared secret exist for local development only.

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

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Stable id derived from issuer and subject, so no lookup is needed to know it.
    pub user_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
}

impl Caller {
    pub fn new(issuer: String, subject: String, email: Option<String>) -> Self {
        Self { user_id: user_id_for(&issuer, &subject), issuer, subject, email }
    }
}

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

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
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

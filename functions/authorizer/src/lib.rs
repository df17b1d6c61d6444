//! The `authorizer` function: API Gateway's Lambda request authorizer for the HTTP API. It lets
//! through a request whose `Authorization` header carries a token the identity provider signed
//! (verified as the functions verify it) or something shaped like an API key (`sak_...` with a
//! good checksum), and refuses everything else at the gateway, before any function runs.
//!
//! It never looks a key up: whether the key exists, is revoked or has expired is decided by the
//! function's first statement on every request, so a revocation takes effect at once even while
//! the gateway caches this answer (by the header's value, for `ReauthorizeEvery` seconds).

use aws_lambda_events::event::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use serde_json::{Value, json};
use shared::auth::{Authenticator, api_key};
use shared::config::{AuthConfig, Settings};

pub const FUNCTION: &str = "authorizer";

pub struct Authorizer {
    auth: Authenticator,
}

impl Authorizer {
    pub fn new(config: &AuthConfig) -> Self {
        Self { auth: Authenticator::new(config) }
    }

    /// The answer for one request: authorized or not, and what the functions may log about who.
    pub async fn decide(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        let header = request
            .identity_source
            .as_ref()
            .and_then(|sources| sources.first().cloned())
            .or_else(|| request.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned));
        let context = match header.as_deref().and_then(bearer) {
            Some(token) if api_key::looks_like_key(token) => match api_key::parse(token) {
                Ok(key) => Some(json!({"principal": "api_key", "id": key.id.to_string()})),
                Err(error) => {
                    tracing::info!(%error, "refused a malformed API key");
                    None
                }
            },
            Some(token) => match self.auth.authenticate(token).await {
                Ok(caller) => Some(json!({"principal": "user", "id": caller.user_id.to_string()})),
                Err(error) => {
                    tracing::info!(%error, "refused a token");
                    None
                }
            },
            None => None,
        };
        let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
        response.is_authorized = context.is_some();
        response.context = context.unwrap_or(Value::Null);
        response
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Reads the `AUTH_*` settings (the template's Globals, the same the functions read).
impl shared::runtime::FromSettings for Authorizer {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        Ok(Self::new(&AuthConfig::from_lookup(&|name: &str| settings.get(name))?))
    }
}

/// One authorizer request, as Lambda hands it over.
pub async fn handle(
    authorizer: &Authorizer,
    request: ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    authorizer.decide(&request).await
}

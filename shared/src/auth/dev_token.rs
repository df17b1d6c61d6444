//! Minting HS256 tokens for local development (`local-stack token`), never used in production:
//! production deployments configure only OIDC issuers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    iat: u64,
    exp: u64,
}

pub struct DevToken<'a> {
    pub secret: &'a str,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub ttl: Duration,
}

impl DevToken<'_> {
    pub fn mint(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = DevClaims {
            iss: self.issuer,
            sub: self.subject,
            aud: self.audience,
            email: self.email,
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(self.secret.as_bytes()))
    }
}

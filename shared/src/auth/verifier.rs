//! Verifies a bearer token: signature, `exp`/`nbf`, `iss` and `aud`.

use std::collections::HashSet;
use std::time::Duration;

#[cfg(feature = "dev")]
use jsonwebtoken::DecodingKey;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
#[cfg(feature = "dev")]
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::Caller;
use super::jwks::JwksCache;
use crate::config::AuthConfig;

/// Accepted audience of HS256 development tokens when `AUTH_AUDIENCES` is not set (`dev` only).
#[cfg(feature = "dev")]
pub const DEFAULT_DEV_AUDIENCE: &str = "saas-local";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The bearer token is not a well-formed JWT.")]
    Malformed,
    #[error("The token's signing algorithm is not accepted.")]
    UnsupportedAlgorithm,
    #[error("The token's issuer is not trusted.")]
    UntrustedIssuer,
    #[error("The token is signed with an unknown key.")]
    UnknownKey,
    #[error("The token's signature is invalid.")]
    InvalidSignature,
    #[error("The token has expired.")]
    Expired,
    #[error("The token is not valid yet.")]
    NotYetValid,
    #[error("The token is not meant for this API (audience).")]
    WrongAudience,
    #[error("The token lacks a required claim: {0}.")]
    MissingClaim(String),
    #[error("The token's {0} claim is not acceptable: {1}.")]
    InvalidClaim(&'static str, &'static str),
    #[error("The token is invalid.")]
    Invalid,
    #[error("The identity provider's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

struct OidcIssuer {
    issuer: String,
    jwks: JwksCache,
}

#[cfg(feature = "dev")]
struct Hs256 {
    key: DecodingKey,
    issuer: String,
}

/// OpenID Connect Core: a subject "MUST NOT exceed 255 ASCII characters in length".
pub const MAX_SUBJECT_CHARS: usize = 255;
/// An issuer is a URL matched against configuration; none configured is anywhere near this.
pub const MAX_ISSUER_CHARS: usize = 512;
/// RFC 5321: a path is at most 256 octets with its angle brackets, so an address at most 254.
pub const MAX_EMAIL_CHARS: usize = 254;

/// An identity claim is stored and indexed as it is: it must fit, and carry no control
/// characters (a NUL cannot be stored at all; the others only ever deceive a reader).
fn check_claim(name: &'static str, value: &str, max_chars: usize) -> Result<(), AuthError> {
    if value.chars().count() > max_chars {
        return Err(AuthError::InvalidClaim(name, "too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(AuthError::InvalidClaim(name, "control characters"));
    }
    Ok(())
}

/// Built once per execution environment; holds the JWKS caches.
pub struct Authenticator {
    oidc: Vec<OidcIssuer>,
    #[cfg(feature = "dev")]
    hs256: Option<Hs256>,
    audiences: HashSet<String>,
    leeway_secs: u64,
}

#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    /// NumericDate: seconds, which a few issuers write with a fraction. Required (the
    /// validation says so when it is missing).
    exp: Option<f64>,
    aud: Option<Audience>,
    /// Cognito access tokens carry the app client here instead of in `aud`.
    client_id: Option<String>,
    email: Option<String>,
    /// When the identity provider says the address is unverified, it is not used: invitations
    /// and member lookups match people by their e-mail.
    /// A boolean, or a string (older Cognito pools write "true"/"false").
    email_verified: Option<serde_json::Value>,
    #[serde(rename = "cognito:groups", default)]
    cognito_groups: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        // Only an OIDC issuer needs HTTPS; building the client loads the system's trust store
        // (a few milliseconds of a cold start), which a function without one never pays.
        let oidc = match config.oidc.as_slice() {
            [] => Vec::new(),
            issuers => {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(3))
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new());
                issuers
                    .iter()
                    .map(|c| OidcIssuer {
                        issuer: c.issuer.clone(),
                        jwks: JwksCache::new(c.jwks_url.clone(), http.clone()),
                    })
                    .collect()
            }
        };
        #[cfg_attr(not(feature = "dev"), allow(unused_mut))]
        let mut audiences: HashSet<String> = config.audiences.iter().cloned().collect();
        #[cfg(feature = "dev")]
        if audiences.is_empty() {
            audiences.insert(DEFAULT_DEV_AUDIENCE.to_owned());
        }
        Self {
            oidc,
            #[cfg(feature = "dev")]
            hs256: config.hs256.as_ref().map(|c| Hs256 {
                key: DecodingKey::from_secret(c.secret.expose_secret().as_bytes()),
                issuer: c.issuer.clone(),
            }),
            audiences,
            leeway_secs: config.leeway_secs,
        }
    }

    /// Fetches every OIDC issuer's keys now, during an execution environment's init, so the
    /// first request does not wait for the identity provider.
    pub async fn prefetch(&self) {
        // One issuer in practice (Cognito); a federated second one is rare enough to fetch after.
        for issuer in &self.oidc {
            issuer.jwks.prefetch().await;
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<UnverifiedIssuer>(token)
            .map_err(|_| AuthError::Malformed)?
            .iss
            .ok_or_else(|| AuthError::MissingClaim("iss".into()))?;

        let from_oidc = header.alg != Algorithm::HS256;
        // The key is chosen by the issuer's configuration, never by the token alone, so an
        // attacker cannot pick HS256 with a public key as the secret (algorithm confusion).
        let (key, algorithm) = match header.alg {
            #[cfg(feature = "dev")]
            Algorithm::HS256 => {
                let hs = self.hs256.as_ref().filter(|hs| hs.issuer == issuer).ok_or(AuthError::UntrustedIssuer)?;
                (std::borrow::Cow::Borrowed(&hs.key), Algorithm::HS256)
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::ES256
            | Algorithm::ES384 => {
                let oidc = self.oidc.iter().find(|o| o.issuer == issuer).ok_or(AuthError::UntrustedIssuer)?;
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                let found =
                    oidc.jwks.key(kid).await.map_err(AuthError::KeysUnavailable)?.ok_or(AuthError::UnknownKey)?;
                if found.algorithm != header.alg {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                (std::borrow::Cow::Owned((*found.key).clone()), found.algorithm)
            }
            _ => return Err(AuthError::UnsupportedAlgorithm),
        };

        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below, to accept Cognito's client_id
        validation.set_issuer(&[&issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.into_kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::InvalidSignature,
                ErrorKind::InvalidAlgorithm => AuthError::UnsupportedAlgorithm,
                ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    AuthError::Malformed
                }
                _ => AuthError::Invalid,
            })?
            .claims;

        let audience_ok = match &claims.aud {
            Some(Audience::One(aud)) => self.audiences.contains(aud),
            Some(Audience::Many(auds)) => auds.iter().any(|aud| self.audiences.contains(aud)),
            None => claims.client_id.as_ref().is_some_and(|id| self.audiences.contains(id)),
        };
        if !audience_ok {
            return Err(AuthError::WrongAudience);
        }
        if claims.sub.is_empty() {
            return Err(AuthError::MissingClaim("sub".into()));
        }
        check_claim("sub", &claims.sub, MAX_SUBJECT_CHARS)?;
        check_claim("iss", &claims.iss, MAX_ISSUER_CHARS)?;
        if let Some(email) = &claims.email {
            check_claim("email", email, MAX_EMAIL_CHARS)?;
        }
        let unverified = matches!(&claims.email_verified, Some(serde_json::Value::Bool(false)))
            || matches!(&claims.email_verified, Some(serde_json::Value::String(s)) if s == "false");
        let email = claims.email.filter(|e| !e.is_empty() && !unverified);
        let mut caller = Caller::new(claims.iss, claims.sub, email);
        caller.expires_at = claims.exp.map(|exp| exp as i64);
        // Groups grant platform roles, so only a real identity provider's count.
        if from_oidc {
            caller.groups = claims.cognito_groups.into_iter().chain(claims.groups).collect();
        }
        Ok(caller)
    }
}

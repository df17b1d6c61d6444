//! Who is calling, once verified: a person (from a token) or an API key (from its shape and
//! checksum; the key itself is checked by the request's first statement). A leaf: the database
//! code, the HTTP layer and authentication all read it, and it reads none of them.

use uuid::Uuid;

/// A key as presented by a caller, checked for shape and checksum (not yet against the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub id: Uuid,
    pub secret_hash: [u8; 32],
}

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
    pub api_key: Option<PresentedKey>,
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

    pub fn for_api_key(key: PresentedKey) -> Self {
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

//! The preview token: what a preview showed, signed, so the change applied is exactly the one
//! the customer saw. Stateless (nothing is stored per preview): the claims travel in the token,
//! base64url JSON, with an HMAC-SHA256 over them under the billing state's signing key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use shared::plans::Interval;
use uuid::Uuid;

use super::Effective;

/// How long a preview can be confirmed: long enough to read it, short enough that the prorated
/// amount (pinned to the preview's time) is still what a customer expects to pay.
pub const LIFETIME_SECS: i64 = 15 * 60;

/// Everything the preview was computed from and what it came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub workspace: Uuid,
    pub subscription: String,
    pub item: String,
    /// The subscription as it was: its price, quantity and period end.
    pub from_price: String,
    pub from_quantity: u64,
    pub period_end: i64,
    /// The change: plan, interval, price and quantity, when it applies and, when it applies
    /// now, the proration date pinned in Stripe's preview.
    pub plan: String,
    pub interval: Interval,
    pub price: String,
    pub quantity: u64,
    pub effective: Effective,
    pub proration_date: Option<i64>,
    /// What the preview said would be due, and in which currency.
    pub amount_due: i64,
    pub currency: String,
    /// Unix seconds.
    pub expires: i64,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this API signed (or for another workspace): the caller's mistake.
    #[error("not a preview this API issued for this workspace")]
    Invalid,
    #[error("the preview expired")]
    Expired,
}

pub fn sign(claims: &Claims, key: &[u8; 32]) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mac = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
    format!("{payload}.{mac}")
}

/// The claims of a token this key signed, for `workspace`, not expired at `now`.
pub fn verify(token: &str, key: &[u8; 32], workspace: Uuid, now: i64) -> Result<Claims, TokenError> {
    let (payload, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
    // Checked before anything is parsed, in constant time.
    mac(key, payload).verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
    if claims.workspace != workspace {
        return Err(TokenError::Invalid);
    }
    if now >= claims.expires {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The token's digest: the idempotency of applying it (a retried confirmation asks Stripe once).
pub fn digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&Sha256::digest(token.as_bytes())[..16])
}

fn mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(workspace: Uuid) -> Claims {
        Claims {
            workspace,
            subscription: "sub_1".into(),
            item: "si_1".into(),
            from_price: "price_pro_monthly".into(),
            from_quantity: 1,
            period_end: 1_800_000_000,
            plan: "studio".into(),
            interval: Interval::Year,
            price: "price_studio_yearly".into(),
            quantity: 1,
            effective: Effective::Now,
            proration_date: Some(1_799_000_000),
            amount_due: 95_100,
            currency: "usd".into(),
            expires: 1_799_000_900,
        }
    }

    #[test]
    fn a_signed_token_verifies_for_its_workspace_until_it_expires() {
        let (key, ws) = ([7u8; 32], Uuid::now_v7());
        let token = sign(&claims(ws), &key);
        assert_eq!(verify(&token, &key, ws, 1_799_000_000), Ok(claims(ws)));
        assert_eq!(verify(&token, &key, ws, 1_799_000_900), Err(TokenError::Expired));
        assert_eq!(verify(&token, &key, Uuid::now_v7(), 1_799_000_000), Err(TokenError::Invalid));
        assert_eq!(verify(&token, &[8u8; 32], ws, 1_799_000_000), Err(TokenError::Invalid));
    }

    #[test]
    fn a_changed_or_malformed_token_is_invalid() {
        let (key, ws) = ([7u8; 32], Uuid::now_v7());
        let token = sign(&claims(ws), &key);
        let (payload, mac) = token.split_once('.').unwrap();
        let mut cheaper = claims(ws);
        cheaper.amount_due = 1;
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cheaper).unwrap()));
        for bad in
            [forged.as_str(), payload, "", ".", "a.b", &format!("{payload}.{mac}x"), &format!("{payload}x.{mac}")]
        {
            assert_eq!(verify(bad, &key, ws, 1_799_000_000), Err(TokenError::Invalid), "{bad}");
        }
    }
}

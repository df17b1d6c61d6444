//! Standard Webhooks signatures (https://www.standardwebhooks.com): the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers, the last being `v1,` + base64 of
//! HMAC-SHA256 over `{id}.{timestamp}.{body}` with the endpoint's secret (`whsec_` + base64 of
//! its bytes). Receivers verify with the specification's libraries. Several signatures may be
//! sent, space-separated, while a rotated secret's old value is still accepted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a webhook signing secret (whsec_ and base64)")]
pub struct MalformedSecret;

impl SigningSecret {
    /// A fresh secret of 32 random bytes.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    pub fn parse(text: &str) -> Result<Self, MalformedSecret> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(MalformedSecret)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| MalformedSecret)?;
        if bytes.is_empty() { Err(MalformedSecret) } else { Ok(Self(bytes)) }
    }

    /// The secret as shown to the endpoint's owner (once) and stored.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The three headers of one delivery: the current secret's signature first, then the previous
/// secret's while a rotation overlaps.
pub fn headers(
    message_id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: &[&SigningSecret],
) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = secrets.iter().map(|s| s.sign(message_id, timestamp, body)).collect();
    [
        ("webhook-id", message_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures.join(" ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (also what its reference libraries check against).
    #[test]
    fn signs_the_specifications_example() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = SigningSecret::generate().unwrap();
        assert_eq!(SigningSecret::parse(&secret.to_text()).unwrap(), secret);
        for bad in ["", "whsec_", "whsec_***", "sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert_eq!(SigningSecret::parse(bad), Err(MalformedSecret), "{bad}");
        }
        assert!(!format!("{secret:?}").contains(&secret.to_text()[6..]));
    }

    #[test]
    fn a_rotation_sends_both_signatures() {
        let (new, old) = (SigningSecret::generate().unwrap(), SigningSecret::generate().unwrap());
        let [_, _, (_, signature)] = headers("msg_1", 1, b"{}", &[&new, &old]);
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts, [new.sign("msg_1", 1, b"{}"), old.sign("msg_1", 1, b"{}")]);
    }
}

//! Verifies Stripe's `Stripe-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...]`,
//! where each v1 is the HMAC of `"<t>.<raw body>"` under an endpoint signing secret. Any v1
//! matching any configured secret passes (Stripe sends several while a secret is rolled), and
//! the timestamp must be within the tolerance in either direction.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    #[error("the signature timestamp is outside the tolerance")]
    OutsideTolerance,
    #[error("no signature matches")]
    Mismatch,
}

pub struct Verifier {
    secrets: Vec<SecretString>,
    tolerance_secs: i64,
}

impl Verifier {
    pub fn new(secrets: Vec<SecretString>, tolerance_secs: i64) -> Self {
        Self { secrets, tolerance_secs }
    }

    pub fn verify(&self, payload: &[u8], header: Option<&str>, now_secs: i64) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
            match key {
                "t" if timestamp.is_none() => {
                    timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
                }
                "t" => return Err(SignatureError::Malformed),
                // A v1 that is not hex cannot match; skipping it lets another one match.
                "v1" => signatures.extend(hex::decode(value).ok()),
                _ => {} // other schemes (v0 test signatures) are ignored, as Stripe's libraries do
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if signatures.is_empty() {
            return Err(SignatureError::NoSignature);
        }
        if (now_secs - timestamp).abs() > self.tolerance_secs {
            return Err(SignatureError::OutsideTolerance);
        }
        let signed_prefix = format!("{timestamp}.");
        for secret in &self.secrets {
            for signature in &signatures {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else { continue };
                mac.update(signed_prefix.as_bytes());
                mac.update(payload);
                // verify_slice compares in constant time.
                if mac.verify_slice(signature).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(SignatureError::Mismatch)
    }
}

/// Signs a payload as Stripe does (for tests and local tools such as `local-stack`).
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(secrets.iter().map(|s| SecretString::from(s.to_string())).collect(), 300)
    }

    fn header(t: i64, signatures: &[String]) -> String {
        let mut header = format!("t={t}");
        for s in signatures {
            header.push_str(&format!(",v1={s}"));
        }
        header
    }

    #[test]
    fn a_valid_signature_passes() {
        let h = header(NOW, &[sign("whsec_a", NOW, BODY)]);
        assert_eq!(verifier(&["whsec_a"]).verify(BODY, Some(&h), NOW), Ok(()));
    }

    #[test]
    fn the_wrong_secret_fails() {
        let h = header(NOW, &[sign("whsec_other", NOW, BODY)]);
        assert_eq!(verifier(&["whsec_a"]).verify(BODY, Some(&h), NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_tampered_body_fails() {
        let h = header(NOW, &[sign("whsec_a", NOW, BODY)]);
        let tampered = br#"{"id":"evt_1","type":"invoice.paid "}"#;
        assert_eq!(verifier(&["whsec_a"]).verify(tampered, Some(&h), NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_and_future_timestamps_fail_but_the_edges_pass() {
        let v = verifier(&["whsec_a"]);
        for (t, ok) in [(NOW - 301, false), (NOW - 300, true), (NOW + 300, true), (NOW + 301, false)] {
            let h = header(t, &[sign("whsec_a", t, BODY)]);
            assert_eq!(v.verify(BODY, Some(&h), NOW).is_ok(), ok, "t = now {:+}", t - NOW);
        }
    }

    #[test]
    fn a_re_signed_timestamp_cannot_be_swapped_in() {
        let h = format!("t={},v1={}", NOW, sign("whsec_a", NOW - 1000, BODY));
        assert_eq!(verifier(&["whsec_a"]).verify(BODY, Some(&h), NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_and_malformed_headers_fail() {
        let v = verifier(&["whsec_a"]);
        assert_eq!(v.verify(BODY, None, NOW), Err(SignatureError::Missing));
        assert_eq!(v.verify(BODY, Some("garbage"), NOW), Err(SignatureError::Malformed));
        assert_eq!(v.verify(BODY, Some("t=abc,v1=00"), NOW), Err(SignatureError::Malformed));
        assert_eq!(
            v.verify(BODY, Some(&format!("v1={}", sign("whsec_a", NOW, BODY))), NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(v.verify(BODY, Some(&format!("t={NOW}")), NOW), Err(SignatureError::NoSignature));
        assert_eq!(v.verify(BODY, Some(&format!("t={NOW},v0=abc")), NOW), Err(SignatureError::NoSignature));
        assert_eq!(v.verify(BODY, Some(&format!("t={NOW},t={NOW},v1=00")), NOW), Err(SignatureError::Malformed));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let h = header(NOW, &["zz-not-hex".into(), sign("whsec_old", NOW, BODY), sign("whsec_a", NOW, BODY)]);
        assert_eq!(verifier(&["whsec_a"]).verify(BODY, Some(&h), NOW), Ok(()));
    }

    #[test]
    fn both_secrets_are_accepted_during_rotation() {
        let v = verifier(&["whsec_new", "whsec_old"]);
        for secret in ["whsec_new", "whsec_old"] {
            let h = header(NOW, &[sign(secret, NOW, BODY)]);
            assert_eq!(v.verify(BODY, Some(&h), NOW), Ok(()), "{secret}");
        }
    }
}

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

/// At most this many `v1` values are considered: Stripe sends one per active signing secret (two
/// while one is rolled), so a header with more is not Stripe's and is refused before any HMAC.
pub const MAX_SIGNATURES: usize = 8;
/// A header longer than this is not Stripe's (a timestamp and a few 64-digit signatures).
pub const MAX_HEADER_BYTES: usize = 1024;

pub struct Verifier {
    secrets: Vec<SecretString>,
    tolerance_secs: u64,
}

/// The header's parts: one timestamp and the `v1` signatures that are well-formed hex.
struct SignatureHeader {
    timestamp: i64,
    signatures: Vec<[u8; 32]>,
}

impl SignatureHeader {
    fn parse(header: &str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(SignatureError::Malformed);
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        let mut v1_values = 0;
        for part in header.split(',') {
            let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
            match key {
                "t" if timestamp.is_none() => {
                    timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
                }
                "t" => return Err(SignatureError::Malformed),
                "v1" => {
                    v1_values += 1;
                    if v1_values > MAX_SIGNATURES {
                        return Err(SignatureError::Malformed);
                    }
                    // A v1 that is not a 32-byte hex digest cannot match; skipping it lets
                    // another one match.
                    let mut digest = [0u8; 32];
                    if hex::decode_to_slice(value, &mut digest).is_ok() {
                        signatures.push(digest);
                    }
                }
                _ => {} // other schemes (v0 test signatures) are ignored, as Stripe's libraries do
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if signatures.is_empty() {
            return Err(SignatureError::NoSignature);
        }
        Ok(Self { timestamp, signatures })
    }
}

impl Verifier {
    pub fn new(secrets: Vec<SecretString>, tolerance_secs: i64) -> Self {
        Self { secrets, tolerance_secs: tolerance_secs.unsigned_abs() }
    }

    /// Cheap checks first (the header's shape, the timestamp), then one HMAC over the body per
    /// configured secret, compared with every signature in constant time: what a request costs
    /// does not grow with the number of signatures it carries.
    pub fn verify(&self, payload: &[u8], header: Option<&str>, now_secs: i64) -> Result<(), SignatureError> {
        let header = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
        // abs_diff cannot overflow, whatever timestamp a stranger sends.
        if now_secs.abs_diff(header.timestamp) > self.tolerance_secs {
            return Err(SignatureError::OutsideTolerance);
        }
        let signed_prefix = format!("{}.", header.timestamp);
        for secret in &self.secrets {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else { continue };
            mac.update(signed_prefix.as_bytes());
            mac.update(payload);
            let expected = mac.finalize().into_bytes();
            // Every signature is compared, in constant time, so the answer's timing tells nothing.
            let matched = header
                .signatures
                .iter()
                .fold(0u8, |found, signature| found | u8::from(constant_time_eq(&expected, signature)));
            if matched == 1 {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Signs a payload as Stripe does: the local Stripe and the tests (`dev` only; no deployed
/// function signs Stripe's events).
#[cfg(any(test, feature = "dev"))]
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
    fn extreme_timestamps_are_refused_without_overflow() {
        let v = verifier(&["whsec_a"]);
        for t in [i64::MIN, i64::MAX, -1, 0] {
            let h = header(t, &[sign("whsec_a", NOW, BODY)]);
            assert_eq!(v.verify(BODY, Some(&h), NOW), Err(SignatureError::OutsideTolerance), "t = {t}");
        }
        let h = format!("t=-9223372036854775808,v1={}", "0".repeat(64));
        assert_eq!(v.verify(BODY, Some(&h), i64::MAX), Err(SignatureError::OutsideTolerance));
    }

    #[test]
    fn more_signatures_than_stripe_sends_are_refused_before_any_hmac() {
        let v = verifier(&["whsec_a"]);
        let many: Vec<String> = (0..MAX_SIGNATURES).map(|i| format!("{i:064x}")).collect();
        let mut with_valid = many.clone();
        with_valid[MAX_SIGNATURES - 1] = sign("whsec_a", NOW, BODY);
        assert_eq!(v.verify(BODY, Some(&header(NOW, &with_valid)), NOW), Ok(()), "up to the bound, any may match");
        let mut too_many = many;
        too_many.push(sign("whsec_a", NOW, BODY));
        assert_eq!(v.verify(BODY, Some(&header(NOW, &too_many)), NOW), Err(SignatureError::Malformed));
        let padded = format!("t={NOW},v1={},x={}", sign("whsec_a", NOW, BODY), "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(v.verify(BODY, Some(&padded), NOW), Err(SignatureError::Malformed));
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

//! API keys: `sak_` + the key's id (22 base62 characters) + 43 random base62 characters (256
//! bits) + a CRC-32 of everything before it (6 base62 characters), 75 characters in all. The way
//! GitHub's and Stripe's tokens are built: a prefix secret scanners can match
//! (`sak_[0-9A-Za-z]{71}`), and a checksum that lets the server refuse a mistyped or truncated
//! key before any database lookup. Only the SHA-256 of the whole key is stored. The id in the
//! key is not secret (it is the key's principal id, shown in the audit log).

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::caller::PresentedKey;

pub const PREFIX: &str = "sak_";
const ID_LEN: usize = 22;
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// How much of a key is shown back to people to recognise it.
pub const DISPLAY_LEN: usize = PREFIX.len() + 8;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly made key: the only time its text exists.
pub struct NewKey {
    pub id: Uuid,
    pub text: String,
    pub display_prefix: String,
    pub secret_hash: [u8; 32],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKey {
    #[error("the API key does not have the shape of one (sak_ and 71 letters or digits)")]
    Shape,
    #[error("the API key's checksum does not match: it was mistyped or cut short")]
    Checksum,
}

/// Whether a credential is meant as an API key (and should be judged as one).
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

/// `len` uniformly random base62 characters (43 carry 256 bits).
pub fn random_base62(len: usize) -> Result<String, getrandom::Error> {
    let mut text = String::with_capacity(len);
    // Rejection sampling keeps every character uniform (248 = 4 * 62).
    let mut buffer = [0u8; 64];
    while text.len() < len {
        getrandom::fill(&mut buffer)?;
        for byte in buffer.iter().filter(|b| **b < 248) {
            if text.len() < len {
                text.push(BASE62[usize::from(*byte % 62)] as char);
            }
        }
    }
    Ok(text)
}

/// SHA-256 of a secret token, as stored in place of it.
pub fn hash_token(text: &str) -> [u8; 32] {
    hash(text)
}

pub fn generate() -> Result<NewKey, getrandom::Error> {
    let id = Uuid::now_v7();
    let secret = random_base62(SECRET_LEN)?;
    let body = format!("{PREFIX}{}{secret}", base62(id.as_u128(), ID_LEN));
    let text = format!("{body}{}", base62(u128::from(crc32(body.as_bytes())), CHECKSUM_LEN));
    Ok(NewKey { id, display_prefix: text[..DISPLAY_LEN].to_owned(), secret_hash: hash(&text), text })
}

/// Checks a presented key's shape and checksum; no secret comparison happens here.
pub fn parse(text: &str) -> Result<PresentedKey, MalformedKey> {
    if text.len() != KEY_LEN
        || !text.starts_with(PREFIX)
        || !text[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(MalformedKey::Shape);
    }
    let (body, checksum) = text.split_at(KEY_LEN - CHECKSUM_LEN);
    if decode62(checksum) != Some(u128::from(crc32(body.as_bytes()))) {
        return Err(MalformedKey::Checksum);
    }
    let id = decode62(&body[PREFIX.len()..PREFIX.len() + ID_LEN]).ok_or(MalformedKey::Shape)?;
    Ok(PresentedKey { id: Uuid::from_u128(id), secret_hash: hash(text) })
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn base62(mut value: u128, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(digits).unwrap_or_default()
}

fn decode62(text: &str) -> Option<u128> {
    text.bytes().try_fold(0u128, |value, byte| {
        let digit = BASE62.iter().position(|c| *c == byte)? as u128;
        value.checked_mul(62)?.checked_add(digit)
    })
}

/// CRC-32 (IEEE 802.3), as GitHub's token checksums use.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, byte| {
        (0..8).fold(crc ^ u32::from(*byte), |crc, _| if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_generated_key_parses_back_to_its_id_and_hash() {
        let key = generate().unwrap();
        assert_eq!(key.text.len(), KEY_LEN);
        assert!(key.text.starts_with("sak_") && key.text[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(key.display_prefix, key.text[..12]);
        let parsed = parse(&key.text).unwrap();
        assert_eq!((parsed.id, parsed.secret_hash), (key.id, key.secret_hash));
        assert_ne!(generate().unwrap().text, key.text);
    }

    #[test]
    fn a_mistyped_or_cut_key_is_refused_before_any_lookup() {
        let key = generate().unwrap().text;
        assert_eq!(parse(&key[..KEY_LEN - 1]), Err(MalformedKey::Shape));
        assert_eq!(parse(&format!("{key}x")), Err(MalformedKey::Shape));
        assert_eq!(parse(&key.replacen("sak_", "sk_x", 1)), Err(MalformedKey::Shape));
        // One character changed anywhere in the body breaks the checksum.
        for at in [4, 20, 40, 68] {
            let mut bytes = key.clone().into_bytes();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            assert_eq!(parse(&String::from_utf8(bytes).unwrap()), Err(MalformedKey::Checksum), "at {at}");
        }
        let mut wrong = key.into_bytes();
        wrong[50] = b'-';
        assert_eq!(parse(&String::from_utf8(wrong).unwrap()), Err(MalformedKey::Shape));
    }
}

//! A browser's upload straight to S3: the fields of an HTML form signed with a POST policy
//! (AWS Signature Version 4). The AWS SDK for Rust presigns GET and PUT requests but not POST
//! forms, and only a POST policy lets S3 itself refuse an upload of another size
//! (`content-length-range`), another content type or to another key. The signature is SigV4's
//! key derivation and one HMAC over the base64 policy (checked against AWS's published example).

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::format_description;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The credentials that sign the form: the function's own (its role's temporary credentials on
/// Lambda, with their session token).
pub struct SigningCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<String>,
}

/// One upload the form allows: exactly this key, content type and size, until `expires_at`.
pub struct Upload<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    pub size: u64,
    pub expires_at: OffsetDateTime,
    /// The object's tags as S3's `Tagging` XML, set by the upload itself (e.g. the tag the
    /// bucket's lifecycle rule expires unconfirmed uploads by).
    pub tagging: Option<&'a str>,
}

/// Where the browser posts the form, and the fields it sends before the file (the file field
/// comes last, named `file`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedForm {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// Signs the form for `upload`, posted to `bucket_url` (the bucket's endpoint: virtual-hosted
/// on AWS, path-style on a local S3).
pub fn sign(
    upload: &Upload<'_>,
    credentials: &SigningCredentials,
    region: &str,
    bucket_url: &str,
    now: OffsetDateTime,
) -> SignedForm {
    let date = now.format(format_description!("[year][month][day]")).expect("a formattable date");
    let timestamp =
        now.format(format_description!("[year][month][day]T[hour][minute][second]Z")).expect("a formattable time");
    let credential = format!("{}/{date}/{region}/s3/aws4_request", credentials.access_key_id);
    let mut fields = BTreeMap::from([
        ("key".to_owned(), upload.key.to_owned()),
        ("Content-Type".to_owned(), upload.content_type.to_owned()),
        ("x-amz-algorithm".to_owned(), ALGORITHM.to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), timestamp),
    ]);
    if let Some(token) = &credentials.session_token {
        fields.insert("x-amz-security-token".to_owned(), token.clone());
    }
    if let Some(tagging) = upload.tagging {
        fields.insert("tagging".to_owned(), tagging.to_owned());
    }
    // Every field the form sends is pinned by an exact condition, and the size by a range of one.
    let mut conditions: Vec<Value> = vec![json!({ "bucket": upload.bucket })];
    conditions.extend(fields.iter().map(|(name, value)| json!({ name: value })));
    conditions.push(json!(["content-length-range", upload.size, upload.size]));
    let expiration = upload
        .expires_at
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z"))
        .expect("a formattable time");
    let policy = base64::engine::general_purpose::STANDARD
        .encode(json!({ "expiration": expiration, "conditions": conditions }).to_string());
    let signature = signature(&policy, credentials.secret_access_key.expose_secret(), &date, region);
    fields.insert("policy".to_owned(), policy);
    fields.insert("x-amz-signature".to_owned(), signature);
    SignedForm { url: bucket_url.to_owned(), fields }
}

/// SigV4: the signing key derived from the secret, the day, the region and the service, and the
/// HMAC of the string to sign (for a POST form, the base64 policy itself), in hex.
fn signature(policy: &str, secret: &str, date: &str, region: &str) -> String {
    let key = [date, region, "s3", "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |key, part| hmac(&key, part.as_bytes()));
    hex::encode(hmac(&key, policy.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example (Amazon S3 API Reference, "Example: Browser-Based Upload using
    /// HTTP POST (Using AWS Signature Version 4)"): its base64 policy, signed with its example
    /// credentials on 2015-12-29 in us-east-1.
    #[test]
    fn the_signature_matches_aws_published_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAg\
                      ICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAi\
                      dXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25f\
                      cmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxf\
                      dXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQog\
                      ICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRl\
                      LWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAi\
                      Il0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMt\
                      ZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEy\
                      NTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        assert_eq!(
            signature(policy, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20151229", "us-east-1"),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    fn signed(session_token: Option<&str>) -> SignedForm {
        let credentials = SigningCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: session_token.map(str::to_owned),
        };
        let now = time::macros::datetime!(2026-12-07 13:45:09 UTC);
        let upload = Upload {
            bucket: "files-bucket",
            key: "workspaces/w1/files/f1",
            content_type: "image/png",
            size: 2048,
            expires_at: now + time::Duration::minutes(10),
            tagging: Some("<Tagging><TagSet><Tag><Key>upload</Key><Value>pending</Value></Tag></TagSet></Tagging>"),
        };
        sign(&upload, &credentials, "eu-west-1", "https://files-bucket.s3.eu-west-1.amazonaws.com", now)
    }

    #[test]
    fn the_policy_pins_every_field_the_form_sends_and_the_exact_size() {
        let form = signed(Some("session-token"));
        let policy: Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(&form.fields["policy"]).unwrap())
                .unwrap();
        assert_eq!(policy["expiration"], "2026-12-07T13:55:09.000Z");
        let conditions = policy["conditions"].as_array().unwrap();
        assert!(conditions.contains(&json!({"bucket": "files-bucket"})));
        assert!(conditions.contains(&json!(["content-length-range", 2048, 2048])));
        for (name, value) in
            form.fields.iter().filter(|(name, _)| !["policy", "x-amz-signature"].contains(&name.as_str()))
        {
            assert!(conditions.contains(&json!({ name: value })), "{name} is not pinned: {policy}");
        }
        assert_eq!(form.fields["x-amz-credential"], "AKIDEXAMPLE/20261207/eu-west-1/s3/aws4_request");
        assert_eq!(form.fields["x-amz-date"], "20261207T134509Z");
        assert_eq!(form.fields["x-amz-security-token"], "session-token");
        assert!(form.fields["tagging"].contains("<Key>upload</Key>"));
        assert_eq!(form.fields["x-amz-signature"].len(), 64);
        assert!(!signed(None).fields.contains_key("x-amz-security-token"));
    }
}

//! The gateway's Lambda authorizer: a signed token or a well-formed API key passes; anything
//! else is refused before a function runs. Keys are not looked up here (the functions do that on
//! every request, so a revoked key is refused even while the gateway caches this answer).

use aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use integration_tests::{HS256_ISSUER, HS256_SECRET, mint};
use serde_json::json;
use std::time::Duration;

fn authorizer() -> authorizer::Authorizer {
    let settings = [("AUTH_HS256_SECRET", HS256_SECRET), ("AUTH_HS256_ISSUER", HS256_ISSUER)];
    let lookup = |name: &str| settings.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    authorizer::Authorizer::new(&shared::config::AuthConfig::from_lookup(&lookup).unwrap())
}

fn request(authorization: Option<&str>) -> ApiGatewayV2CustomAuthorizerV2Request {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/authorizer-request.json");
    let mut event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    event["identitySource"] = json!(null);
    event["headers"] = json!({});
    if let Some(value) = authorization {
        event["identitySource"] = json!([value]);
        event["headers"]["authorization"] = json!(value);
    }
    serde_json::from_value(event).unwrap()
}

#[tokio::test]
async fn signed_tokens_and_well_formed_keys_pass_and_nothing_else() {
    let authorizer = authorizer();
    let token = mint("someone", Some("someone@example.test"), Duration::from_secs(60));
    let key = shared::auth::api_key::generate().unwrap();
    let passed = authorizer.decide(&request(Some(&format!("Bearer {token}")))).await;
    assert!(passed.is_authorized);
    assert_eq!(passed.context["principal"], "user");
    let passed = authorizer.decide(&request(Some(&format!("Bearer {}", key.text)))).await;
    assert!(passed.is_authorized);
    assert_eq!(passed.context, json!({"principal": "api_key", "id": key.id.to_string()}));

    let mut typo = key.text.clone();
    typo.replace_range(40..41, if &typo[40..41] == "a" { "b" } else { "a" });
    for refused in [
        None,
        Some("Bearer".to_owned()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {typo}")),
        Some(format!("Bearer {}", &key.text[..40])),
        Some(format!("Bearer {token}x")),
        Some("Bearer sak_".to_owned() + &"A".repeat(71)),
    ] {
        let answer = authorizer.decide(&request(refused.as_deref())).await;
        assert!(!answer.is_authorized, "{refused:?}");
    }
}

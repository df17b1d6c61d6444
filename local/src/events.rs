//! Sample events signed when they are used: Stripe signs each webhook delivery with the time it
//! is sent, and the webhook refuses a signature older than its tolerance (300 s), so a signed
//! event kept in a file stops working minutes after it was made. `local-stack sign-stripe-event
//! events/stripe-webhook.json` prints the file's event signed now.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("not a Lambda Function URL event with a body: {0}")]
    NotAnEvent(&'static str),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `event` (a Function URL event whose body is a Stripe event) with its `stripe-signature`
/// header made as Stripe makes it: HMAC-SHA256 of `timestamp.body` under `secret`.
pub fn sign_stripe_event(event: &str, secret: &str, timestamp: i64) -> Result<Value, SignError> {
    let mut event: Value = serde_json::from_str(event)?;
    let body = event["body"].as_str().ok_or(SignError::NotAnEvent("no body"))?.to_owned();
    if event["isBase64Encoded"].as_bool() == Some(true) {
        return Err(SignError::NotAnEvent("a base64 body"));
    }
    let signature = stripe_webhook::signature::sign(secret, timestamp, body.as_bytes());
    let headers = event["headers"].as_object_mut().ok_or(SignError::NotAnEvent("no headers"))?;
    headers.insert("stripe-signature".into(), format!("t={timestamp},v1={signature}").into());
    if let Some(context) = event["requestContext"].as_object_mut() {
        context.insert("timeEpoch".into(), (timestamp * 1000).into());
    }
    Ok(event)
}

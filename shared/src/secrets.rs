//! Reads a function's secrets from AWS Secrets Manager, once per execution environment. Each
//! function is given only the secrets it needs (see `template.yaml`); several are read in one
//! `BatchGetSecretValue` call, so the cold start pays one round trip whatever their number.
//!
//! The endpoint, region and credentials come from the standard AWS configuration chain, so
//! `AWS_ENDPOINT_URL` points it at a local AWS-compatible server (moto) in development and tests.

use std::collections::HashMap;

use aws_config::BehaviorVersion;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read secret {id}: {reason}")]
    Fetch { id: String, reason: String },
    #[error("secret {id} is not a JSON object of strings: {reason}")]
    Format { id: String, reason: String },
    /// Each setting lives in exactly one secret, so no order of reading can change its value.
    #[error("{key} is set in more than one secret ({first} and {second})")]
    Duplicate { key: String, first: String, second: String },
}

/// Fetches the JSON secrets named by `ids` and merges their fields.
pub async fn fetch_json_secrets(ids: &[String]) -> Result<HashMap<String, String>, SecretsError> {
    match ids {
        [] => Ok(HashMap::new()),
        [id] => fetch_json_secret(id).await,
        _ => {
            let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
            let client = aws_sdk_secretsmanager::Client::new(&sdk_config);
            let all = ids.join(",");
            let output =
                client.batch_get_secret_value().set_secret_id_list(Some(ids.to_vec())).send().await.map_err(|e| {
                    SecretsError::Fetch {
                        id: all.clone(),
                        reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                    }
                })?;
            if let Some(error) = output.errors().first() {
                return Err(SecretsError::Fetch {
                    id: error.secret_id().unwrap_or(&all).to_owned(),
                    reason: format!(
                        "{}: {}",
                        error.error_code().unwrap_or("error"),
                        error.message().unwrap_or_default()
                    ),
                });
            }
            let mut merged: HashMap<String, String> = HashMap::new();
            let mut origin: HashMap<String, String> = HashMap::new();
            for entry in output.secret_values() {
                let id = entry.name().or(entry.arn()).unwrap_or(&all).to_owned();
                let text = entry.secret_string().ok_or_else(|| SecretsError::Format {
                    id: id.clone(),
                    reason: "the secret has no string value".into(),
                })?;
                for (key, value) in parse_secret(&id, text)? {
                    if let Some(first) = origin.insert(key.clone(), id.clone()) {
                        return Err(SecretsError::Duplicate { key, first, second: id });
                    }
                    merged.insert(key, value);
                }
            }
            if output.secret_values().len() != ids.len() {
                return Err(SecretsError::Fetch {
                    id: all,
                    reason: format!("asked for {} secrets, got {}", ids.len(), output.secret_values().len()),
                });
            }
            Ok(merged)
        }
    }
}

/// Fetches a secret whose value is a JSON object and returns its string fields.
pub async fn fetch_json_secret(id: &str) -> Result<HashMap<String, String>, SecretsError> {
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config);
    let output = client.get_secret_value().secret_id(id).send().await.map_err(|e| SecretsError::Fetch {
        id: id.to_owned(),
        reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
    })?;
    let text = output
        .secret_string()
        .ok_or_else(|| SecretsError::Format { id: id.to_owned(), reason: "the secret has no string value".into() })?;
    parse_secret(id, text)
}

fn parse_secret(id: &str, text: &str) -> Result<HashMap<String, String>, SecretsError> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| SecretsError::Format { id: id.to_owned(), reason: e.to_string() })?;
    value
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            // Numbers and booleans are accepted as their text so `"DB_MAX_CONNECTIONS": 4` works.
            serde_json::Value::Number(n) => Ok((key, n.to_string())),
            serde_json::Value::Bool(b) => Ok((key, b.to_string())),
            _ => Err(SecretsError::Format { id: id.to_owned(), reason: format!("field {key} is not a string") }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_booleans_become_text() {
        let parsed = parse_secret("s", r#"{"DATABASE_URL":"postgres://x","DB_MAX_CONNECTIONS":4,"X":true}"#).unwrap();
        assert_eq!(parsed["DB_MAX_CONNECTIONS"], "4");
        assert_eq!(parsed["X"], "true");
    }

    #[test]
    fn nested_values_are_refused_without_echoing_the_secret() {
        let err = parse_secret("s", r#"{"DATABASE_URL":{"nested":"postgres://secret"}}"#).unwrap_err();
        assert!(!err.to_string().contains("postgres://secret"));
    }

    #[test]
    fn invalid_json_is_a_format_error() {
        assert!(matches!(parse_secret("s", "not json"), Err(SecretsError::Format { .. })));
    }
}

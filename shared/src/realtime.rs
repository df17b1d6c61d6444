//! Pushing frames to WebSocket connections: API Gateway's Management API in Lambda, in-process
//! sockets on the local stack, behind one small trait so the handlers are the same code.

use std::future::Future;

use serde::Serialize;
use uuid::Uuid;

use crate::activity::ActivityView;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is closed (API Gateway's 410 Gone): forget it.
    #[error("the connection is gone")]
    Gone,
    #[error("could not push: {0}")]
    Failed(String),
}

pub trait Transport: Send + Sync {
    /// Sends one text frame to a connection.
    fn push(&self, connection_id: &str, frame: &str) -> impl Future<Output = Result<(), PushError>> + Send;
}

/// What the server sends, as JSON text frames.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame<'a> {
    /// An activity entry (its `id` is the event id; resume from the feed API with `after=<id>`).
    Activity {
        workspace_id: Uuid,
        activity: &'a ActivityView,
    },
    Subscribed {
        workspace_id: Uuid,
    },
    Unsubscribed {
        workspace_id: Uuid,
    },
    Pong,
    Error {
        code: &'static str,
        detail: String,
    },
}

impl Frame<'_> {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// API Gateway's Management API for one WebSocket API stage
/// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`). The SDK client is made at
/// the first push, not at start: `$connect` and `$disconnect`, the realtime function's most
/// frequent cold paths, never push.
#[derive(Clone)]
pub struct ApiGatewayTransport {
    endpoint: String,
    client: std::sync::Arc<tokio::sync::OnceCell<aws_sdk_apigatewaymanagement::Client>>,
}

impl ApiGatewayTransport {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self { endpoint: endpoint.into(), client: Default::default() }
    }

    async fn client(&self) -> &aws_sdk_apigatewaymanagement::Client {
        self.client
            .get_or_init(|| async {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
                let config =
                    aws_sdk_apigatewaymanagement::config::Builder::from(&config).endpoint_url(&self.endpoint).build();
                aws_sdk_apigatewaymanagement::Client::from_conf(config)
            })
            .await
    }
}

impl Transport for ApiGatewayTransport {
    async fn push(&self, connection_id: &str, frame: &str) -> Result<(), PushError> {
        use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
        let sent = self
            .client()
            .await
            .post_to_connection()
            .connection_id(connection_id)
            .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(frame.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Err(PushError::Gone),
                _ => {
                    Err(PushError::Failed(aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&error).to_string()))
                }
            },
        }
    }
}

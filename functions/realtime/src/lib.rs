//! The `realtime` function: the WebSocket API's `$connect`, `$disconnect` and messages.
//!
//! `$connect` verifies the caller exactly as the HTTP functions do (a token from the identity
//! provider, or an API key), passed as the `token` query parameter or in
//! `Sec-WebSocket-Protocol: bearer, <token>` (browsers cannot set headers on a WebSocket), and
//! records the connection under the caller's identity. Messages are JSON: `{"action":
//! "subscribe", "workspace_id": ...}` enters the workspace as an HTTP request would (a stranger
//! gets `not_found`, a contact on a plan without the portal `feature_not_in_plan`) and records the
//! subscription; `unsubscribe` and `ping` do what they say. An API key's connection is
//! subscribed to its own workspace when it connects. A person's connection lasts as long as the
//! token it opened with: after its `exp` it can subscribe to nothing and receives nothing.
//! Connections and subscriptions live in PostgreSQL under row-level security; the
//! `activity-fanout` worker pushes to them.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::http;
use serde::Deserialize;
use shared::auth::{Caller, api_key};
use shared::config::Settings;
use shared::realtime::{ApiGatewayTransport, Frame, PushError, Transport};
use shared::{ApiError, AppState};
use uuid::Uuid;

pub const FUNCTION: &str = "realtime";

/// The subprotocol a browser offers with its token: `Sec-WebSocket-Protocol: bearer, <token>`.
pub const BEARER_PROTOCOL: &str = "bearer";

pub struct Realtime<T> {
    pub app: AppState,
    pub transport: T,
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Message {
    Subscribe { workspace_id: Uuid },
    Unsubscribe { workspace_id: Uuid },
    Ping,
}

struct Owner {
    issuer: String,
    subject: String,
    email: Option<String>,
    api_key_id: Option<Uuid>,
    key_workspace: Option<Uuid>,
    /// When the token the connection opened with expires (none for an API key's).
    expires_at: Option<time::OffsetDateTime>,
}

/// The credential of a WebSocket handshake: the `token` query parameter, or the second entry of
/// `Sec-WebSocket-Protocol: bearer, <token>`.
pub fn credential<'a>(query_token: Option<&'a str>, protocol_header: Option<&'a str>) -> Option<&'a str> {
    query_token.filter(|t| !t.is_empty()).or_else(|| {
        let mut offered = protocol_header?.split(',').map(str::trim);
        (offered.next()? == BEARER_PROTOCOL).then(|| offered.next()).flatten()
    })
}

impl<T: Transport> Realtime<T> {
    /// Verifies the credential and records the connection (an API key's subscribed to its
    /// workspace). An error refuses the handshake.
    pub async fn connect(&self, connection_id: &str, credential: Option<&str>) -> Result<(), ApiError> {
        let credential = credential.ok_or_else(|| {
            ApiError::Unauthenticated("Pass a token as ?token= or in Sec-WebSocket-Protocol: bearer, <token>.".into())
        })?;
        if api_key::looks_like_key(credential) {
            return self.connect_key(connection_id, credential).await;
        }
        let caller =
            self.app.auth.authenticate(credential).await.map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        // Counted against the person's own rate limit, like any request outside a workspace.
        let mut tx = self.app.open_personal(&caller).await?;
        // The connection lives only as long as the token it opened with.
        let expires_at = caller.expires_at.and_then(|exp| time::OffsetDateTime::from_unix_timestamp(exp).ok());
        sqlx::query!(
            "INSERT INTO realtime_connections (id, user_id, expires_at) VALUES ($1, $2, $3)",
            connection_id,
            caller.user_id,
            expires_at,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn connect_key(&self, connection_id: &str, text: &str) -> Result<(), ApiError> {
        let key = api_key::parse(text)
            .map_err(|e| ApiError::ApiKeyRejected { code: "api_key_malformed", detail: e.to_string() })?;
        let key_id = key.id;
        let caller = Caller::for_api_key(key);
        // Which workspace the key says it belongs to; entering it checks the key's secret.
        let workspace: Option<Uuid> =
            sqlx::query_scalar!("SELECT app.api_key_workspace($1)", key_id).fetch_one(&self.app.pool).await?;
        let workspace =
            workspace.ok_or(ApiError::ApiKeyRejected { code: "api_key_unknown", detail: "No such API key.".into() })?;
        let (mut tx, _) = self.app.open_workspace(&caller, workspace).await?;
        sqlx::query!(
            "INSERT INTO realtime_connections (id, user_id, api_key_id) VALUES ($1, $2, $2)",
            connection_id,
            key_id,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO realtime_subscriptions (connection_id, workspace_id, user_id) VALUES ($1, $2, $3)",
            connection_id,
            workspace,
            key_id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the connection and its subscriptions (closing is not the owner's to refuse).
    pub async fn disconnect(&self, connection_id: &str) -> Result<(), ApiError> {
        sqlx::query!("SELECT app.realtime_disconnect($1)", connection_id).execute(&self.app.pool).await?;
        Ok(())
    }

    /// Handles one message and pushes the answer to the connection.
    pub async fn message(&self, connection_id: &str, body: &str) -> Result<(), PushError> {
        let frame = match self.answer(connection_id, body).await {
            Ok(frame) => frame,
            Err(error) => Frame::Error { code: error.code(), detail: error.to_string() },
        };
        self.transport.push(connection_id, &frame.to_text()).await
    }

    async fn answer(&self, connection_id: &str, body: &str) -> Result<Frame<'static>, ApiError> {
        let message: Message = serde_json::from_str(body).map_err(|e| ApiError::BadRequest {
            code: "invalid_message",
            detail: format!("Expected {{\"action\": \"subscribe\"|\"unsubscribe\"|\"ping\", ...}}: {e}"),
        })?;
        if let Message::Ping = message {
            return Ok(Frame::Pong);
        }
        let owner: Owner = sqlx::query_as!(
            Owner,
            r#"SELECT issuer AS "issuer!", subject AS "subject!", email, api_key_id, key_workspace, expires_at
                   FROM app.realtime_connection($1)"#,
            connection_id,
        )
        .fetch_optional(&self.app.pool)
        .await?
        .ok_or(ApiError::Unauthenticated("This connection is not open; connect again.".into()))?;
        if owner.expires_at.is_some_and(|at| at <= time::OffsetDateTime::now_utc()) {
            return Err(ApiError::Unauthenticated(
                "The token this connection opened with has expired; connect again with a fresh one.".into(),
            ));
        }
        if owner.api_key_id.is_some() {
            // A key's connection has its one workspace, subscribed when it connected.
            return match message {
                Message::Subscribe { workspace_id } if Some(workspace_id) == owner.key_workspace => {
                    Ok(Frame::Subscribed { workspace_id })
                }
                Message::Unsubscribe { workspace_id } => Ok(Frame::Unsubscribed { workspace_id }),
                _ => Err(ApiError::NotFound("workspace")),
            };
        }
        let caller = Caller::new(owner.issuer, owner.subject, owner.email);
        match message {
            Message::Subscribe { workspace_id } => {
                let (mut tx, _) = self.app.open_workspace(&caller, workspace_id).await?;
                sqlx::query!(
                    "INSERT INTO realtime_subscriptions (connection_id, workspace_id, user_id) VALUES ($1, $2, $3)
                     ON CONFLICT ON CONSTRAINT realtime_subscriptions_pkey DO NOTHING",
                    connection_id,
                    workspace_id,
                    caller.user_id,
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Frame::Subscribed { workspace_id })
            }
            Message::Unsubscribe { workspace_id } => {
                let mut tx = self.app.begin(&caller).await?;
                sqlx::query!(
                    "DELETE FROM realtime_subscriptions WHERE connection_id = $1 AND workspace_id = $2",
                    connection_id,
                    workspace_id,
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Frame::Unsubscribed { workspace_id })
            }
            Message::Ping => Ok(Frame::Pong),
        }
    }
}

/// On AWS: the API's state, pushing answers through the WebSocket stage's Management API
/// (`REALTIME_ENDPOINT`, the stage's `https://` URL).
impl<T> Realtime<T> {
    /// Over an application state already built, pushing through `transport` (the local stack's
    /// sockets, or API Gateway's Management API on AWS).
    pub fn with_app(app: AppState, transport: T) -> Self {
        Realtime { app, transport }
    }
}

impl shared::runtime::FromSettings for Realtime<ApiGatewayTransport> {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let transport = ApiGatewayTransport::new(settings.require("REALTIME_ENDPOINT")?);
        Ok(Realtime::with_app(AppState::from_settings(settings).await?, transport))
    }
}

/// One WebSocket event: `$connect` answers 200 or the refusal's status (API Gateway then
/// refuses the handshake), accepting the `bearer` subprotocol when it was offered.
pub async fn handle<T: Transport>(
    realtime: &Realtime<T>,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let connection_id = request.request_context.connection_id.clone().unwrap_or_default();
    let route = request.request_context.route_key.clone().unwrap_or_default();
    let protocol = request.headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
    let status = match route.as_str() {
        "$connect" => {
            let token = request.query_string_parameters.first("token");
            match realtime.connect(&connection_id, credential(token, protocol)).await {
                Ok(()) => 200,
                Err(error) => {
                    tracing::info!(%error, "connection refused");
                    i64::from(error.status().as_u16())
                }
            }
        }
        "$disconnect" => {
            if let Err(error) = realtime.disconnect(&connection_id).await {
                tracing::warn!(%error, "could not forget a connection");
            }
            200
        }
        _ => {
            if let Err(error) = realtime.message(&connection_id, request.body.as_deref().unwrap_or_default()).await {
                tracing::warn!(%error, "could not answer a message");
            }
            200
        }
    };
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    if route == "$connect" && status == 200 && protocol.is_some() {
        response.headers.insert("sec-websocket-protocol", http::HeaderValue::from_static(BEARER_PROTOCOL));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_comes_from_the_query_or_the_bearer_subprotocol() {
        assert_eq!(credential(Some("t1"), Some("bearer, t2")), Some("t1"));
        assert_eq!(credential(None, Some("bearer, t2")), Some("t2"));
        assert_eq!(credential(Some(""), Some("bearer,t2")), Some("t2"));
        assert_eq!(credential(None, Some("graphql-ws")), None);
        assert_eq!(credential(None, Some("bearer")), None);
        assert_eq!(credential(None, None), None);
    }
}

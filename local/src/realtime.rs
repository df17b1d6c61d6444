//! The WebSocket API on the local stack: `ws://127.0.0.1:3000/v1/realtime`, the same `realtime`
//! handler code as the Lambda function, with in-process sockets as the transport the
//! `activity-fanout` worker pushes through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use realtime::{BEARER_PROTOCOL, Realtime};
use shared::realtime::{PushError, Transport};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// The open sockets by connection id.
#[derive(Clone, Default)]
pub struct LocalSockets(Arc<Mutex<HashMap<String, UnboundedSender<String>>>>);

impl LocalSockets {
    fn register(&self, id: &str, sender: UnboundedSender<String>) {
        self.0.lock().expect("sockets lock").insert(id.to_owned(), sender);
    }

    fn forget(&self, id: &str) {
        self.0.lock().expect("sockets lock").remove(id);
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.0.lock().expect("sockets lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Transport for LocalSockets {
    async fn push(&self, connection_id: &str, frame: &str) -> Result<(), PushError> {
        let sender = self.0.lock().expect("sockets lock").get(connection_id).cloned();
        match sender {
            Some(sender) => sender.send(frame.to_owned()).map_err(|_| PushError::Gone),
            None => Err(PushError::Gone),
        }
    }
}

pub type LocalRealtime = Arc<Realtime<LocalSockets>>;

pub fn router(realtime: LocalRealtime) -> Router {
    Router::new().route("/v1/realtime", get(upgrade)).with_state(realtime)
}

async fn upgrade(
    State(realtime): State<LocalRealtime>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Like API Gateway's connectionId: opaque, unguessable.
    let connection_id = uuid::Uuid::new_v4().simple().to_string();
    let protocol = headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
    let credential = realtime::credential(query.get("token").map(String::as_str), protocol);
    if let Err(error) = realtime.connect(&connection_id, credential).await {
        return error.into_response();
    }
    let (sender, mut outgoing) = unbounded_channel();
    realtime.transport.register(&connection_id, sender);
    let upgrade = if protocol.is_some() { upgrade.protocols([BEARER_PROTOCOL]) } else { upgrade };
    upgrade.on_upgrade(move |socket: WebSocket| async move {
        let (mut write, mut read) = socket.split();
        let writer = tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if write.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
            }
        });
        while let Some(Ok(message)) = read.next().await {
            match message {
                Message::Text(text) => {
                    if let Err(error) = realtime.message(&connection_id, text.as_str()).await {
                        tracing::warn!(%error, "could not answer a message");
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        realtime.transport.forget(&connection_id);
        writer.abort();
        if let Err(error) = realtime.disconnect(&connection_id).await {
            tracing::warn!(%error, "could not forget a connection");
        }
    })
}

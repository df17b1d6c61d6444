//! Live activity over WebSockets, with a real WebSocket client against the local stack's
//! endpoint (the same `realtime` handler the Lambda function runs) and the `activity-fanout`
//! worker fed through moto's SQS: who receives what, and when.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use integration_tests::{Tenant, TestApp, TestUser, create_queue, local_aws, service_pool};
use local_stack::realtime::LocalSockets;
use serde_json::{Value, json};
use shared::queue::Queue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The fan-out sweeps every activity entry of the database: one test at a time, each with its
/// own sockets.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Stack {
    app: TestApp,
    port: u16,
    fanout: &'static activity_fanout::Fanout<LocalSockets>,
}

/// The local stack's WebSocket endpoint and the fan-out pipeline (sweep every 50 ms, the queue
/// drained as Lambda's event source mapping would).
async fn stack() -> Stack {
    let app = TestApp::new().await;
    let sockets = LocalSockets::default();
    let realtime = std::sync::Arc::new(realtime::Realtime::with_app(app.state.clone(), sockets.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, local_stack::realtime::router(realtime)).await.unwrap() });
    let queue = Queue::new(aws_sdk_sqs::Client::new(&local_aws().await), create_queue("activity", &[]).await);
    let settings = integration_tests::worker_settings("app_fanout", &[("ACTIVITY_QUEUE_URL", queue.url().to_owned())]);
    let fanout: &'static activity_fanout::Fanout<LocalSockets> =
        Box::leak(Box::new(activity_fanout::Fanout::build(&settings, sockets).await.unwrap()));
    tokio::spawn(async move {
        loop {
            fanout.sweep().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    tokio::spawn(async move {
        loop {
            queue.drain_once(1, |event| activity_fanout::handle_batch(fanout, event)).await.unwrap();
        }
    });
    Stack { app, port, fanout }
}

struct Client {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Client {
    async fn connect(port: u16, token: &str) -> Self {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/v1/realtime?token={token}")).await.unwrap();
        Self { socket }
    }

    /// Connects and subscribes to `workspace`, waiting for the confirmation. What happened
    /// before is the feed API's to tell, so the pipeline is let through what it holds first.
    async fn subscribed(port: u16, user: &TestUser, workspace: uuid::Uuid) -> Self {
        settled().await;
        let mut client = Self::connect(port, &user.token).await;
        let answer = client.ask(json!({"action": "subscribe", "workspace_id": workspace})).await;
        assert_eq!(answer, json!({"type": "subscribed", "workspace_id": workspace}));
        client
    }

    async fn send(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.unwrap();
    }

    async fn ask(&mut self, message: Value) -> Value {
        self.send(message).await;
        self.next(Duration::from_secs(5)).await.expect("an answer")
    }

    /// The next frame, if one comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// The verbs of the activity frames that arrive within `wait`.
    async fn verbs_within(&mut self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut verbs = Vec::new();
        while let Some(frame) = self.next(deadline.saturating_duration_since(Instant::now())).await {
            assert_eq!(frame["type"], "activity", "{frame}");
            verbs.push(frame["activity"]["verb"].as_str().unwrap().to_owned());
        }
        verbs
    }
}

/// Waits until the fan-out has taken every activity entry written so far.
async fn settled() {
    let pool = service_pool().await;
    for _ in 0..250 {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM activity WHERE fanout_queued_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        if waiting == 0 {
            // And the queue's last messages pushed (they are drained as they arrive).
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the fan-out sweep did not take the waiting entries");
}

async fn comment(app: &TestApp, t: &Tenant, user: &TestUser, body: &str, visible: bool) {
    app.post(user, &format!("{}/comments", t.project_path()), json!({"body": body, "client_visible": visible}))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn a_member_sees_a_change_within_a_second_and_a_stranger_sees_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-member").await;
    let other = s.app.tenant("rt-stranger").await;
    let mut member = Client::subscribed(s.port, &t.member, t.id).await;
    // A stranger cannot subscribe to the workspace, and their own sees none of its activity.
    let mut stranger = Client::connect(s.port, &other.owner.token).await;
    let refused = stranger.ask(json!({"action": "subscribe", "workspace_id": t.id})).await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("not_found")));
    let own = stranger.ask(json!({"action": "subscribe", "workspace_id": other.id})).await;
    assert_eq!(own["type"], "subscribed");

    let written = Instant::now();
    comment(&s.app, &t, &t.owner, "Ready for review", false).await;
    let frame = member.next(Duration::from_secs(1)).await.expect("the comment within a second");
    let latency = written.elapsed();
    assert_eq!(frame["type"], "activity");
    assert_eq!(frame["workspace_id"], t.id.to_string());
    assert_eq!(frame["activity"]["verb"], "comment.added");
    assert_eq!(frame["activity"]["actor_id"], t.owner.id.to_string());
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert!(stranger.verbs_within(Duration::from_millis(700)).await.is_empty());
    assert_eq!(member.ask(json!({"action": "ping"})).await, json!({"type": "pong"}));
    let bad = member.ask(json!({"action": "shout"})).await;
    assert_eq!(bad["code"], "invalid_message");
}

#[tokio::test]
async fn a_client_contact_sees_only_client_visible_activity_of_their_clients_projects() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-contact").await;
    let mut contact = Client::subscribed(s.port, &t.contact, t.id).await;
    let mut owner = Client::subscribed(s.port, &t.owner, t.id).await;
    comment(&s.app, &t, &t.owner, "Internal only", false).await;
    s.app
        .post(&t.owner, &format!("{}/projects", t.path()), json!({"name": "Internal tooling"}))
        .await
        .expect(StatusCode::CREATED);
    comment(&s.app, &t, &t.owner, "For the client", true).await;
    assert_eq!(
        owner.verbs_within(Duration::from_millis(1500)).await,
        ["comment.added", "project.created", "comment.added"]
    );
    assert_eq!(contact.verbs_within(Duration::from_millis(300)).await, ["comment.added"]);
}

#[tokio::test]
async fn a_member_removed_mid_connection_stops_receiving_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-removed").await;
    let mut member = Client::subscribed(s.port, &t.member, t.id).await;
    let mut owner = Client::subscribed(s.port, &t.owner, t.id).await;
    s.app.delete(&t.owner, &format!("{}/members/{}", t.path(), t.member.id)).await.expect(StatusCode::NO_CONTENT);
    comment(&s.app, &t, &t.owner, "After they left", false).await;
    assert_eq!(owner.verbs_within(Duration::from_millis(1500)).await, ["member.left", "comment.added"]);
    assert!(member.verbs_within(Duration::from_millis(300)).await.is_empty());
}

#[tokio::test]
async fn a_rolled_back_change_sends_nothing_and_a_reconnecting_client_resumes_from_the_feed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-resume").await;
    let mut member = Client::subscribed(s.port, &t.member, t.id).await;
    let caller = t.owner.caller();
    let (mut tx, _) = s.app.state.open_workspace(&caller, t.id).await.unwrap();
    sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'Never')")
        .bind(uuid::Uuid::now_v7())
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    comment(&s.app, &t, &t.owner, "First", false).await;
    let first = member.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(first["activity"]["verb"], "comment.added", "the rolled-back project sent nothing: {first}");
    let last_seen = first["activity"]["id"].as_str().unwrap().to_owned();
    drop(member);
    comment(&s.app, &t, &t.owner, "Second", false).await;
    comment(&s.app, &t, &t.owner, "Third", false).await;
    let mut back = Client::subscribed(s.port, &t.member, t.id).await;
    let missed = s.app.get(&t.member, &format!("{}/activity?after={last_seen}", t.path())).await;
    let messages: Vec<&str> = missed.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["New comment: “Second”", "New comment: “Third”"]);
    comment(&s.app, &t, &t.owner, "Fourth", false).await;
    assert_eq!(back.verbs_within(Duration::from_millis(1500)).await, ["comment.added"]);
}

#[tokio::test]
async fn an_api_key_connects_through_the_subprotocol_and_bad_credentials_are_refused() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-key").await;
    let key = s.app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "Feed", "role": "viewer"})).await;
    let key = key.expect(StatusCode::CREATED)["key"].as_str().unwrap().to_owned();
    settled().await;
    let mut request = format!("ws://127.0.0.1:{}/v1/realtime", s.port).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", format!("bearer, {key}").parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "bearer");
    let mut client = Client { socket };
    // Subscribed to its workspace on connecting.
    comment(&s.app, &t, &t.owner, "Keys see this", false).await;
    assert_eq!(client.verbs_within(Duration::from_millis(1500)).await, ["comment.added"]);
    let elsewhere = client.ask(json!({"action": "subscribe", "workspace_id": uuid::Uuid::now_v7()})).await;
    assert_eq!(elsewhere["code"], "not_found");

    // Claims that cannot be stored are a bad credential too (401), never a 400 or a 500.
    let nul_subject = integration_tests::mint("nul\u{0}sub", None, Duration::from_secs(60));
    let long_subject = integration_tests::mint(&"s".repeat(3000), Some("x@corp.test"), Duration::from_secs(60));
    let nul_email = integration_tests::mint("nul-email", Some("a\u{0}@corp.test"), Duration::from_secs(60));
    for url in [
        format!("ws://127.0.0.1:{}/v1/realtime", s.port),
        format!("ws://127.0.0.1:{}/v1/realtime?token=not-a-token", s.port),
        format!("ws://127.0.0.1:{}/v1/realtime?token=sak_{}", s.port, "A".repeat(71)),
        format!("ws://127.0.0.1:{}/v1/realtime?token={nul_subject}", s.port),
        format!("ws://127.0.0.1:{}/v1/realtime?token={long_subject}", s.port),
        format!("ws://127.0.0.1:{}/v1/realtime?token={nul_email}", s.port),
    ] {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{url}");
            }
            other => panic!("{url}: {:?}", other.map(|(_, r)| r.status())),
        }
    }
}

#[tokio::test]
async fn the_fanout_fails_only_the_bad_messages_of_a_batch_and_forgets_closed_connections() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-batch").await;
    // A connection the database knows but no socket serves (closed without $disconnect).
    sqlx::query("INSERT INTO realtime_connections (id, user_id) VALUES ('stale', $1)")
        .bind(t.owner.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    sqlx::query("INSERT INTO realtime_subscriptions (connection_id, workspace_id, user_id) VALUES ('stale', $1, $2)")
        .bind(t.id)
        .bind(t.owner.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let entry: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM activity WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(t.id)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    let record = |id: &str, body: &str| {
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.message_id = Some(id.to_owned());
        record.body = Some(body.to_owned());
        record
    };
    let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
    batch.records = vec![record("m1", &entry.to_string()), record("m2", "not-an-id"), record("m3", &entry.to_string())];
    let answer = activity_fanout::handle_batch(s.fanout, batch).await;
    let failed: Vec<String> = answer.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, ["m2"]);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM realtime_connections WHERE id = 'stale'")
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(left, 0, "a closed connection is forgotten");
}

#[tokio::test]
async fn a_connection_lasts_only_as_long_as_its_token() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-expiry").await;
    let short = TestUser {
        token: integration_tests::mint(&t.member.subject, Some(&t.member.email), Duration::from_secs(3)),
        ..t.member.clone()
    };
    let mut client = Client::subscribed(s.port, &short, t.id).await;
    comment(&s.app, &t, &t.owner, "While the token lasts", false).await;
    assert_eq!(client.verbs_within(Duration::from_millis(1500)).await, ["comment.added"]);
    // Past the token's expiry (and the verifier's leeway): nothing arrives, nothing subscribes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    comment(&s.app, &t, &t.owner, "After it expired", false).await;
    assert!(client.verbs_within(Duration::from_millis(1500)).await.is_empty());
    let late = client.ask(json!({"action": "subscribe", "workspace_id": t.id})).await;
    assert_eq!(late["code"], "unauthenticated", "{late}");
}

#[tokio::test]
async fn a_contact_of_a_workspace_that_lost_the_portal_receives_and_subscribes_to_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = stack().await;
    let t = s.app.tenant("rt-downgraded").await;
    let mut client = Client::subscribed(s.port, &t.contact, t.id).await;
    integration_tests::subscribe(t.id, "studio", "canceled").await;
    comment(&s.app, &t, &t.owner, "For the client, after the downgrade", true).await;
    assert!(client.verbs_within(Duration::from_millis(1500)).await.is_empty());
    let again = client.ask(json!({"action": "subscribe", "workspace_id": t.id})).await;
    assert_eq!(again["code"], "feature_not_in_plan", "{again}");
}

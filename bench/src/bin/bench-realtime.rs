//! The live-activity fan-out under load: N WebSocket connections (real clients, in-process, on
//! the local stack's endpoint) subscribed to one workspace, E comments written through the API
//! one after another, each pushed through the outbox sweep, moto's SQS and the activity-fanout
//! worker. Prints frames delivered per second and the latency from each write's commit (the
//! API's answer) to each receipt (p50/p99/max). Not part of the test suite:
//!
//!   bench/bench-realtime.sh [CONNECTIONS] [EVENTS]     (default 1000 and 100)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use integration_tests::{TestApp, create_queue, local_aws, worker_pool_as};
use local_stack::realtime::LocalSockets;
use serde_json::{Value, json};
use shared::queue::Queue;
use tokio_tungstenite::tungstenite::Message;

type Receipts = Arc<Mutex<Vec<(String, Instant)>>>;

fn arg(index: usize, default: usize) -> usize {
    std::env::args().nth(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let (connections, events) = (arg(1, 1000), arg(2, 100));
    let app = TestApp::new().await;
    let t = app.tenant("bench-realtime").await;
    // This measures the fan-out, not the rate limiter: a thousand connections of one member
    // would otherwise be refused (429) long before they were all open.
    sqlx::query("UPDATE plans SET requests_per_minute = 10000000, expensive_per_minute = 10000000")
        .execute(&integration_tests::owner_pool().await)
        .await
        .unwrap();
    let sockets = LocalSockets::default();
    let realtime = Arc::new(realtime::Realtime { app: app.state.clone(), transport: sockets.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, local_stack::realtime::router(realtime)).await.unwrap() });
    let queue = Queue::new(aws_sdk_sqs::Client::new(&local_aws().await), create_queue("bench-activity", &[]).await);
    let fanout: &'static activity_fanout::Fanout<LocalSockets> = Box::leak(Box::new(activity_fanout::Fanout {
        pool: worker_pool_as("app_fanout", activity_fanout::FUNCTION).await,
        transport: sockets.clone(),
        queue: Some(queue.clone()),
        sweep: std::time::Duration::from_secs(50),
        poll: std::time::Duration::from_millis(250),
    }));
    // As the local stack runs it: the outbox swept every 100 ms, the queue drained as it fills.
    tokio::spawn(async move {
        loop {
            fanout.sweep().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for _ in 0..2 {
        let (queue, fanout) = (queue.clone(), fanout);
        tokio::spawn(async move {
            loop {
                queue.drain_once(1, |event| activity_fanout::handle_batch(fanout, event)).await.unwrap();
            }
        });
    }

    let receipts: Receipts = Arc::new(Mutex::new(Vec::with_capacity(connections * events)));
    let started = Instant::now();
    let mut clients = futures_util::stream::iter(0..connections)
        .map(|_| {
            let (token, workspace) = (t.member.token.clone(), t.id);
            async move {
                let url = format!("ws://127.0.0.1:{port}/v1/realtime?token={token}");
                let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
                let subscribe = json!({"action": "subscribe", "workspace_id": workspace}).to_string();
                socket.send(Message::Text(subscribe.into())).await.unwrap();
                let Some(Ok(Message::Text(answer))) = socket.next().await else { panic!("no answer") };
                assert!(answer.contains("subscribed"), "{answer}");
                socket
            }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    println!("{connections} connections subscribed in {:.1} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    for socket in clients.drain(..) {
        let receipts = receipts.clone();
        tokio::spawn(async move {
            let mut socket = socket;
            while let Some(Ok(Message::Text(text))) = socket.next().await {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if let Some(subject) = frame["activity"]["subject_id"].as_str() {
                    receipts.lock().unwrap().push((subject.to_owned(), Instant::now()));
                }
            }
        });
    }

    let mut committed: HashMap<String, Instant> = HashMap::new();
    let writing = Instant::now();
    for i in 0..events {
        let answer =
            app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": format!("Event {i}")})).await;
        committed.insert(answer.body["id"].as_str().unwrap().to_owned(), Instant::now());
    }
    let wrote = writing.elapsed();
    let expected = connections * events;
    let deadline = Instant::now() + Duration::from_secs(120);
    while receipts.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receipts = receipts.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = receipts
        .iter()
        .filter_map(|(subject, at)| committed.get(subject).map(|commit| at.saturating_duration_since(*commit)))
        .collect();
    latencies.sort();
    let last = receipts.iter().map(|(_, at)| *at).max().unwrap();
    let span = last.duration_since(writing).as_secs_f64();
    println!(
        "{events} events written in {:.2} s; {} of {expected} frames delivered in {span:.2} s from the first write: {:.0} frames/s",
        wrote.as_secs_f64(),
        latencies.len(),
        latencies.len() as f64 / span
    );
    println!(
        "commit -> receipt: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
}

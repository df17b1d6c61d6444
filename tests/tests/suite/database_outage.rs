//! The database going away (a restart, an RDS failover, a network break) is the service's own
//! transient condition: a request caught in it is answered 503 problem+json with Retry-After,
//! never 500, and writes nothing; the requests after it are served at once, on new connections.

use axum::http::StatusCode;
use integration_tests::{TestApp, owner_pool};
use serde_json::json;
use std::time::Duration;

/// The tests of this file share a database and end its connections: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Ends every connection the API role has to this test's database, as a restart or a failover
/// does; with `waiting_on_lock`, only those whose statement waits on a lock. Answers how many.
async fn terminate_api_connections(waiting_on_lock: bool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND usename = 'app_api'
           AND (NOT $1 OR wait_event_type = 'Lock')",
    )
    .bind(waiting_on_lock)
    .fetch_one(&owner_pool().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_request_whose_connection_is_terminated_mid_statement_is_a_503_to_retry_and_writes_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("outage-mid-request").await;
    let projects = format!("{}/projects", t.path());
    let before = app.get(&t.owner, &projects).await.expect(StatusCode::OK)["items"].as_array().unwrap().len();

    // The project's plan-limit trigger waits on the workspace row, held here; while it waits,
    // its connection is terminated.
    let owner = owner_pool().await;
    let mut holder = owner.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE").bind(t.id).execute(&mut *holder).await.unwrap();
    let (answer, terminated) =
        tokio::join!(app.post(&t.owner, &projects, json!({"name": "Caught in a restart"})), async {
            for _ in 0..500 {
                let terminated = terminate_api_connections(true).await;
                if terminated > 0 {
                    return terminated;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the request never waited on the workspace row");
        });
    holder.rollback().await.unwrap();
    assert_eq!(terminated, 1);
    assert_eq!(answer.problem(StatusCode::SERVICE_UNAVAILABLE), "service_unavailable", "{:?}", answer.body);
    assert_eq!(answer.headers["retry-after"], "2");

    // Retried, it succeeds, and the first attempt left nothing behind.
    app.post(&t.owner, &projects, json!({"name": "Caught in a restart"})).await.expect(StatusCode::CREATED);
    let after = app.get(&t.owner, &projects).await.expect(StatusCode::OK)["items"].as_array().unwrap().len();
    assert_eq!(after, before + 1);
}

#[tokio::test]
async fn after_the_database_drops_every_connection_the_next_request_is_served_at_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("outage-between-requests").await;
    let projects = format!("{}/projects", t.path());
    // Both of the pool's connections in use, then both ended while idle.
    let (a, b) = tokio::join!(app.get(&t.owner, &projects), app.get(&t.owner, &projects));
    a.expect(StatusCode::OK);
    b.expect(StatusCode::OK);
    assert!(terminate_api_connections(false).await >= 1);
    for _ in 0..3 {
        app.get(&t.owner, &projects).await.expect(StatusCode::OK);
        app.post(&t.owner, &projects, json!({"name": "After the restart"})).await.expect(StatusCode::CREATED);
    }
}

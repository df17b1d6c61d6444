//! The rate limiter leases: an instance takes several tokens from a bucket at once and spends
//! them in memory. Through one instance the limit is exact; across instances it is never
//! exceeded and a caller is refused early by at most what the other instances hold; unspent
//! tokens go back; and the access check is not leased, so revoking a key or suspending a
//! workspace still stops the very next request.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use integration_tests::{Tenant, TestApp, TestUser, api_pool, as_operator, grant_override, owner_pool};
use serde_json::json;
use shared::db::{Cost, MOST_PER_LEASE, RateLimiter, TenantTx};
use shared::error::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

/// The workspaces' limit in these tests: a bucket far enough from empty that leases hold several
/// tokens, small enough that it refills slowly (a token every 1.5 s).
const LIMIT: usize = 40;
const EMISSION: Duration = Duration::from_millis(60_000 / LIMIT as u64);

/// The tokens a bucket emptied at `started` has gained since.
fn refilled_since(started: Instant) -> usize {
    (started.elapsed().as_millis() / EMISSION.as_millis()) as usize
}

/// A workspace limited to [`LIMIT`] requests a minute with its buckets whole, and an instance
/// that holds no lease of it (the fixture's requests were served by another).
async fn limited_workspace(label: &str) -> (Tenant, TestApp) {
    let setup = TestApp::new().await;
    let t = setup.tenant(label).await;
    grant_override(t.id, "requests_per_minute", json!(LIMIT)).await;
    sqlx::query("DELETE FROM rate_limit_buckets WHERE bucket LIKE '%' || $1")
        .bind(t.id.to_string())
        .execute(&owner_pool().await)
        .await
        .unwrap();
    (t, TestApp::new().await)
}

/// A projects-list request's opening through `limiter`: admitted or refused for the rate limit.
async fn admitted(pool: &PgPool, limiter: &RateLimiter, user: &TestUser, workspace: Uuid) -> bool {
    match TenantTx::enter(pool, limiter, &user.caller(), workspace, None, Cost::Standard).await {
        Ok((tx, _)) => {
            tx.commit().await.unwrap();
            true
        }
        Err(ApiError::RateLimited { .. }) => false,
        Err(other) => panic!("refused for another reason: {other:?}"),
    }
}

async fn arrival_time(workspace: Uuid) -> time::OffsetDateTime {
    sqlx::query_scalar("SELECT tat FROM rate_limit_buckets WHERE bucket = 'workspace:' || $1")
        .bind(workspace.to_string())
        .fetch_one(&owner_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn through_one_instance_n_plus_k_concurrent_requests_admit_exactly_n() {
    let (t, app) = limited_workspace("lease-one").await;
    let path = format!("{}/projects", t.path());
    let started = Instant::now();
    let answers = futures::future::join_all((0..LIMIT + 8).map(|_| app.get(&t.member, &path))).await;
    let refilled = refilled_since(started);
    let ok = answers.iter().filter(|a| a.status == StatusCode::OK).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(
        (LIMIT..=LIMIT + refilled).contains(&ok),
        "{ok} admitted at a limit of {LIMIT} ({refilled} refilled meanwhile): {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(ok + refused.len(), answers.len());
    for answer in refused {
        assert_eq!(answer.problem(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
        let retry: u32 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(answer.headers["ratelimit"].to_str().unwrap().starts_with("\"workspace\";r=0;"));
    }
    assert_eq!(app.state.limiter.held(), 0, "every token the instance leased was spent");
}

#[tokio::test]
async fn two_instances_never_admit_more_than_the_limit_and_refuse_early_by_at_most_what_the_other_holds() {
    let (t, _) = limited_workspace("lease-two").await;
    let pool = api_pool().await;
    let (a, b) = (RateLimiter::default(), RateLimiter::default());
    let started = Instant::now();
    assert!(admitted(&pool, &a, &t.member, t.id).await);
    let held_by_a = a.held() as usize;
    assert!(held_by_a > 1, "a bucket far from empty leases several tokens: {held_by_a}");
    let mut by_b = 0;
    while admitted(&pool, &b, &t.member, t.id).await {
        by_b += 1;
    }
    assert_eq!(b.held(), 0);
    assert!(by_b < LIMIT + refilled_since(started), "never more than the limit with a's one: {by_b} by b");
    assert!(by_b + 1 + held_by_a >= LIMIT, "b was refused early by {held_by_a} held by a at most: {by_b}");
    let mut by_a = 1;
    while admitted(&pool, &a, &t.member, t.id).await {
        by_a += 1;
    }
    let refilled = refilled_since(started);
    assert!(
        (LIMIT..=LIMIT + refilled).contains(&(by_a + by_b)),
        "together exactly the limit: {by_a} by a, {by_b} by b ({refilled} refilled)"
    );
}

#[tokio::test]
async fn a_leases_unspent_tokens_go_back_to_the_bucket() {
    let (t, _) = limited_workspace("lease-back").await;
    let pool = api_pool().await;
    // Short enough that the lease is handed back while the bucket still owes the tokens it
    // holds (the arrival time then moves back exactly), long enough to read what it holds.
    let lifetime = Duration::from_millis(500);
    let a = RateLimiter::new(MOST_PER_LEASE, lifetime);
    let started = Instant::now();
    assert!(admitted(&pool, &a, &t.member, t.id).await);
    let unspent = a.held() as i64;
    assert!(unspent > 0);
    let before = arrival_time(t.id).await;
    tokio::time::sleep(lifetime + Duration::from_millis(50)).await;
    assert_eq!(a.held(), 0, "an expired lease holds nothing");
    assert!(admitted(&pool, &a, &t.member, t.id).await);
    let granted = i64::from(a.held()) + 1;
    let moved = arrival_time(t.id).await - before;
    assert_eq!(
        moved,
        time::Duration::milliseconds((granted - unspent) * EMISSION.as_millis() as i64),
        "the unspent {unspent} went back as the next lease took {granted}"
    );
    // What another instance can still take is the limit less what was spent and what the first
    // holds (held until it hands them back, even past its lease's life).
    let b = RateLimiter::default();
    let mut by_b = 0;
    while admitted(&pool, &b, &t.member, t.id).await {
        by_b += 1;
    }
    let held = (granted - 1) as usize;
    assert!((LIMIT - 2 - held..=LIMIT - 2 - held + refilled_since(started)).contains(&by_b), "{by_b}, {held} held");
}

#[tokio::test]
async fn revoking_a_key_or_suspending_the_workspace_stops_the_next_request_though_tokens_are_leased() {
    let app = TestApp::new().await;
    let t = app.tenant("lease-access").await;
    let created = app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "CI", "role": "member"})).await;
    let key = TestUser::api_key(&created);
    let unused = TestUser::api_key(
        &app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "Later", "role": "member"})).await,
    );
    let path = format!("{}/projects", t.path());
    // The key's first request leases tokens of its buckets (a studio's: far from empty).
    app.get(&key, &path).await.expect(StatusCode::OK);
    app.delete(&t.owner, &format!("{}/api-keys/{}", t.path(), created.id())).await.expect(StatusCode::NO_CONTENT);
    assert!(app.state.limiter.held() > 0);
    assert_eq!(app.get(&key, &path).await.problem(StatusCode::UNAUTHORIZED), "api_key_revoked");

    app.get(&t.member, &path).await.expect(StatusCode::OK);
    assert!(app.state.limiter.held() > 0);
    let suspended = as_operator(
        Method::POST,
        &format!("/v1/admin/workspaces/{}/suspend", t.id),
        json!({"reason": "Unpaid invoices"}),
    )
    .await;
    suspended.expect(StatusCode::OK);
    let write = app.post(&t.member, &path, json!({"name": "While suspended"})).await;
    assert_eq!(write.problem(StatusCode::FORBIDDEN), "workspace_suspended");
    // A key's first request on an instance that holds nothing, refused for the suspension: the
    // tokens leased for it stay the instance's (not lost to the bucket until it refills).
    let instance = TestApp::new().await;
    assert_eq!(instance.get(&unused, &path).await.problem(StatusCode::FORBIDDEN), "workspace_suspended");
    assert!(instance.state.limiter.held() > 0, "the refused key's lease was dropped");
}

//! What a request costs the database: a read by a known user writes nothing (no transaction id,
//! so no WAL and no row lock that one user's concurrent requests would queue on).

use integration_tests::{TestApp, TestUser, api_pool, functions_pool, seeding_session};
use shared::access::Access;
use shared::auth::Caller;
use shared::db::{Cost, RateLimiter, TenantTx};
use sqlx::PgPool;

fn caller(user: &TestUser, email: Option<&str>) -> Caller {
    Caller::new(integration_tests::HS256_ISSUER.to_owned(), user.subject.clone(), email.map(str::to_owned))
}

/// Runs what a projects-list request runs (its rate limit through `limiter`, identity, access
/// check, the list query) and answers whether its transaction was assigned a transaction id by
/// its end.
async fn list_projects_assigns_an_xid(
    pool: &PgPool,
    limiter: &RateLimiter,
    caller: &Caller,
    workspace_id: uuid::Uuid,
) -> bool {
    let (mut tx, entry) = TenantTx::enter(pool, limiter, caller, workspace_id, None, Cost::Standard).await.unwrap();
    Access::from_entry(&entry).unwrap();
    let _: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM projects WHERE workspace_id = $1 ORDER BY id DESC LIMIT 26")
            .bind(workspace_id)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    let xid: Option<String> =
        sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text").fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    xid.is_some()
}

#[tokio::test]
async fn a_read_by_a_known_unchanged_user_assigns_no_transaction_id() {
    let app = TestApp::new().await;
    let t = app.tenant("cost").await;
    let pool = api_pool().await;
    let limiter = RateLimiter::default();
    let known = caller(&t.member, Some(&t.member.email));
    assert!(!list_projects_assigns_an_xid(&pool, &limiter, &known, t.id).await, "a read by a known user wrote");
    // A token without an e-mail keeps the stored one, and writes nothing either.
    assert!(!list_projects_assigns_an_xid(&pool, &limiter, &caller(&t.member, None), t.id).await);
}

/// The whole request, rate limit included: once the instance holds a lease, a known member's
/// read writes nothing anywhere: its own transaction gets no transaction id, and the bucket's
/// row is the version the lease wrote (same xmin, same arrival time).
#[tokio::test]
async fn a_read_spending_a_leased_token_writes_nothing_at_all() {
    let app = TestApp::new().await;
    let t = app.tenant("cost-lease").await;
    let pool = api_pool().await;
    let bucket = || async {
        sqlx::query_as::<_, (String, time::OffsetDateTime)>(
            "SELECT xmin::text, tat FROM rate_limit_buckets WHERE bucket = 'workspace:' || $1",
        )
        .bind(t.id.to_string())
        .fetch_one(&integration_tests::owner_pool().await)
        .await
        .unwrap()
    };
    let limiter = RateLimiter::default();
    let known = caller(&t.member, Some(&t.member.email));
    assert!(!list_projects_assigns_an_xid(&pool, &limiter, &known, t.id).await);
    let leased = bucket().await;
    assert!(limiter.held() > 0, "the first read leased several tokens");
    for _ in 0..3 {
        assert!(!list_projects_assigns_an_xid(&pool, &limiter, &known, t.id).await, "a read by a known user wrote");
    }
    assert_eq!(bucket().await, leased, "a read spending a leased token wrote to its bucket");
}

#[tokio::test]
async fn a_new_user_or_a_changed_e_mail_is_written_once() {
    let app = TestApp::new().await;
    let t = app.tenant("cost-write").await;
    let pool = api_pool().await;
    let changed = caller(&t.viewer, Some("viewer-renamed@example.test"));
    let limiter = RateLimiter::default();
    assert!(list_projects_assigns_an_xid(&pool, &limiter, &changed, t.id).await, "the new e-mail is stored");
    assert!(!list_projects_assigns_an_xid(&pool, &limiter, &changed, t.id).await, "and then nothing is written");
    let mut tx = TenantTx::begin(&pool, &changed).await.unwrap();
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = app.current_user_id()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(email.as_deref(), Some("viewer-renamed@example.test"));
}

/// The plan of `execute` (an EXECUTE of a prepared statement) as a one-off (custom) plan and as
/// the generic plan a prepared statement settles on, with the node that feeds its top Limit.
async fn page_plans(tx: &mut TenantTx, execute: &str) -> Vec<(&'static str, serde_json::Value, serde_json::Value)> {
    let mut plans = Vec::new();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL plan_cache_mode = {mode}")))
            .execute(&mut **tx)
            .await
            .unwrap();
        let plan: serde_json::Value =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {execute}")))
                .fetch_one(&mut **tx)
                .await
                .unwrap();
        let top = &plan[0]["Plan"];
        assert_eq!(top["Node Type"], "Limit", "{mode}: {plan}");
        let scan =
            top["Plans"].as_array().unwrap().iter().find(|p| p["Parent Relationship"] == "Outer").unwrap().clone();
        plans.push((mode, plan, scan));
    }
    plans
}

/// The plan of a list page walks an index in the page's order and stops at the page, in a
/// tenant big enough that a scan of the tenant and a sort would show, under row-level security,
/// both as a one-off (custom) plan and as the generic plan a prepared statement settles on.
#[tokio::test]
async fn a_list_page_in_a_large_tenant_is_an_ordered_index_scan_with_a_limit() {
    let app = TestApp::new().await;
    let t = app.tenant("large").await;
    // Among neighbours twice its size, as a large tenant is among others: when one tenant holds
    // nearly every row, walking the primary key backwards and filtering costs the planner the
    // same as seeking to the tenant, and which it picks turns on ANALYZE's sample.
    let neighbours = app.tenant("large-neighbours").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    for (workspace, projects) in [(t.id, 20_000), (neighbours.id, 40_000)] {
        sqlx::query(
            "INSERT INTO projects (id, workspace_id, name)
             SELECT gen_random_uuid(), $1, 'Project ' || n FROM generate_series(1, $2) n",
        )
        .bind(workspace)
        .bind(projects)
        .execute(&mut *seed)
        .await
        .unwrap();
    }
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE projects").execute(&owner_pool).await.unwrap();
    let pool = functions_pool().await;
    // Entered as the handlers enter it: the policies read the access the first statement learned.
    let (mut tx, _) = TenantTx::enter(
        &pool,
        &RateLimiter::default(),
        &caller(&t.member, Some(&t.member.email)),
        t.id,
        None,
        Cost::Standard,
    )
    .await
    .unwrap();
    let list =
        "SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at
                FROM projects WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT 26";
    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE list_page(uuid, uuid) AS {list}")))
        .execute(&mut *tx)
        .await
        .unwrap();
    for (mode, plan, scan) in page_plans(&mut tx, &format!("EXECUTE list_page('{}', NULL)", t.id)).await {
        // An index that seeks to the tenant and yields its rows in page order: no sort, and no
        // walk of other tenants' rows (a backward scan of the primary key would be "ordered" too).
        assert!(
            scan["Node Type"].as_str().is_some_and(|n| n.starts_with("Index")) && scan["Relation Name"] == "projects",
            "{mode}: the page is not read in index order: {plan}"
        );
        assert!(
            scan["Index Cond"].as_str().is_some_and(|c| c.contains("workspace_id")),
            "{mode}: the index scan does not seek to the workspace: {plan}"
        );
    }
}

/// A client contact's page of a project's comments, in a workspace where its client has
/// thousands of projects: the page index seeks to the project and stops at the page, and the
/// contact's access is a probe per row read, not an array of all its client's projects.
#[tokio::test]
async fn a_contacts_comment_page_costs_the_page_not_its_clients_projects() {
    let app = TestApp::new().await;
    let t = app.tenant("contact-large").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    sqlx::query(
        "INSERT INTO projects (id, workspace_id, client_id, name)
         SELECT gen_random_uuid(), $1, $2, 'Client project ' || n FROM generate_series(1, 5000) n",
    )
    .bind(t.id)
    .bind(t.client_id)
    .execute(&mut *seed)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible)
         SELECT gen_random_uuid(), p.workspace_id, p.id, $2, 'c', n % 2 = 0
         FROM projects p, generate_series(1, 4) n WHERE p.workspace_id = $1",
    )
    .bind(t.id)
    .bind(t.owner.id)
    .execute(&mut *seed)
    .await
    .unwrap();
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE projects, comments").execute(&owner_pool).await.unwrap();

    let pool = functions_pool().await;
    let (mut tx, _) = TenantTx::enter(
        &pool,
        &RateLimiter::default(),
        &caller(&t.contact, Some(&t.contact.email)),
        t.id,
        Some(t.project_id),
        Cost::Standard,
    )
    .await
    .unwrap();
    sqlx::query(
        "PREPARE comment_page(uuid, uuid, uuid, bigint) AS
         SELECT id, project_id, author_id, body, client_visible, created_at, updated_at
         FROM comments
         WHERE workspace_id = $1 AND project_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let execute = format!("EXECUTE comment_page('{}', '{}', NULL, 26)", t.id, t.project_id);
    for (mode, plan, scan) in page_plans(&mut tx, &execute).await {
        assert_eq!(scan["Index Name"], "comments_page_idx", "{mode}: {plan}");
        let cond = scan["Index Cond"].as_str().unwrap_or_default();
        assert!(cond.contains("workspace_id") && cond.contains("project_id"), "{mode}: {plan}");
        // Nothing builds the list of the contact's projects: the old policy's helper is gone.
        assert!(!plan.to_string().contains("contact_project_ids"), "{mode}: {plan}");
    }
    // And the page itself is right: the client-visible comments of that project only.
    let visible: Vec<bool> =
        sqlx::query_scalar("SELECT client_visible FROM comments WHERE workspace_id = $1 AND project_id = $2")
            .bind(t.id)
            .bind(t.project_id)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert!(!visible.is_empty() && visible.iter().all(|v| *v));
}

/// Counts round trips between the pool and PostgreSQL: a TCP relay that notes each time the
/// client speaks after the server has (one request, its answer: one turn).
struct RoundTrips {
    address: std::net::SocketAddr,
    turns: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RoundTrips {
    async fn relay_to(upstream: String) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let turns = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = turns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                // True while the client has the floor (it spoke last).
                let client_spoke = std::sync::Arc::new(AtomicBool::new(false));
                let (turns, spoke) = (counted.clone(), client_spoke.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                        if !spoke.swap(true, Ordering::SeqCst) {
                            turns.fetch_add(1, Ordering::SeqCst);
                        }
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
                        client_spoke.store(false, Ordering::SeqCst);
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { address, turns }
    }

    fn count(&self) -> usize {
        self.turns.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A warm request on a workspace route (identity, access, one query) makes three round trips:
/// BEGIN with the first statement, the query, COMMIT.
#[tokio::test(flavor = "current_thread")]
async fn a_warm_workspace_request_makes_three_round_trips() {
    let app = TestApp::new().await;
    let t = app.tenant("trips").await;
    let api: sqlx::postgres::PgConnectOptions = integration_tests::database().api_url.parse().unwrap();
    let relay = RoundTrips::relay_to(format!("{}:{}", api.get_host(), api.get_port())).await;
    let config = shared::config::DatabaseConfig {
        url: format!("postgres://app_api:app_api@{}/{}?sslmode=disable", relay.address, api.get_database().unwrap())
            .into(),
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(5),
        host_override: None,
    };
    let pool = shared::db::connect(&config).await.unwrap();
    let member = caller(&t.member, Some(&t.member.email));
    let request = || async {
        let (mut tx, entry) =
            TenantTx::enter(&pool, &RateLimiter::default(), &member, t.id, None, Cost::Standard).await.unwrap();
        Access::from_entry(&entry).unwrap();
        let _: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM projects WHERE workspace_id = $1 ORDER BY id DESC LIMIT 26")
                .bind(t.id)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        tx.commit().await.unwrap();
    };
    // The first request also prepares the query on the connection.
    request().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = relay.count();
    request().await;
    // Read before yielding: the pool's check of the returned connection comes after the request.
    assert_eq!(relay.count() - before, 3, "round trips of a warm request");
}

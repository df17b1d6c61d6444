//! What a request costs the database: a read by a known user writes nothing (no transaction id,
//! so no WAL and no row lock that one user's concurrent requests would queue on).

use integration_tests::{TestApp, TestUser, api_pool};
use shared::access::Access;
use shared::auth::Caller;
use shared::db::{Cost, TenantTx};
use sqlx::PgPool;

fn caller(user: &TestUser, email: Option<&str>) -> Caller {
    Caller::new(integration_tests::HS256_ISSUER.to_owned(), user.subject.clone(), email.map(str::to_owned))
}

/// Runs what a projects-list request runs (identity, access check, the list query) and answers
/// whether the transaction was assigned a transaction id by its end.
async fn list_projects_assigns_an_xid(pool: &PgPool, caller: &Caller, workspace_id: uuid::Uuid) -> bool {
    let (mut tx, entry) = TenantTx::enter(pool, caller, workspace_id, None, Cost::Standard).await.unwrap();
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
    let known = caller(&t.member, Some(&t.member.email));
    assert!(!list_projects_assigns_an_xid(&pool, &known, t.id).await, "a read by a known user wrote");
    // A token without an e-mail keeps the stored one, and writes nothing either.
    assert!(!list_projects_assigns_an_xid(&pool, &caller(&t.member, None), t.id).await);
}

#[tokio::test]
async fn a_new_user_or_a_changed_e_mail_is_written_once() {
    let app = TestApp::new().await;
    let t = app.tenant("cost-write").await;
    let pool = api_pool().await;
    let changed = caller(&t.viewer, Some("viewer-renamed@example.test"));
    assert!(list_projects_assigns_an_xid(&pool, &changed, t.id).await, "the new e-mail is stored");
    assert!(!list_projects_assigns_an_xid(&pool, &changed, t.id).await, "and then nothing is written");
    let mut tx = TenantTx::begin(&pool, &changed).await.unwrap();
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = app.current_user_id()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(email.as_deref(), Some("viewer-renamed@example.test"));
}

/// The API role's pool as the functions build it: its connections' settings (generic plans, no
/// bitmap scans) and the opening's prepared statements. Plans are checked on it, not on a plain
/// pool, because those settings decide the plans.
async fn functions_pool() -> PgPool {
    let config = shared::config::DatabaseConfig {
        url: integration_tests::database().api_url.clone().into(),
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(10),
        statement_timeout: std::time::Duration::from_secs(30),
        host_override: None,
    };
    shared::db::connect(&config).await.unwrap()
}

/// A superuser session that seeds without the per-row plan-limit trigger (replica mode).
async fn seeding_session(owner_pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut seed = owner_pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *seed).await.unwrap();
    seed
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
    let (mut tx, _) =
        TenantTx::enter(&pool, &caller(&t.member, Some(&t.member.email)), t.id, None, Cost::Standard).await.unwrap();
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
    let (mut tx, _) =
        TenantTx::enter(&pool, &caller(&t.contact, Some(&t.contact.email)), t.id, Some(t.project_id), Cost::Standard)
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
        let (mut tx, entry) = TenantTx::enter(&pool, &member, t.id, None, Cost::Standard).await.unwrap();
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

/// The projects list as the handler sends it to a member (from `.sqlx/`, where the build keeps
/// every statement the code runs), its macros' annotations removed.
fn members_projects_list() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let statement = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .map(|text| serde_json::from_str::<serde_json::Value>(&text).unwrap()["query"].as_str().unwrap().to_owned())
        .find(|query| {
            query.contains("FROM projects")
                && query.contains("$2::project_status IS NULL")
                && !query.contains("contact_client_ids")
        })
        .expect("the projects list in .sqlx/");
    statement.replace(r#"status AS "status: ProjectStatus""#, "status")
}

/// In a young SaaS's tenant mix (300 workspaces of 30 projects, one of 20,000), the projects
/// list walks the page's index in order and stops at the page, whatever optional filters are
/// set, under the generic plans and the connection settings of the functions' own pool.
#[tokio::test]
async fn a_list_page_walks_its_index_in_a_skewed_tenant_mix_whatever_filters_are_set() {
    let app = TestApp::new().await;
    let t = app.tenant("skewed-large").await;
    let client: uuid::Uuid =
        app.post(&t.owner, &format!("{}/clients", t.path()), serde_json::json!({"name": "Skew"})).await.id();
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    sqlx::query(
        "WITH small AS (
             INSERT INTO workspaces (id, name) SELECT gen_random_uuid(), 'Small ' || n FROM generate_series(1, 300) n
             RETURNING id)
         INSERT INTO projects (id, workspace_id, name, status)
         SELECT gen_random_uuid(), small.id, 'Project ' || n, (ARRAY['planned', 'active', 'completed']::project_status[])[1 + n % 3]
         FROM small, generate_series(1, 30) n",
    )
    .execute(&mut *seed)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO projects (id, workspace_id, name, status, client_id)
         SELECT app.uuid_v7(), $1, 'Project ' || n, (ARRAY['planned', 'active', 'completed']::project_status[])[1 + n % 3],
                CASE WHEN n % 10 = 0 THEN $2::uuid END
         FROM generate_series(1, 20000) n",
    )
    .bind(t.id)
    .bind(client)
    .execute(&mut *seed)
    .await
    .unwrap();
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&owner_pool).await.unwrap();

    let pool = functions_pool().await;
    let (mut tx, _) =
        TenantTx::enter(&pool, &caller(&t.member, Some(&t.member.email)), t.id, None, Cost::Standard).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PREPARE skewed_list(uuid, project_status, uuid, uuid, bigint) AS {}",
        members_projects_list()
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let cursor: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM projects WHERE workspace_id = $1 ORDER BY id DESC OFFSET 100 LIMIT 1")
            .bind(t.id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    for status in ["NULL", "'active'"] {
        for client_filter in ["NULL".to_owned(), format!("'{client}'")] {
            for after in ["NULL".to_owned(), format!("'{cursor}'")] {
                let execute = format!("EXECUTE skewed_list('{}', {status}, {client_filter}, {after}, 26)", t.id);
                for (mode, plan, scan) in page_plans(&mut tx, &execute).await {
                    let text = plan.to_string();
                    assert!(!text.contains("\"Sort\"") && !text.contains("Bitmap"), "{mode} {execute}: {plan}");
                    assert_eq!(scan["Node Type"], "Index Scan", "{mode} {execute}: {plan}");
                    // Seeking to the tenant, or to the client asked for (its own index, in page order).
                    assert!(
                        scan["Index Cond"]
                            .as_str()
                            .is_some_and(|c| c.contains("workspace_id") || c.contains("client_id")),
                        "{mode} {execute}: the scan does not seek to the page's rows: {plan}"
                    );
                }
            }
        }
    }
}

/// A statement the code runs, from `.sqlx/`: the one whose text holds every one of `marks`,
/// with the macros' type annotations removed (`x AS "x: Type"` is `x`; `y AS "y!"` is `y AS y`).
fn statement_of_the_code(marks: &[&str]) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .map(|text| serde_json::from_str::<serde_json::Value>(&text).unwrap()["query"].as_str().unwrap().to_owned())
        .filter(|query| {
            let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
            marks.iter().all(|mark| flat.contains(mark))
        })
        .collect();
    assert_eq!(found.len(), 1, "one statement holds {marks:?}: {found:?}");
    let mut statement = found[0].clone();
    while let Some(start) = statement.find(" AS \"") {
        let end = start + 5 + statement[start + 5..].find('"').unwrap();
        let name = statement[start + 5..end].split([':', '!', '?']).next().unwrap().trim().to_owned();
        let before = statement[..start].trim_end();
        let replacement = if before.ends_with(&name) { String::new() } else { format!(" AS {name}") };
        statement.replace_range(start..=end, &replacement);
    }
    statement
}

/// The other list pages in a skewed mix: a project with thousands of milestones, deliverables
/// and comments among hundreds of small ones, and a workspace with thousands of clients among
/// small ones. Each page walks its index in order and stops at the page, with and without a
/// cursor, under custom and generic plans on the functions' own pool.
#[tokio::test]
async fn the_project_item_and_client_pages_walk_their_index_in_a_skewed_mix() {
    let app = TestApp::new().await;
    let t = app.tenant("skewed-items").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    // 300 small projects of 10 items each in the same workspace, and the fixture's project with 5,000.
    for statement in [
        "INSERT INTO projects (id, workspace_id, name) SELECT gen_random_uuid(), $1, 'Small ' || n FROM generate_series(1, 300) n",
        "INSERT INTO milestones (id, workspace_id, project_id, title)
         SELECT app.uuid_v7(), p.workspace_id, p.id, 'M ' || n FROM projects p, generate_series(1, CASE WHEN p.id = $2 THEN 5000 ELSE 10 END) n WHERE p.workspace_id = $1",
        "INSERT INTO deliverables (id, workspace_id, project_id, title)
         SELECT app.uuid_v7(), p.workspace_id, p.id, 'D ' || n FROM projects p, generate_series(1, CASE WHEN p.id = $2 THEN 5000 ELSE 10 END) n WHERE p.workspace_id = $1",
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body)
         SELECT app.uuid_v7(), p.workspace_id, p.id, NULL, 'C ' || n FROM projects p, generate_series(1, CASE WHEN p.id = $2 THEN 5000 ELSE 10 END) n WHERE p.workspace_id = $1",
        "INSERT INTO clients (id, workspace_id, name) SELECT app.uuid_v7(), $1, 'Client ' || n FROM generate_series(1, 5000) n",
    ] {
        sqlx::query(statement).bind(t.id).bind(t.project_id).execute(&mut *seed).await.unwrap();
    }
    // Small workspaces with a few clients each.
    sqlx::query(
        "WITH small AS (INSERT INTO workspaces (id, name) SELECT gen_random_uuid(), 'Small ' || n FROM generate_series(1, 300) n RETURNING id)
         INSERT INTO clients (id, workspace_id, name) SELECT gen_random_uuid(), small.id, 'Client ' || n FROM small, generate_series(1, 5) n",
    )
    .execute(&mut *seed)
    .await
    .unwrap();
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&owner_pool).await.unwrap();

    let pool = functions_pool().await;
    let (mut tx, _) =
        TenantTx::enter(&pool, &caller(&t.member, Some(&t.member.email)), t.id, Some(t.project_id), Cost::Standard)
            .await
            .unwrap();
    let pages: [(&str, &str, &[&str]); 4] = [
        (
            "milestones",
            "(uuid, uuid, uuid, bigint)",
            &["FROM milestones WHERE workspace_id = $1 AND project_id = $2", "LIMIT $4"],
        ),
        (
            "deliverables",
            "(uuid, uuid, uuid, bigint)",
            &["FROM deliverables WHERE workspace_id = $1 AND project_id = $2", "LIMIT $4"],
        ),
        (
            "comments",
            "(uuid, uuid, uuid, bigint)",
            &[
                "FROM comments",
                "WHERE workspace_id = $1 AND project_id = $2 AND ($3::uuid IS NULL OR id < $3)",
                "LIMIT $4",
            ],
        ),
        ("clients", "(uuid, uuid, bigint)", &["FROM clients WHERE workspace_id = $1", "LIMIT $3"]),
    ];
    for (table, types, marks) in pages {
        let statement = statement_of_the_code(marks);
        sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE page_{table}{types} AS {statement}")))
            .execute(&mut *tx)
            .await
            .unwrap();
        let cursor: uuid::Uuid = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {table} WHERE workspace_id = $1 ORDER BY id DESC OFFSET 100 LIMIT 1"
        )))
        .bind(t.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        for after in ["NULL".to_owned(), format!("'{cursor}'")] {
            let execute = if table == "clients" {
                format!("EXECUTE page_{table}('{}', {after}, 26)", t.id)
            } else {
                format!("EXECUTE page_{table}('{}', '{}', {after}, 26)", t.id, t.project_id)
            };
            for (mode, plan, scan) in page_plans(&mut tx, &execute).await {
                let text = plan.to_string();
                assert!(!text.contains("\"Sort\"") && !text.contains("Bitmap"), "{mode} {execute}: {plan}");
                assert!(
                    scan["Node Type"].as_str().is_some_and(|n| n.starts_with("Index"))
                        && scan["Relation Name"] == table,
                    "{mode} {execute}: not read in index order: {plan}"
                );
                // Seeking to the tenant, or to the project (its own index, in page order).
                assert!(
                    scan["Index Cond"].as_str().is_some_and(|c| c.contains("workspace_id") || c.contains("project_id")),
                    "{mode} {execute}: the scan does not seek to the page's rows: {plan}"
                );
            }
        }
    }
}

/// The activity feed in a skewed mix (a workspace with 20,000 entries among 300 of 10), newest
/// first and oldest first, under every combination of its filters (project, since, cursor).
#[tokio::test]
async fn the_activity_feed_walks_its_index_in_a_skewed_mix_whatever_filters_are_set() {
    let app = TestApp::new().await;
    let t = app.tenant("skewed-activity").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    sqlx::query(
        "INSERT INTO activity (id, workspace_id, kind, message, verb, project_id, created_at)
         SELECT app.uuid_v7(), $1, 'project', 'Entry ' || n, 'project.updated', CASE WHEN n % 10 = 0 THEN $2::uuid END,
                now() - make_interval(secs => 20000 - n)
         FROM generate_series(1, 20000) n",
    )
    .bind(t.id)
    .bind(t.project_id)
    .execute(&mut *seed)
    .await
    .unwrap();
    sqlx::query(
        "WITH small AS (INSERT INTO workspaces (id, name) SELECT gen_random_uuid(), 'Small ' || n FROM generate_series(1, 300) n RETURNING id)
         INSERT INTO activity (id, workspace_id, kind, message, verb)
         SELECT gen_random_uuid(), small.id, 'project', 'Entry ' || n, 'project.updated' FROM small, generate_series(1, 10) n",
    )
    .execute(&mut *seed)
    .await
    .unwrap();
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE activity").execute(&owner_pool).await.unwrap();

    let pool = functions_pool().await;
    let (mut tx, _) =
        TenantTx::enter(&pool, &caller(&t.member, Some(&t.member.email)), t.id, None, Cost::Standard).await.unwrap();
    let (cursor, since): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT id, created_at::text FROM activity WHERE workspace_id = $1 ORDER BY id DESC OFFSET 5000 LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    for (name, marks) in [
        ("newest", ["FROM activity WHERE workspace_id = $1", "OR id < $4) ORDER BY id DESC LIMIT $5"]),
        ("oldest", ["FROM activity WHERE workspace_id = $1", "OR id > $4) ORDER BY id ASC LIMIT $5"]),
    ] {
        let statement = statement_of_the_code(&marks);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PREPARE feed_{name}(uuid, uuid, timestamptz, uuid, bigint) AS {statement}"
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
        for project in ["NULL".to_owned(), format!("'{}'", t.project_id)] {
            for after in ["NULL".to_owned(), format!("'{since}'")] {
                for from in ["NULL".to_owned(), format!("'{cursor}'")] {
                    let execute = format!("EXECUTE feed_{name}('{}', {project}, {after}, {from}, 51)", t.id);
                    for (mode, plan, scan) in page_plans(&mut tx, &execute).await {
                        let text = plan.to_string();
                        assert!(!text.contains("\"Sort\"") && !text.contains("Bitmap"), "{mode} {execute}: {plan}");
                        assert!(
                            scan["Node Type"].as_str().is_some_and(|n| n.starts_with("Index"))
                                && scan["Relation Name"] == "activity"
                                && scan["Index Cond"].as_str().is_some_and(|c| c.contains("workspace_id")),
                            "{mode} {execute}: not a walk of the workspace's feed in order: {plan}"
                        );
                    }
                }
            }
        }
    }
}

/// The plan node that reads `table`, wherever it sits in the plan.
fn node_reading<'a>(plan: &'a serde_json::Value, table: &str) -> Option<&'a serde_json::Value> {
    if plan["Relation Name"] == table {
        return Some(plan);
    }
    plan["Plans"].as_array().into_iter().flatten().find_map(|child| node_reading(child, table))
}

/// The members, invitations and API keys pages in a skewed mix (a workspace with 5,000 of each
/// among 300 small ones), with and without a cursor.
#[tokio::test]
async fn the_member_invitation_and_key_pages_walk_their_index_in_a_skewed_mix() {
    let app = TestApp::new().await;
    let t = app.tenant("skewed-people").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    for statement in [
        // 300 small workspaces, each with a member, an invitation and a key; the fixture's with 5,000 of each.
        "CREATE TEMP TABLE spread ON COMMIT DROP AS
         SELECT w, n FROM (SELECT $1::uuid AS w, generate_series(1, 5000) AS n) big
         UNION ALL SELECT id, 1 FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 300)) small",
        "INSERT INTO workspaces (id, name) SELECT w, 'Small' FROM spread WHERE w <> $1",
        "CREATE TEMP TABLE people ON COMMIT DROP AS SELECT w, n, app.uuid_v7() AS person, app.uuid_v7() AS key FROM spread",
        "INSERT INTO users (id, issuer, subject) SELECT person, 'skew', person::text FROM people
         UNION ALL SELECT key, 'urn:saas:api-key', key::text FROM people",
        "INSERT INTO workspace_members (workspace_id, user_id, role) SELECT w, person, 'member' FROM people",
        "INSERT INTO invitations (id, workspace_id, email, role, token_hash, expires_at)
         SELECT app.uuid_v7(), w, 'invited-' || person || '@skew.test', 'member', sha256(person::text::bytea), now() + interval '7 days' FROM people",
        "INSERT INTO api_keys (id, workspace_id, name, role, display_prefix, secret_hash)
         SELECT key, w, 'Key ' || n, 'member', 'sak_skew', sha256(key::text::bytea) FROM people",
    ] {
        sqlx::query(statement).bind(t.id).execute(&mut *seed).await.unwrap();
    }
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&owner_pool).await.unwrap();

    let pool = functions_pool().await;
    let (mut tx, _) =
        TenantTx::enter(&pool, &caller(&t.owner, Some(&t.owner.email)), t.id, None, Cost::Standard).await.unwrap();
    let pages: [(&str, &str, &[&str], &str); 3] = [
        (
            "members",
            "workspace_members",
            &["FROM workspace_members m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1", "LIMIT $3"],
            "user_id",
        ),
        (
            "invitations",
            "invitations",
            &["FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL", "LIMIT $3"],
            "id",
        ),
        ("keys", "api_keys", &["FROM api_keys WHERE workspace_id = $1 AND revoked_at IS NULL", "LIMIT $3"], "id"),
    ];
    for (name, table, marks, key) in pages {
        let statement = statement_of_the_code(marks);
        sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE people_{name}(uuid, uuid, bigint) AS {statement}")))
            .execute(&mut *tx)
            .await
            .unwrap();
        let cursor: uuid::Uuid = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {key} FROM {table} WHERE workspace_id = $1 ORDER BY {key} DESC OFFSET 100 LIMIT 1"
        )))
        .bind(t.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        for after in ["NULL".to_owned(), format!("'{cursor}'")] {
            let execute = format!("EXECUTE people_{name}('{}', {after}, 26)", t.id);
            for (mode, plan, _) in page_plans(&mut tx, &execute).await {
                let text = plan.to_string();
                assert!(!text.contains("\"Sort\"") && !text.contains("Bitmap"), "{mode} {execute}: {plan}");
                let read = node_reading(&plan[0]["Plan"], table)
                    .unwrap_or_else(|| panic!("{mode}: no read of {table}: {plan}"));
                assert!(
                    read["Node Type"].as_str().is_some_and(|n| n.starts_with("Index"))
                        && read["Index Cond"].as_str().is_some_and(|c| c.contains("workspace_id")),
                    "{mode} {execute}: {table} is not walked in order from the workspace: {plan}"
                );
            }
        }
    }
}

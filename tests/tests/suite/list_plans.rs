//! List pages in a young SaaS's tenant mix: hundreds of small tenants and one huge one. Under
//! the generic plans the functions use, a planner that cannot see the page's tenant estimated a
//! handful of rows for it and chose a bitmap scan of the whole tenant and a sort; each page here
//! must walk its index in order and stop at the page, whatever filters are set. This file has a
//! database of its own, so the mix is exactly the one seeded here.

use integration_tests::{TestApp, functions_pool, seeding_session};
use shared::db::{Cost, TenantTx};

/// The generic plan of `execute` (an EXECUTE of a prepared statement), as the functions run it,
/// must be a page walked in order: no Sort and no bitmap scan anywhere, and `table` read by an
/// index scan seeking one of `seeks` (the tenant, or the narrower parent asked for).
async fn assert_walks_in_order(tx: &mut TenantTx, execute: &str, table: &str, seeks: &[&str]) {
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut **tx).await.unwrap();
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {execute}")))
        .fetch_one(&mut **tx)
        .await
        .unwrap();
    assert_eq!(plan[0]["Plan"]["Node Type"], "Limit", "{execute}: {plan}");
    let text = plan.to_string();
    assert!(!text.contains("\"Sort\"") && !text.contains("Bitmap"), "{execute}: {plan}");
    let read = node_reading(&plan[0]["Plan"], table).unwrap_or_else(|| panic!("{execute}: no read of {table}: {plan}"));
    assert!(
        read["Node Type"].as_str().is_some_and(|n| n.starts_with("Index"))
            && read["Index Cond"].as_str().is_some_and(|c| seeks.iter().any(|seek| c.contains(seek))),
        "{execute}: {table} is not walked in order from {seeks:?}: {plan}"
    );
}

/// The plan node that reads `table`, wherever it sits in the plan.
fn node_reading<'a>(plan: &'a serde_json::Value, table: &str) -> Option<&'a serde_json::Value> {
    if plan["Relation Name"] == table {
        return Some(plan);
    }
    plan["Plans"].as_array().into_iter().flatten().find_map(|child| node_reading(child, table))
}

/// Prepares the code's statement holding `marks` as `name` with its parameter `types`, in the
/// transaction's session, as the functions' pool prepares it.
async fn prepare_page(tx: &mut TenantTx, name: &str, types: &str, marks: &[&str]) {
    let statement = statement_of_the_code(marks, &[]);
    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE {name}{types} AS {statement}"))).execute(&mut **tx).await.unwrap();
}

/// A cursor well inside a big page: the `key` of the 101st row of `table` where `filter` holds,
/// in page order (newest first).
async fn cursor_into(tx: &mut TenantTx, table: &str, key: &str, filter: &str) -> uuid::Uuid {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {key} FROM {table} WHERE {filter} ORDER BY {key} DESC OFFSET 100 LIMIT 1"
    )))
    .fetch_one(&mut **tx)
    .await
    .unwrap()
}

/// One test at a time: each seeds its mix into the one database and analyzes it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// In a young SaaS's tenant mix (300 workspaces of 30 projects, one of 20,000), the projects
/// list walks the page's index in order and stops at the page, whatever optional filters are
/// set, under the generic plans and the connection settings of the functions' own pool (a one-off custom
/// plan sees the tenant's size and may walk the primary key instead; the functions never use one).
#[tokio::test]
async fn a_list_page_walks_its_index_in_a_skewed_tenant_mix_whatever_filters_are_set() {
    let _turn = ONE_AT_A_TIME.lock().await;
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
        TenantTx::enter(&pool, &shared::db::RateLimiter::default(), &t.member.caller(), t.id, None, Cost::Standard)
            .await
            .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PREPARE skewed_list(uuid, project_status, uuid, uuid, bigint) AS {}",
        statement_of_the_code(&["FROM projects", "$2::project_status IS NULL", "LIMIT $5"], &["contact_client_ids"])
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
                // Seeking to the tenant, or to the client asked for (its own index, in page order).
                assert_walks_in_order(&mut tx, &execute, "projects", &["workspace_id", "client_id"]).await;
            }
        }
    }
}

/// A statement the code runs, from `.sqlx/`: the one whose text holds every one of `marks`,
/// with the macros' type annotations removed (`x AS "x: Type"` is `x`; `y AS "y!"` is `y AS y`).
fn statement_of_the_code(marks: &[&str], not: &[&str]) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .map(|text| serde_json::from_str::<serde_json::Value>(&text).unwrap()["query"].as_str().unwrap().to_owned())
        .filter(|query| {
            let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
            marks.iter().all(|mark| flat.contains(mark)) && !not.iter().any(|mark| flat.contains(mark))
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
    let _turn = ONE_AT_A_TIME.lock().await;
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
    let (mut tx, _) = TenantTx::enter(
        &pool,
        &shared::db::RateLimiter::default(),
        &t.member.caller(),
        t.id,
        Some(t.project_id),
        Cost::Standard,
    )
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
        prepare_page(&mut tx, &format!("page_{table}"), types, marks).await;
        let cursor = cursor_into(&mut tx, table, "id", &format!("workspace_id = '{}'", t.id)).await;
        for after in ["NULL".to_owned(), format!("'{cursor}'")] {
            let execute = if table == "clients" {
                format!("EXECUTE page_{table}('{}', {after}, 26)", t.id)
            } else {
                format!("EXECUTE page_{table}('{}', '{}', {after}, 26)", t.id, t.project_id)
            };
            // Seeking to the tenant, or to the project (its own index, in page order).
            assert_walks_in_order(&mut tx, &execute, table, &["workspace_id", "project_id"]).await;
        }
    }
}

/// The activity feed in a skewed mix (a workspace with 20,000 entries among 300 of 10), newest
/// first and oldest first, under every combination of its filters (project, since, cursor).
#[tokio::test]
async fn the_activity_feed_walks_its_index_in_a_skewed_mix_whatever_filters_are_set() {
    let _turn = ONE_AT_A_TIME.lock().await;
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
        TenantTx::enter(&pool, &shared::db::RateLimiter::default(), &t.member.caller(), t.id, None, Cost::Standard)
            .await
            .unwrap();
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
        prepare_page(&mut tx, &format!("feed_{name}"), "(uuid, uuid, timestamptz, uuid, bigint)", &marks).await;
        for project in ["NULL".to_owned(), format!("'{}'", t.project_id)] {
            for after in ["NULL".to_owned(), format!("'{since}'")] {
                for from in ["NULL".to_owned(), format!("'{cursor}'")] {
                    let execute = format!("EXECUTE feed_{name}('{}', {project}, {after}, {from}, 51)", t.id);
                    assert_walks_in_order(&mut tx, &execute, "activity", &["workspace_id"]).await;
                }
            }
        }
    }
}

/// The members, invitations and API keys pages in a skewed mix (a workspace with 5,000 of each
/// among 300 small ones), with and without a cursor.
#[tokio::test]
async fn the_member_invitation_and_key_pages_walk_their_index_in_a_skewed_mix() {
    let _turn = ONE_AT_A_TIME.lock().await;
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
        TenantTx::enter(&pool, &shared::db::RateLimiter::default(), &t.owner.caller(), t.id, None, Cost::Standard)
            .await
            .unwrap();
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
        prepare_page(&mut tx, &format!("people_{name}"), "(uuid, uuid, bigint)", marks).await;
        let cursor = cursor_into(&mut tx, table, key, &format!("workspace_id = '{}'", t.id)).await;
        for after in ["NULL".to_owned(), format!("'{cursor}'")] {
            let execute = format!("EXECUTE people_{name}('{}', {after}, 26)", t.id);
            assert_walks_in_order(&mut tx, &execute, table, &["workspace_id"]).await;
        }
    }
}

/// The audit log (every combination of its six filters and its cursor), a client's contacts, an
/// endpoint's webhook deliveries (status filter and cursor) and the AI runs, each in a skewed mix:
/// one workspace, client or endpoint with 5,000 to 20,000 rows among 300 small ones.
#[tokio::test]
async fn the_audit_contact_delivery_and_ai_run_pages_walk_their_index_in_a_skewed_mix() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("skewed-records").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    for statement in [
        "CREATE TEMP TABLE small ON COMMIT DROP AS SELECT gen_random_uuid() AS w, gen_random_uuid() AS c, gen_random_uuid() AS e FROM generate_series(1, 300)",
        "INSERT INTO workspaces (id, name) SELECT w, 'Small' FROM small",
        "INSERT INTO clients (id, workspace_id, name) SELECT c, w, 'Client' FROM small",
        // The audit log: 20,000 entries of the fixture's workspace, 10 of each small one.
        "INSERT INTO audit_log (workspace_id, seq, actor, action, table_name, row_id, prev_hash, hash, created_at)
         SELECT w, 1000000 + n, CASE WHEN n % 7 = 0 THEN 'user:someone' ELSE 'user:other' END,
                CASE WHEN n % 3 = 0 THEN 'update' ELSE 'insert' END, CASE WHEN n % 5 = 0 THEN 'comments' ELSE 'projects' END,
                (n % 50)::text, '\\x00', '\\x00', now() - make_interval(secs => 20000 - n)
         FROM (SELECT $1::uuid AS w, generate_series(1, 20000) AS n UNION ALL SELECT w, generate_series(1, 10) FROM small) entries",
        // A client with 5,000 contacts; each small workspace's client with 3.
        "CREATE TEMP TABLE contacts ON COMMIT DROP AS
         SELECT $1::uuid AS w, $2::uuid AS c, app.uuid_v7() AS person FROM generate_series(1, 5000)
         UNION ALL SELECT w, c, gen_random_uuid() FROM small, generate_series(1, 3)",
        "INSERT INTO users (id, issuer, subject) SELECT person, 'skew', person::text FROM contacts",
        "INSERT INTO client_contacts (workspace_id, client_id, user_id) SELECT w, c, person FROM contacts",
        // An endpoint with 5,000 deliveries; each small workspace's with 5.
        "CREATE TEMP TABLE endpoints ON COMMIT DROP AS
         SELECT w, e, n FROM (SELECT $1::uuid AS w, $3::uuid AS e, generate_series(1, 5000) AS n) big
         UNION ALL SELECT w, e, generate_series(1, 5) FROM small",
        "INSERT INTO webhook_endpoints (id, workspace_id, url, events, secret)
         SELECT DISTINCT e, w, 'https://hooks.skew.test/', ARRAY['project.created'], 'whsec_skew' FROM endpoints",
        "CREATE TEMP TABLE events ON COMMIT DROP AS SELECT w, e, n, app.uuid_v7() AS event FROM endpoints",
        "INSERT INTO webhook_events (id, workspace_id, type, payload) SELECT event, w, 'project.created', '{}' FROM events",
        "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id, status)
         SELECT app.uuid_v7(), w, e, event, (ARRAY['pending', 'succeeded', 'failed'])[1 + n % 3] FROM events",
        // AI runs: 20,000 in the fixture's workspace, 10 in each small one.
        "INSERT INTO ai_runs (id, workspace_id, tool, status, input, request_hash, quota_period)
         SELECT app.uuid_v7(), w, 'proposal_draft', 'succeeded', '{}', 'skew', date_trunc('month', now())::date
         FROM (SELECT $1::uuid AS w, generate_series(1, 20000) UNION ALL SELECT w, generate_series(1, 10) FROM small) runs",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(t.id)
            .bind(t.client_id)
            .bind(uuid::Uuid::now_v7())
            .execute(&mut *seed)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&owner_pool).await.unwrap();
    let endpoint: uuid::Uuid = sqlx::query_scalar(
        "SELECT endpoint_id FROM webhook_deliveries WHERE workspace_id = $1 GROUP BY endpoint_id ORDER BY count(*) DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&owner_pool)
    .await
    .unwrap();

    let pool = functions_pool().await;
    let (mut tx, _) =
        TenantTx::enter(&pool, &shared::db::RateLimiter::default(), &t.owner.caller(), t.id, None, Cost::Standard)
            .await
            .unwrap();
    let audit = statement_of_the_code(&["FROM audit_log WHERE workspace_id = $1", "LIMIT $9"], &[]);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PREPARE audit_page(uuid, bigint, text, text, text, text, timestamptz, timestamptz, bigint) AS {audit}"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let (cursor, since): (i64, String) = sqlx::query_as(
        "SELECT seq, created_at::text FROM audit_log WHERE workspace_id = $1 ORDER BY seq DESC OFFSET 5000 LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let filters = [
        cursor.to_string(),
        "'user:someone'".to_owned(),
        "'update'".to_owned(),
        "'comments'".to_owned(),
        "'7'".to_owned(),
        format!("'{since}'"),
        "now()".to_owned(),
    ];
    for set in 0..1u32 << filters.len() {
        let arguments: Vec<&str> =
            filters.iter().enumerate().map(|(i, f)| if set & (1 << i) != 0 { f.as_str() } else { "NULL" }).collect();
        let execute = format!("EXECUTE audit_page('{}', {}, 51)", t.id, arguments.join(", "));
        assert_walks_in_order(&mut tx, &execute, "audit_log", &["workspace_id"]).await;
    }

    /// A page: its name, the table it reads, its parameters' types, marks of its statement, and
    /// what its index seeks.
    type Page<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a [&'a str]);
    let pages: [Page; 3] = [
        (
            "contacts",
            "client_contacts",
            "(uuid, uuid, uuid, bigint)",
            &["FROM client_contacts c JOIN users u ON u.id = c.user_id", "LIMIT $4"],
            &["client_id"],
        ),
        (
            "deliveries",
            "webhook_deliveries",
            "(uuid, uuid, text, bigint)",
            &["FROM webhook_deliveries d JOIN webhook_events e", "LIMIT $4"],
            &["endpoint_id"],
        ),
        (
            "runs",
            "ai_runs",
            "(uuid, uuid, bigint)",
            &["FROM ai_runs WHERE workspace_id = $1", "LIMIT $3"],
            &["workspace_id"],
        ),
    ];
    for (name, table, types, marks, seeks) in pages {
        prepare_page(&mut tx, &format!("page_{name}"), types, marks).await;
        let order = if table == "client_contacts" { "user_id" } else { "id" };
        let parent = match table {
            "client_contacts" => format!("client_id = '{}'", t.client_id),
            "webhook_deliveries" => format!("endpoint_id = '{endpoint}'"),
            _ => format!("workspace_id = '{}'", t.id),
        };
        let cursor = cursor_into(&mut tx, table, order, &parent).await;
        for after in ["NULL".to_owned(), format!("'{cursor}'")] {
            let executes = match name {
                "contacts" => vec![format!("EXECUTE page_contacts('{}', '{}', {after}, 26)", t.id, t.client_id)],
                "deliveries" => ["NULL", "'failed'"]
                    .iter()
                    .map(|status| format!("EXECUTE page_deliveries('{endpoint}', {after}, {status}, 26)"))
                    .collect(),
                _ => vec![format!("EXECUTE page_runs('{}', {after}, 26)", t.id)],
            };
            for execute in executes {
                assert_walks_in_order(&mut tx, &execute, table, seeks).await;
            }
        }
    }
}

/// A deliverable's files, and a comment's, in a skewed mix: one item with 5,000 ready files
/// among 300 of ten, beside pending uploads. Each page walks its own index in order and stops at
/// the page, with and without a cursor, for a member and for a client contact (whose rows pass
/// through the items' own policies), under the functions' generic plans.
#[tokio::test]
async fn the_files_page_walks_its_index_in_a_skewed_mix_for_members_and_contacts() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("skewed-files").await;
    let owner_pool = integration_tests::owner_pool().await;
    let mut seed = seeding_session(&owner_pool).await;
    for statement in [
        "INSERT INTO deliverables (id, workspace_id, project_id, title, client_visible)
         SELECT app.uuid_v7(), $1, $2, 'D ' || n, true FROM generate_series(1, 300) n",
        "INSERT INTO comments (id, workspace_id, project_id, body, client_visible)
         SELECT app.uuid_v7(), $1, $2, 'C ' || n, true FROM generate_series(1, 300) n",
        "INSERT INTO files (id, workspace_id, project_id, deliverable_id, name, content_type, size_bytes,
                            state, upload_expires_at, confirmed_at)
         SELECT app.uuid_v7(), d.workspace_id, d.project_id, d.id, 'f' || n, 'application/pdf', 100,
                CASE WHEN n % 10 = 0 THEN 'pending' ELSE 'ready' END::file_state, now(),
                CASE WHEN n % 10 = 0 THEN NULL ELSE now() END
         FROM deliverables d, generate_series(1, CASE WHEN d.id = $3 THEN 5500 ELSE 10 END) n
         WHERE d.workspace_id = $1",
        "INSERT INTO files (id, workspace_id, project_id, comment_id, name, content_type, size_bytes,
                            state, upload_expires_at, confirmed_at)
         SELECT app.uuid_v7(), c.workspace_id, c.project_id, c.id, 'f' || n, 'image/png', 100,
                CASE WHEN n % 10 = 0 THEN 'pending' ELSE 'ready' END::file_state, now(),
                CASE WHEN n % 10 = 0 THEN NULL ELSE now() END
         FROM comments c, generate_series(1, CASE WHEN c.id = $4 THEN 5500 ELSE 10 END) n
         WHERE c.workspace_id = $1",
    ] {
        sqlx::query(statement)
            .bind(t.id)
            .bind(t.project_id)
            .bind(t.visible_deliverable_id)
            .bind(t.visible_comment_id)
            .execute(&mut *seed)
            .await
            .unwrap();
    }
    seed.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&owner_pool).await.unwrap();

    let pool = functions_pool().await;
    // Each parent's page, from its own index.
    for (parent, column, item) in
        [("deliverable", "deliverable_id", t.visible_deliverable_id), ("comment", "comment_id", t.visible_comment_id)]
    {
        let cursor: uuid::Uuid = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM files WHERE {column} = $1 AND state = 'ready' ORDER BY id DESC OFFSET 100 LIMIT 1"
        )))
        .bind(item)
        .fetch_one(&owner_pool)
        .await
        .unwrap();
        for (name, reader) in [("member", &t.member), ("contact", &t.contact)] {
            let (mut tx, _) = TenantTx::enter(
                &pool,
                &shared::db::RateLimiter::default(),
                &reader.caller(),
                t.id,
                Some(t.project_id),
                Cost::Standard,
            )
            .await
            .unwrap();
            let parent_mark = format!("{column} = $2");
            let marks = ["FROM files", parent_mark.as_str(), "AND state = 'ready'", "LIMIT $5"];
            let statement = format!("page_{parent}_files_{name}");
            prepare_page(&mut tx, &statement, "(uuid, uuid, uuid, uuid, bigint)", &marks).await;
            for after in ["NULL".to_owned(), format!("'{cursor}'")] {
                let execute = format!("EXECUTE {statement}('{}', '{item}', '{}', {after}, 26)", t.id, t.project_id);
                assert_walks_in_order(&mut tx, &execute, "files", &["workspace_id", column]).await;
                let rows = sqlx::query(sqlx::AssertSqlSafe(execute.clone())).fetch_all(&mut *tx).await.unwrap();
                assert_eq!(rows.len(), 26, "{execute}: a full page (and one more, to know there is a next)");
            }
        }
    }
}

//! Row-level security by raw SQL under the API role, with one workspace's identity set exactly
//! as the functions set it: nothing of another workspace can be read, changed, deleted or forged.

use integration_tests::{Tenant, TestApp, TestUser, api_pool, count, owner_pool, service_pool};
use serde_json::Value;
use shared::auth::Caller;
use shared::db::{Cost, TenantTx};
use sqlx::PgPool;
use uuid::Uuid;

/// Every tenant table and the column that names its workspace, from the catalog: each table
/// with a `workspace_id`, plus `workspaces` itself. A table added later is covered without
/// anyone listing it (and `fill_every_table` fails until the fixture gives it rows).
async fn tenant_tables() -> Vec<(String, String)> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, 'workspace_id' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped)
         UNION ALL SELECT 'workspaces', 'id'
         ORDER BY 1",
    )
    .fetch_all(&owner_pool().await)
    .await
    .unwrap();
    assert!(tables.len() >= 15, "expected every tenant table, found {tables:?}");
    tables
}

/// Gives the tenant rows in the tables the API fixture does not fill (billing, AI, trails),
/// then checks that every tenant table has some, so no isolation check below is vacuous.
async fn fill_every_table(tenant: &Tenant) {
    integration_tests::fill_other_tables(tenant).await;
    let owner = owner_pool().await;
    for (table, column) in tenant_tables().await {
        let rows: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE {column} = $1")))
            .bind(tenant.id)
            .fetch_one(&owner)
            .await
            .unwrap();
        assert!(rows > 0, "{table} has no rows for the fixture tenant; give it some in fill_every_table");
    }
}

fn caller(user: &TestUser) -> Caller {
    Caller::new(integration_tests::HS256_ISSUER.to_owned(), user.subject.clone(), Some(user.email.clone()))
}

async fn as_user(pool: &PgPool, user: &TestUser) -> TenantTx {
    TenantTx::begin(pool, &caller(user)).await.expect("begin as user")
}

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

async fn snapshot(tenant: &Tenant) -> Vec<i64> {
    let service = service_pool().await;
    let mut counts = Vec::new();
    for (table, column) in tenant_tables().await {
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE {column} = $1")))
            .bind(tenant.id)
            .fetch_one(&service)
            .await
            .unwrap();
        counts.push(n);
    }
    counts
}

#[tokio::test]
async fn select_without_where_returns_only_the_callers_workspace() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    fill_every_table(&a).await;
    fill_every_table(&b).await;
    let pool = api_pool().await;
    for (table, column) in tenant_tables().await {
        let mut tx = as_user(&pool, &a.owner).await;
        let seen: Result<(i64, i64), _> = sqlx::query_as(sql(format!(
            "SELECT count(*) FILTER (WHERE {column} = $1), count(*) FILTER (WHERE {column} <> $1) FROM {table}"
        )))
        .bind(a.id)
        .fetch_one(&mut *tx)
        .await;
        match seen {
            Ok((mine, others)) => {
                assert!(
                    mine > 0 || NOT_READ_BY_OWNERS.contains(&table.as_str()),
                    "{table}: the owner should see their own rows"
                );
                assert_eq!(others, 0, "{table}: rows of another workspace are visible");
            }
            // No privilege at all on the table is isolation too (service-only tables).
            Err(error) => assert_denied(&error, &table),
        }
    }
}

#[tokio::test]
async fn update_and_delete_of_another_workspace_touch_nothing() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    fill_every_table(&a).await;
    fill_every_table(&b).await;
    let before = snapshot(&b).await;
    let pool = api_pool().await;
    for (table, column) in tenant_tables().await {
        for statement in [
            format!("UPDATE {table} SET {column} = {column} WHERE {column} = $1"),
            format!("DELETE FROM {table} WHERE {column} = $1"),
        ] {
            let mut tx = as_user(&pool, &a.owner).await;
            match sqlx::query(sql(statement.clone())).bind(b.id).execute(&mut *tx).await {
                Ok(done) => assert_eq!(done.rows_affected(), 0, "{statement}: reached another workspace"),
                Err(error) => assert_denied(&error, &statement),
            }
            tx.commit().await.unwrap();
        }
    }
    // Moving one's own rows into another workspace is refused too.
    let mut tx = as_user(&pool, &a.owner).await;
    let moved = sqlx::query("UPDATE clients SET workspace_id = $2 WHERE workspace_id = $1")
        .bind(a.id)
        .bind(b.id)
        .execute(&mut *tx)
        .await;
    assert_rls_violation(moved.map(|_| ()), "clients moved to another workspace");
    assert_eq!(snapshot(&b).await, before);
}

#[tokio::test]
async fn inserts_carrying_another_workspaces_id_are_refused() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    fill_every_table(&a).await;
    fill_every_table(&b).await;
    let before = snapshot(&b).await;
    let (owner, pool) = (owner_pool().await, api_pool().await);
    for (table, column) in tenant_tables().await {
        // One of A's own rows, moved into B (with a fresh id where the table has one): the
        // forged row is valid in every way but its workspace.
        let forged: Value = sqlx::query_scalar(sql(format!(
            "SELECT to_jsonb(t) || jsonb_build_object('{column}', $2::uuid)
                   || CASE WHEN to_jsonb(t) ? 'id' AND '{column}' <> 'id'
                           THEN jsonb_build_object('id', CASE WHEN jsonb_typeof(to_jsonb(t) -> 'id') = 'string'
                                                                  AND (to_jsonb(t) ->> 'id') ~ '^[0-9a-f-]{{36}}$'
                                                             THEN to_jsonb(gen_random_uuid()) ELSE to_jsonb('forged_' || gen_random_uuid()) END)
                           ELSE '{{}}' END
             FROM {table} t WHERE {column} = $1 LIMIT 1"
        )))
        .bind(a.id)
        .bind(b.id)
        .fetch_one(&owner)
        .await
        .unwrap();
        let mut tx = as_user(&pool, &a.owner).await;
        let inserted =
            sqlx::query(sql(format!("INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, $1)")))
                .bind(&forged)
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => panic!("{table}: a row forged into another workspace was inserted: {forged}"),
            Err(error) => assert_denied(&error, &table),
        }
    }
    assert_eq!(snapshot(&b).await, before);
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_write_by_sql() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let pool = api_pool().await;
    let mut tx = as_user(&pool, &a.viewer).await;
    let projects: i64 = sqlx::query_scalar("SELECT count(*) FROM projects").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(projects, 2);
    for table in ["projects", "milestones", "deliverables", "comments", "clients", "workspace_members", "workspaces"] {
        let column = if table == "workspaces" { "id" } else { "workspace_id" };
        let updated =
            sqlx::query(sql(format!("UPDATE {table} SET {column} = {column}"))).execute(&mut *tx).await.unwrap();
        assert_eq!(updated.rows_affected(), 0, "viewer updated {table}");
    }
    let deleted = sqlx::query("DELETE FROM projects").execute(&mut *tx).await.unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    let insert = sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'x')")
        .bind(Uuid::now_v7())
        .bind(a.id)
        .execute(&mut *tx)
        .await;
    assert_rls_violation(insert.map(|_| ()), "viewer inserted a project");
}

#[tokio::test]
async fn a_client_contact_sees_only_its_clients_shared_items_by_sql() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let pool = api_pool().await;
    let mut tx = as_user(&pool, &a.contact).await;
    let projects: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM projects").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(projects, vec![a.project_id], "only the client's project, not the internal one");
    let deliverables: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM deliverables").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(deliverables, vec![a.visible_deliverable_id]);
    let comments: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM comments").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(comments, vec![a.visible_comment_id]);
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_members").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(members, 0, "a contact does not see the team");
    let milestones: i64 = sqlx::query_scalar("SELECT count(*) FROM milestones").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(milestones, 1);
    // Its client only through the portal view: no internal columns, no other client.
    let clients: i64 = sqlx::query_scalar("SELECT count(*) FROM clients").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(clients, 0, "a contact reads no row of the clients table itself");
    let portal: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM client_portal").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(portal, vec![(a.client_id, "Acme".to_owned())]);
    let internal = sqlx::query("SELECT notes FROM client_portal").fetch_all(&mut *tx).await;
    assert!(internal.is_err(), "the portal view has no notes column");
    let mut tx = as_user(&pool, &a.contact).await;
    // May comment on its project, but only client-visibly, and only as itself.
    let hidden = sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'x', false)",
    )
    .bind(Uuid::now_v7())
    .bind(a.id)
    .bind(a.project_id)
    .bind(a.contact.id)
    .execute(&mut *tx)
    .await;
    assert_rls_violation(hidden.map(|_| ()), "contact wrote a team-only comment");
    let mut tx = as_user(&pool, &a.contact).await;
    let impersonated = sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'x', true)",
    )
    .bind(Uuid::now_v7())
    .bind(a.id)
    .bind(a.project_id)
    .bind(a.owner.id)
    .execute(&mut *tx)
    .await;
    assert_rls_violation(impersonated.map(|_| ()), "contact wrote as someone else");
    let mut tx = as_user(&pool, &a.contact).await;
    sqlx::query("INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'ok', true)")
        .bind(Uuid::now_v7())
        .bind(a.id)
        .bind(a.project_id)
        .bind(a.contact.id)
        .execute(&mut *tx)
        .await
        .expect("a contact may comment client-visibly on its project");
    let internal = sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'x', true)",
    )
    .bind(Uuid::now_v7())
    .bind(a.id)
    .bind(a.internal_project_id)
    .bind(a.contact.id)
    .execute(&mut *tx)
    .await;
    assert_rls_violation(internal.map(|_| ()), "contact commented on a project not of its client");
}

#[tokio::test]
async fn the_portal_view_shows_members_nothing_and_contacts_only_their_client() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    let pool = api_pool().await;
    let mut tx = as_user(&pool, &a.owner).await;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM client_portal").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 0, "the portal view is for contacts; the team reads clients");
    let mut tx = as_user(&pool, &b.contact).await;
    let theirs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM client_portal").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(theirs, vec![b.client_id]);
    let written = sqlx::query("UPDATE client_portal SET name = 'x'").execute(&mut *tx).await;
    assert!(written.is_err(), "the portal view is read-only");
}

#[tokio::test]
async fn without_an_identity_nothing_is_visible() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let pool = api_pool().await;
    fill_every_table(&a).await;
    for (table, _) in tenant_tables().await {
        match sqlx::query_scalar::<_, i64>(sql(format!("SELECT count(*) FROM {table}"))).fetch_one(&pool).await {
            Ok(n) => assert_eq!(n, 0, "{table} visible without app.user_id"),
            Err(error) => assert_denied(&error, &table),
        }
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(users, 0);
    assert!(count(&service_pool().await, "projects", a.id).await > 0, "the rows exist");
}

#[tokio::test]
async fn the_identity_does_not_outlive_its_transaction() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    // One connection, so the second query reuses the very session the first transaction used.
    let pool = integration_tests::api_pool_of(1).await;
    let tx = as_user(&pool, &a.owner).await;
    tx.commit().await.unwrap();
    let leaked: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('app.user_id', true), '')").fetch_one(&pool).await.unwrap();
    assert_eq!(leaked, None);
}

/// Tables an owner has no reason to read through the API role (the billing worker's own).
const NOT_READ_BY_OWNERS: [&str; 2] = ["stripe_events", "subscription_cancellations"];

/// Refused by row-level security or by privileges: both are SQLSTATE 42501.
#[track_caller]
fn assert_denied(error: &sqlx::Error, what: &str) {
    match error {
        sqlx::Error::Database(db) => assert_eq!(db.code().as_deref(), Some("42501"), "{what}: {db}"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[track_caller]
fn assert_rls_violation(result: Result<(), sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(db)) => assert_eq!(db.code().as_deref(), Some("42501"), "{what}: {db}"),
        other => panic!("{what}: expected a row-level security violation, got {other:?}"),
    }
}

/// Each worker's role reaches only its own tables: what it has no grant on is refused outright,
/// and the API's tenant data (projects, comments, members, clients) is out of every worker's
/// reach.
#[tokio::test]
async fn each_worker_role_reaches_only_the_tables_it_works_on() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    fill_every_table(&a).await;
    let reach: [(&str, &[&str]); 7] = [
        (
            "app_billing",
            &[
                "workspaces",
                "subscriptions",
                "stripe_events",
                "checkout_sessions",
                "subscription_cancellations",
                "seat_syncs",
                "plans",
            ],
        ),
        ("app_usage", &["usage_records", "workspaces"]),
        ("app_sweeper", &["ai_runs", "ai_quota_usage", "usage_records", "workspaces"]),
        ("app_mailer", &["emails"]),
        ("app_webhooks", &["webhook_endpoints", "webhook_events", "webhook_deliveries"]),
        ("app_fanout", &["activity", "realtime_subscriptions"]),
        ("app_files", &["files", "file_deletions"]),
    ];
    let mut tables = tenant_tables().await.into_iter().map(|(table, _)| table).collect::<Vec<_>>();
    tables.extend(["users".to_owned(), "plans".to_owned()]);
    for (role, readable) in reach {
        let pool = integration_tests::worker_pool(role).await;
        for table in &tables {
            let read =
                sqlx::query_scalar::<_, i64>(sql(format!("SELECT count(*) FROM {table}"))).fetch_one(&pool).await;
            if readable.contains(&table.as_str()) {
                assert!(read.unwrap() > 0, "{role} should read {table}");
            } else {
                match read {
                    Err(error) => assert_denied(&error, &format!("{role} reading {table}")),
                    Ok(n) => panic!("{role} read {n} rows of {table}"),
                }
            }
        }
        // No worker deletes tenant data or touches a project.
        let deleted = sqlx::query("DELETE FROM workspaces WHERE id = $1").bind(a.id).execute(&pool).await;
        assert_denied(&deleted.unwrap_err(), &format!("{role} deleting a workspace"));
    }
    // The billing worker appends to the trails but cannot read or rewrite them.
    let billing = integration_tests::worker_pool("app_billing").await;
    sqlx::query("INSERT INTO audit_log (workspace_id, actor, action) VALUES ($1, 'stripe', 'test')")
        .bind(a.id)
        .execute(&billing)
        .await
        .expect("billing appends to the audit log");
    let rewritten = sqlx::query("UPDATE audit_log SET action = 'forged'").execute(&billing).await;
    assert_denied(&rewritten.unwrap_err(), "billing rewriting the audit log");
}

/// A transaction as the HTTP functions open one for a workspace route: the identity and the
/// workspace entered in the first statement, the policies reading what entering learned.
async fn entered(pool: &PgPool, user: &TestUser, workspace: Uuid) -> TenantTx {
    TenantTx::enter(pool, &shared::db::RateLimiter::default(), &caller(user), workspace, None, Cost::Standard)
        .await
        .expect("enter as user")
        .0
}

/// Entering narrows: a user who belongs to two workspaces, entered in one, reaches nothing of the
/// other by any statement (so a handler that forgot its workspace filter still cannot).
#[tokio::test]
async fn entered_in_one_workspace_nothing_of_another_is_reached_even_ones_own() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    fill_every_table(&a).await;
    fill_every_table(&b).await;
    sqlx::query("INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(b.id)
        .bind(a.owner.id)
        .execute(&owner_pool().await)
        .await
        .unwrap();
    let before = snapshot(&b).await;
    let pool = api_pool().await;
    for (table, column) in tenant_tables().await {
        let mut tx = entered(&pool, &a.owner, a.id).await;
        let seen: Result<(i64, i64), _> = sqlx::query_as(sql(format!(
            "SELECT count(*) FILTER (WHERE {column} = $1), count(*) FILTER (WHERE {column} <> $1) FROM {table}"
        )))
        .bind(a.id)
        .fetch_one(&mut *tx)
        .await;
        match seen {
            Ok((mine, others)) => {
                assert!(mine > 0 || NOT_READ_BY_OWNERS.contains(&table.as_str()), "{table}: own rows hidden");
                assert_eq!(others, 0, "{table}: rows of the caller's other workspace are visible");
            }
            Err(error) => assert_denied(&error, &table),
        }
        for statement in [
            format!("UPDATE {table} SET {column} = {column} WHERE {column} = $1"),
            format!("DELETE FROM {table} WHERE {column} = $1"),
        ] {
            let mut tx = entered(&pool, &a.owner, a.id).await;
            match sqlx::query(sql(statement.clone())).bind(b.id).execute(&mut *tx).await {
                Ok(done) => assert_eq!(done.rows_affected(), 0, "{statement}: reached the other workspace"),
                Err(error) => assert_denied(&error, &statement),
            }
            tx.commit().await.unwrap();
        }
    }
    let mut tx = entered(&pool, &a.owner, a.id).await;
    let insert = sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'x')")
        .bind(Uuid::now_v7())
        .bind(b.id)
        .execute(&mut *tx)
        .await;
    assert_rls_violation(insert.map(|_| ()), "entered in A, inserted into B");
    assert_eq!(snapshot(&b).await, before);
    // Without entering (the workspace list), the same user sees both of their workspaces.
    let mut tx = as_user(&pool, &a.owner).await;
    let both: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(both, 2);
}

#[tokio::test]
async fn entered_a_viewer_reads_and_a_contact_sees_only_its_clients_shared_items() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let pool = api_pool().await;
    let mut tx = entered(&pool, &a.viewer, a.id).await;
    let projects: i64 = sqlx::query_scalar("SELECT count(*) FROM projects").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(projects, 2);
    for table in ["projects", "milestones", "deliverables", "comments", "clients", "workspace_members", "workspaces"] {
        let column = if table == "workspaces" { "id" } else { "workspace_id" };
        let updated =
            sqlx::query(sql(format!("UPDATE {table} SET {column} = {column}"))).execute(&mut *tx).await.unwrap();
        assert_eq!(updated.rows_affected(), 0, "viewer updated {table}");
    }
    let insert = sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'x')")
        .bind(Uuid::now_v7())
        .bind(a.id)
        .execute(&mut *tx)
        .await;
    assert_rls_violation(insert.map(|_| ()), "viewer inserted a project");

    let mut tx = entered(&pool, &a.contact, a.id).await;
    let projects: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM projects").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(projects, vec![a.project_id], "only the client's project, not the internal one");
    let deliverables: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM deliverables").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(deliverables, vec![a.visible_deliverable_id]);
    let comments: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM comments").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(comments, vec![a.visible_comment_id]);
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_members").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(members, 0, "a contact does not see the team");
    let hidden = sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'x', false)",
    )
    .bind(Uuid::now_v7())
    .bind(a.id)
    .bind(a.project_id)
    .bind(a.contact.id)
    .execute(&mut *tx)
    .await;
    assert_rls_violation(hidden.map(|_| ()), "contact wrote a team-only comment");
}

/// What entering learned counts only for the identity it was entered for: changing
/// `app.user_id` afterwards leaves the new identity with its own stored memberships, and settings
/// written for another user count for nobody.
#[tokio::test]
async fn entered_access_counts_only_for_the_user_it_was_entered_for() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    let pool = api_pool().await;
    let mut tx = entered(&pool, &a.owner, a.id).await;
    sqlx::query("SELECT set_config('app.user_id', $1, true)")
        .bind(b.owner.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM workspaces").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(seen, vec![b.id], "the entered access of A's owner followed a changed identity");

    // A user who is nobody in A enters nothing: their transaction reads nothing of A.
    let (mut tx, entry) =
        TenantTx::enter(&pool, &shared::db::RateLimiter::default(), &caller(&b.owner), a.id, None, Cost::Standard)
            .await
            .unwrap();
    assert!(entry.member_role.is_none() && !entry.is_contact);
    for table in ["workspaces", "projects", "comments", "clients"] {
        let column = if table == "workspaces" { "id" } else { "workspace_id" };
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE {column} = $1")))
            .bind(a.id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} of A visible to an outsider who tried to enter it");
    }
}

/// A contact's project, checked by the opening, is entered for the item policies (so a page of
/// its comments skips the per-row project probe): only a project of the contact's clients is
/// entered, only for that contact, and it shows only that project's client-visible items.
#[tokio::test]
async fn a_contacts_entered_project_shows_only_its_shared_items_and_only_to_that_contact() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    // Shared items on the internal project: no contact of the client may see them.
    let owner = owner_pool().await;
    sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'x', true)",
    )
    .bind(Uuid::now_v7())
    .bind(a.id)
    .bind(a.internal_project_id)
    .bind(a.owner.id)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query("INSERT INTO milestones (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'x')")
        .bind(Uuid::now_v7())
        .bind(a.id)
        .bind(a.internal_project_id)
        .execute(&owner)
        .await
        .unwrap();
    let pool = api_pool().await;
    for (project, visible) in [(a.project_id, true), (a.internal_project_id, false)] {
        let (mut tx, entry) = TenantTx::enter(
            &pool,
            &shared::db::RateLimiter::default(),
            &caller(&a.contact),
            a.id,
            Some(project),
            Cost::Standard,
        )
        .await
        .unwrap();
        assert_eq!(entry.project_visible, visible);
        let entered: String = sqlx::query_scalar("SELECT current_setting('app.entered_project', true)")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(entered, if visible { project.to_string() } else { String::new() });
        let comments: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM comments").fetch_all(&mut *tx).await.unwrap();
        assert_eq!(comments, vec![a.visible_comment_id], "entered {project}: comments");
        let deliverables: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM deliverables").fetch_all(&mut *tx).await.unwrap();
        assert_eq!(deliverables, vec![a.visible_deliverable_id], "entered {project}: deliverables");
        let milestones: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM milestones").fetch_all(&mut *tx).await.unwrap();
        assert_eq!(milestones, vec![a.milestone_id], "entered {project}: milestones");
    }
    // Entered for the contact, the project counts for no other identity.
    let (mut tx, _) = TenantTx::enter(
        &pool,
        &shared::db::RateLimiter::default(),
        &caller(&a.contact),
        a.id,
        Some(a.project_id),
        Cost::Standard,
    )
    .await
    .unwrap();
    sqlx::query("SELECT set_config('app.user_id', $1, true)")
        .bind(b.owner.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in ["milestones", "deliverables", "comments"] {
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE project_id = $1")))
            .bind(a.project_id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}: the contact's entered project counted for another identity");
    }
}

/// The transaction is opened by hand (BEGIN and the first statement in one round trip), so what
/// sqlx's own transaction guarantees is proven here: dropping it rolls back, even mid-query, and
/// the connection goes back to the pool clean, with no identity or entered workspace left on it.
#[tokio::test]
async fn a_dropped_or_cancelled_transaction_rolls_back_and_leaves_its_connection_clean() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let pool = integration_tests::api_pool_of(1).await;
    let project = Uuid::now_v7();
    {
        let mut tx = entered(&pool, &a.owner, a.id).await;
        sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'dropped')")
            .bind(project)
            .bind(a.id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut tx = entered(&pool, &a.owner, a.id).await;
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE id = $1")
        .bind(project)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(kept, 0, "a dropped transaction's insert was kept");
    // Cancelled while a statement runs: the future is dropped mid-query.
    let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *tx);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(50), slow).await.is_err());
    drop(tx);
    let mut conn = pool.acquire().await.unwrap();
    let settings: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT nullif(current_setting('app.user_id', true), ''), nullif(current_setting('app.entered_workspace', true), '')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(settings, (None, None), "the connection came back with the old transaction's settings");
    // A savepoint needs an open transaction block: refused here means the old one was ended.
    match sqlx::raw_sql("SAVEPOINT probe").execute(&mut *conn).await {
        Err(sqlx::Error::Database(db)) => assert_eq!(db.code().as_deref(), Some("25P01"), "{db}"),
        other => panic!("the connection came back inside the old transaction: {other:?}"),
    }
    drop(conn);
    // And a committed one is kept.
    let mut tx = entered(&pool, &a.owner, a.id).await;
    sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'kept')")
        .bind(project)
        .bind(a.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&service_pool().await, "projects", a.id).await, 3);
}

//! Row-level security by raw SQL under the API role, with one workspace's identity set exactly
//! as the functions set it: nothing of another workspace can be read, changed, deleted or forged.

use integration_tests::{Tenant, TestApp, TestUser, api_pool, count, service_pool};
use shared::auth::Caller;
use shared::db::TenantTx;
use sqlx::PgPool;
use uuid::Uuid;

/// Tenant tables and the column that names their workspace.
const TENANT_TABLES: [(&str, &str); 8] = [
    ("workspaces", "id"),
    ("workspace_members", "workspace_id"),
    ("clients", "workspace_id"),
    ("client_contacts", "workspace_id"),
    ("projects", "workspace_id"),
    ("milestones", "workspace_id"),
    ("deliverables", "workspace_id"),
    ("comments", "workspace_id"),
];

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
    for (table, column) in TENANT_TABLES {
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
    let (a, _b) = (app.tenant("a").await, app.tenant("b").await);
    let pool = api_pool().await;
    for (table, column) in TENANT_TABLES {
        let mut tx = as_user(&pool, &a.owner).await;
        let (mine, others): (i64, i64) = sqlx::query_as(sql(format!(
            "SELECT count(*) FILTER (WHERE {column} = $1), count(*) FILTER (WHERE {column} <> $1) FROM {table}"
        )))
        .bind(a.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert!(mine > 0, "{table}: the owner should see their own rows");
        assert_eq!(others, 0, "{table}: rows of another workspace are visible");
    }
}

#[tokio::test]
async fn update_and_delete_of_another_workspace_touch_nothing() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    let before = snapshot(&b).await;
    let pool = api_pool().await;
    for (table, column) in TENANT_TABLES {
        let mut tx = as_user(&pool, &a.owner).await;
        let updated = sqlx::query(sql(format!("UPDATE {table} SET {column} = {column} WHERE {column} = $1")))
            .bind(b.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(updated.rows_affected(), 0, "{table}: UPDATE reached another workspace");
        let deleted = sqlx::query(sql(format!("DELETE FROM {table} WHERE {column} = $1")))
            .bind(b.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 0, "{table}: DELETE reached another workspace");
        tx.commit().await.unwrap();
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
    let before = snapshot(&b).await;
    let pool = api_pool().await;
    let me = a.owner.id;
    let attempts: Vec<(&str, sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>)> = vec![
        ("workspaces", sqlx::query("INSERT INTO workspaces (id, name, created_by) VALUES ($1, 'forged', $2)").bind(Uuid::now_v7()).bind(me)),
        (
            "workspace_members",
            sqlx::query("INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')").bind(b.id).bind(me),
        ),
        ("clients", sqlx::query("INSERT INTO clients (id, workspace_id, name) VALUES ($1, $2, 'x')").bind(Uuid::now_v7()).bind(b.id)),
        (
            "client_contacts",
            sqlx::query("INSERT INTO client_contacts (workspace_id, client_id, user_id) VALUES ($1, $2, $3)")
                .bind(b.id)
                .bind(b.client_id)
                .bind(me),
        ),
        ("projects", sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'x')").bind(Uuid::now_v7()).bind(b.id)),
        (
            "milestones",
            sqlx::query("INSERT INTO milestones (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'x')")
                .bind(Uuid::now_v7())
                .bind(b.id)
                .bind(b.project_id),
        ),
        (
            "deliverables",
            sqlx::query("INSERT INTO deliverables (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'x')")
                .bind(Uuid::now_v7())
                .bind(b.id)
                .bind(b.project_id),
        ),
        (
            "comments",
            sqlx::query("INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES ($1, $2, $3, $4, 'x', true)")
                .bind(Uuid::now_v7())
                .bind(b.id)
                .bind(b.project_id)
                .bind(me),
        ),
    ];
    assert_eq!(attempts.len(), TENANT_TABLES.len(), "one forged insert per tenant table");
    for (table, insert) in attempts {
        let mut tx = as_user(&pool, &a.owner).await;
        assert_rls_violation(insert.execute(&mut *tx).await.map(|_| ()), table);
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
async fn without_an_identity_nothing_is_visible() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let pool = api_pool().await;
    for (table, _) in TENANT_TABLES {
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table}"))).fetch_one(&pool).await.unwrap();
        assert_eq!(n, 0, "{table} visible without app.user_id");
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
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&integration_tests::database().api_url)
        .await
        .unwrap();
    let tx = as_user(&pool, &a.owner).await;
    tx.commit().await.unwrap();
    let leaked: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('app.user_id', true), '')").fetch_one(&pool).await.unwrap();
    assert_eq!(leaked, None);
}

#[track_caller]
fn assert_rls_violation(result: Result<(), sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(db)) => assert_eq!(db.code().as_deref(), Some("42501"), "{what}: {db}"),
        other => panic!("{what}: expected a row-level security violation, got {other:?}"),
    }
}

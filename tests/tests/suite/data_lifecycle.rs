//! Leaving: deleting a workspace leaves no tenant row behind but the records kept on purpose
//! (checked over every table from the catalog, so a new table cannot be forgotten), and a person
//! deleting their account takes their memberships, contact links and e-mail with them.

use axum::http::StatusCode;
use integration_tests::{TestApp, count, fill_other_tables, owner_pool, service_pool};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// What a workspace's deletion keeps, and why: the audit trail (its chain and head) for the
/// platform's accountability, and the billing records (Stripe's events received, subscriptions
/// to cancel) whose invoices Stripe keeps by law; none holds people's names or addresses beyond
/// what Stripe itself already has; and the objects of its files still to delete from the files
/// bucket, until the files worker has deleted them (each row goes then).
const KEPT: [&str; 5] =
    ["audit_chain_heads", "audit_log", "file_deletions", "stripe_events", "subscription_cancellations"];

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Every table with a workspace, from the catalog.
async fn tenant_tables(owner: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped)
         ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

async fn rows_of(owner: &PgPool, workspace: Uuid) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    for table in tenant_tables(owner).await {
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE workspace_id = $1")))
            .bind(workspace)
            .fetch_one(owner)
            .await
            .unwrap();
        rows.push((table, n));
    }
    rows
}

#[tokio::test]
async fn deleting_a_workspace_leaves_nothing_of_it_but_the_records_kept_on_purpose() {
    let app = TestApp::new().await;
    let (gone, kept) = (app.tenant("lifecycle-gone").await, app.tenant("lifecycle-kept").await);
    fill_other_tables(&gone).await;
    fill_other_tables(&kept).await;
    let owner = owner_pool().await;
    let before = rows_of(&owner, gone.id).await;
    assert!(before.iter().all(|(_, n)| *n > 0), "the fixture fills every table: {before:?}");
    let other_before = rows_of(&owner, kept.id).await;

    app.delete(&gone.owner, &gone.path()).await.expect(StatusCode::NO_CONTENT);

    for (table, n) in rows_of(&owner, gone.id).await {
        if KEPT.contains(&table.as_str()) {
            continue;
        }
        assert_eq!(n, 0, "{table} keeps rows of a deleted workspace");
    }
    let audit: i64 = count(&owner, "audit_log", gone.id).await;
    assert!(audit > 0, "the audit trail outlives its workspace");
    assert_eq!(rows_of(&owner, kept.id).await, other_before, "another workspace lost rows");
    // No row can linger with its workspace unset, except in the tables kept on purpose.
    let unset: Vec<String> = sqlx::query_scalar(
        "SELECT conrelid::regclass::text FROM pg_constraint
         WHERE contype = 'f' AND confrelid = 'workspaces'::regclass AND confdeltype <> 'c'",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(unset.iter().all(|t| KEPT.contains(&t.as_str())), "foreign keys that keep rows: {unset:?}");
}

#[tokio::test]
async fn the_last_owner_of_a_shared_workspace_cannot_delete_their_account() {
    let app = TestApp::new().await;
    let t = app.tenant("lifecycle-owner").await;
    let refused = app.delete(&t.owner, "/v1/me").await;
    assert_eq!(refused.problem(StatusCode::CONFLICT), "last_owner");
    assert!(refused.body["detail"].as_str().unwrap().contains("lifecycle-owner studio"), "{}", refused.body);
    app.get(&t.owner, &t.path()).await.expect(StatusCode::OK);
    // Made someone else an owner, they can go; the workspace stays with its other members.
    app.put(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id), json!({"role": "owner"}))
        .await
        .expect(StatusCode::OK);
    app.delete(&t.owner, "/v1/me").await.expect(StatusCode::NO_CONTENT);
    let members: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM workspace_members WHERE workspace_id = $1")
        .bind(t.id)
        .fetch_all(&service_pool().await)
        .await
        .unwrap();
    assert!(!members.contains(&t.owner.id) && members.contains(&t.admin.id));
    let created_by: Option<Uuid> = sqlx::query_scalar("SELECT created_by FROM workspaces WHERE id = $1")
        .bind(t.id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(created_by, None, "the workspace outlives its creator");
}

#[tokio::test]
async fn a_deleted_account_takes_its_memberships_links_and_address_along() {
    let app = TestApp::new().await;
    let t = app.tenant("lifecycle-member").await;
    let leaver = app.user("lifecycle-leaver").await;
    // A member of t (where they wrote a comment), the only member of a workspace of their own,
    // and a client contact of another workspace, which also invited them.
    app.add_member(&t.owner, t.id, &leaver, "member").await;
    let comment = app.post(&leaver, &format!("{}/comments", t.project_path()), json!({"body": "Bye"})).await.id();
    let own = app.workspace(&leaver, "Leaver's own").await;
    let elsewhere = app.tenant("lifecycle-elsewhere").await;
    app.add_contact(&elsewhere.owner, elsewhere.id, elsewhere.client_id, &leaver).await;
    app.post(
        &elsewhere.owner,
        &format!("{}/invitations", elsewhere.path()),
        json!({"email": leaver.email, "role": "viewer"}),
    )
    .await
    .expect(StatusCode::CREATED);

    app.delete(&leaver, "/v1/me").await.expect(StatusCode::NO_CONTENT);

    let service = service_pool().await;
    let remaining = |query: &'static str| {
        let service = service.clone();
        async move { sqlx::query_scalar::<_, i64>(query).bind(leaver.id).fetch_one(&service).await.unwrap() }
    };
    assert_eq!(remaining("SELECT count(*) FROM users WHERE id = $1").await, 0);
    assert_eq!(remaining("SELECT count(*) FROM workspace_members WHERE user_id = $1").await, 0);
    assert_eq!(remaining("SELECT count(*) FROM client_contacts WHERE user_id = $1").await, 0);
    let address = leaver.email.to_lowercase();
    for (table, column) in [("invitations", "email"), ("emails", "to_address")] {
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE lower({column}) = $1")))
            .bind(&address)
            .fetch_one(&service)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} still holds the address");
    }
    let shown: i64 =
        sqlx::query_scalar("SELECT count(*) FROM activity WHERE message LIKE '%' || $1 || '%' OR subject_name = $1")
            .bind(&leaver.email)
            .fetch_one(&service)
            .await
            .unwrap();
    assert_eq!(shown, 0, "the activity feed still shows the address");
    // Their own workspace went with them; what they wrote elsewhere stays, authorless.
    assert_eq!(count(&service, "workspace_members", own).await, 0);
    let workspace: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces WHERE id = $1")
        .bind(own)
        .fetch_one(&service)
        .await
        .unwrap();
    assert_eq!(workspace, 0);
    let author: Option<Uuid> = sqlx::query_scalar("SELECT author_id FROM comments WHERE id = $1")
        .bind(comment)
        .fetch_one(&service)
        .await
        .unwrap();
    assert_eq!(author, None);
    // An API key has no account to delete.
    let key = app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "K", "role": "member"})).await;
    let key = key.body["key"].as_str().unwrap().to_owned();
    let request =
        axum::http::Request::delete("/v1/me").header("x-api-key", key).body(axum::body::Body::empty()).unwrap();
    assert_eq!(app.send(request).await.problem(StatusCode::FORBIDDEN), "forbidden");
}

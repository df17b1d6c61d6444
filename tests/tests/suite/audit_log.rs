//! The audit log: one entry per change of tenant data, written by the database in the same
//! transaction with the right actor; append-only for every role; a hash chain per workspace that
//! shows an edit made around the grants; readable by owners and admins through the API.

use axum::http::StatusCode;
use integration_tests::{Tenant, TestApp, owner_pool, service_pool, subscribe, worker_pool};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Tables with a workspace that are not audited, and why: the log itself and its chain heads,
/// the activity feed and the e-mail outbox (written alongside changes that are audited), and
/// Stripe's inbound event ledger (its effects on subscriptions are audited), and the outgoing
/// webhook outbox and its delivery log (each event is caused by an audited change; the endpoints
/// themselves are audited), live WebSocket subscriptions (they come and go by the second and
/// read, never change, tenant data), and the seat sync ledger (raised by audited member and
/// invitation changes; Stripe's quantity comes back through audited subscription syncs), and
/// the files' bookkeeping: the storage in use and the deletion outbox, both moved only by the
/// triggers of audited file changes.
const NOT_AUDITED: [&str; 12] = [
    "activity",
    "audit_chain_heads",
    "audit_log",
    "emails",
    "file_deletions",
    "realtime_subscriptions",
    "seat_syncs",
    "stripe_events",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_events",
    "workspace_storage",
];

/// Every tenant table from the catalog: each table with a `workspace_id`, and `workspaces`.
async fn tenant_tables(owner: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND (c.relname = 'workspaces' OR EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped))
         ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_tenant_table_has_the_audit_trigger() {
    let owner = owner_pool().await;
    let tables = tenant_tables(&owner).await;
    assert!(tables.len() >= 15, "{tables:?}");
    for table in tables.iter().filter(|t| !NOT_AUDITED.contains(&t.as_str())) {
        let trigger: Option<String> = sqlx::query_scalar(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
             WHERE t.tgrelid = $1::regclass AND t.tgname = 'audit' AND t.tgenabled = 'O'",
        )
        .bind(table)
        .fetch_optional(&owner)
        .await
        .unwrap();
        let trigger = trigger.unwrap_or_else(|| panic!("{table} has no audit trigger; add one (or say why not)"));
        assert!(
            trigger.contains("AFTER INSERT OR DELETE OR UPDATE") && trigger.contains("FOR EACH ROW"),
            "{table}: {trigger}"
        );
    }
}

/// A subscription, and rows in the tables the API fixture does not fill.
async fn fill(tenant: &Tenant) {
    subscribe(tenant.id, "studio", "active").await;
    integration_tests::fill_other_tables(tenant).await;
}

/// The audit entries of one table's rows in a workspace, as (action, actor).
async fn entries(pool: &PgPool, workspace_id: Uuid, table: &str, since_seq: i64) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT action, actor FROM audit_log WHERE workspace_id = $1 AND table_name = $2 AND seq > $3 ORDER BY seq",
    )
    .bind(workspace_id)
    .bind(table)
    .bind(since_seq)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn head(pool: &PgPool, workspace_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit_log WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// For every audited table: an update, a delete and an insert of one of the tenant's rows each
/// leave exactly one entry, with the acting service as actor (a cascade a delete causes leaves
/// none of its own: the delete that caused it is the entry).
#[tokio::test]
async fn every_insert_update_and_delete_of_every_tenant_table_leaves_exactly_one_entry() {
    let app = TestApp::new().await;
    let t = app.tenant("audited").await;
    fill(&t).await;
    let owner = owner_pool().await;
    let mut tables = tenant_tables(&owner).await;
    tables.retain(|t| !NOT_AUDITED.contains(&t.as_str()));
    // Children before their parents (a delete cascades down): deepest in the foreign-key tree
    // under `workspaces` first, the workspace itself last.
    let depths: Vec<(String, i32)> = sqlx::query_as(
        "WITH RECURSIVE fk AS (
             SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
             FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid),
         depth (name, d) AS (
             SELECT 'workspaces', 0
             UNION ALL SELECT fk.child, depth.d + 1 FROM fk JOIN depth ON fk.parent = depth.name WHERE depth.d < 10)
         SELECT name, max(d) FROM depth GROUP BY name",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    let depth = |t: &String| depths.iter().find(|(name, _)| name == t).map_or(0, |(_, d)| *d);
    tables.sort_by_key(|t| std::cmp::Reverse(depth(t)));
    for table in &tables {
        let column = if table == "workspaces" { "id" } else { "workspace_id" };
        let pick = match table.as_str() {
            "workspace_members" => format!("{column} = $1 AND role <> 'owner'"),
            _ => format!("{column} = $1"),
        };
        // A column to change: a timestamp if there is one, else a number.
        let (changed, kind): (String, String) = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a
             WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND a.atttypid IN ('timestamptz'::regtype, 'int4'::regtype)
             ORDER BY a.attname IN ('updated_at', 'created_at', 'requested_at') DESC, a.atttypid = 'timestamptz'::regtype DESC, a.attnum
             LIMIT 1",
        )
        .bind(table)
        .fetch_one(&owner)
        .await
        .unwrap_or_else(|e| panic!("{table}: no column to change: {e}"));
        let bump = if kind.starts_with("timestamp") {
            format!("coalesce({changed}, now()) + interval '1 second'")
        } else {
            format!("{changed} + 1")
        };
        let mut tx = owner.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.actor', 'audit-test', true)").execute(&mut *tx).await.unwrap();
        let before = head(&owner, t.id).await;
        let updated = sqlx::query(sql(format!(
            "UPDATE {table} SET {changed} = {bump} WHERE ctid = (SELECT ctid FROM {table} WHERE {pick} LIMIT 1)"
        )))
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
        assert_eq!(updated.rows_affected(), 1, "{table}: the fixture has no row to update");
        let row: Value = sqlx::query_scalar(sql(format!(
            "DELETE FROM {table} WHERE ctid = (SELECT ctid FROM {table} WHERE {pick} LIMIT 1) RETURNING to_jsonb({table})"
        )))
        .bind(t.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        sqlx::query(sql(format!("INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, $1)")))
            .bind(&row)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let actor = "audit-test".to_owned();
        assert_eq!(
            entries(&owner, t.id, table, before).await,
            [
                (format!("{table}.update"), actor.clone()),
                (format!("{table}.delete"), actor.clone()),
                (format!("{table}.insert"), actor)
            ],
            "{table}"
        );
        let update: Value = sqlx::query_scalar(
            "SELECT changes FROM audit_log WHERE workspace_id = $1 AND action = $2 AND seq > $3 ORDER BY seq LIMIT 1",
        )
        .bind(t.id)
        .bind(format!("{table}.update"))
        .bind(before)
        .fetch_one(&owner)
        .await
        .unwrap();
        let fields: Vec<&String> = update.as_object().unwrap().keys().collect();
        assert_eq!(fields, [&changed], "{table}: an update records the changed fields only");
        assert!(update[&changed].get("old").is_some() && update[&changed].get("new").is_some(), "{update}");
    }
    let check = shared::audit::verify_chain(&service_pool().await, t.id).await.unwrap();
    assert!(check.is_intact() && check.checked > 40, "{check:?}");
}

#[tokio::test]
async fn an_api_change_is_audited_with_the_user_and_the_request_id_and_no_secret() {
    let app = TestApp::new().await;
    let t = app.tenant("api-actor").await;
    let created = app.post(&t.member, &format!("{}/projects", t.path()), json!({"name": "Audited"})).await;
    created.expect(StatusCode::CREATED);
    let request_id = created.headers["x-request-id"].to_str().unwrap().to_owned();
    let (actor, action, row_id, changes, logged_request): (String, String, String, Value, Option<String>) =
        sqlx::query_as(
            "SELECT actor, action, row_id, changes, request_id FROM audit_log
             WHERE workspace_id = $1 AND table_name = 'projects' ORDER BY seq DESC LIMIT 1",
        )
        .bind(t.id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(actor, format!("user:{}", t.member.id));
    assert_eq!((action.as_str(), row_id), ("projects.insert", created.id().to_string()));
    assert_eq!(changes["name"]["new"], "Audited");
    assert_eq!(logged_request.as_deref(), Some(request_id.as_str()));
    // A checkout session's URL (a bearer link to pay) is never recorded.
    let session: Value = sqlx::query_scalar(
        "SELECT changes FROM audit_log WHERE table_name = 'checkout_sessions' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_optional(&service_pool().await)
    .await
    .unwrap()
    .unwrap_or(json!({}));
    assert!(session.get("url").is_none(), "{session}");
}

/// Every role is refused UPDATE, DELETE and TRUNCATE of audit entries and of the chain heads:
/// the API, service and worker roles by their grants, and even the migration owner (a superuser
/// here) by the triggers. Only the audit triggers, as the NOLOGIN `app_audit`, move a head.
#[tokio::test]
async fn no_role_can_update_delete_or_truncate_the_audit_log() {
    let app = TestApp::new().await;
    let t = app.tenant("append-only").await;
    let pools = [
        ("app_api", integration_tests::api_pool().await),
        ("app_service", service_pool().await),
        ("app_billing", worker_pool("app_billing").await),
        ("app_usage", worker_pool("app_usage").await),
        ("app_sweeper", worker_pool("app_sweeper").await),
        ("owner", owner_pool().await),
    ];
    let before = head(&owner_pool().await, t.id).await;
    assert!(before > 0);
    for (role, pool) in &pools {
        for statement in [
            "UPDATE audit_log SET action = 'forged' WHERE workspace_id = $1",
            "DELETE FROM audit_log WHERE workspace_id = $1",
            "TRUNCATE audit_log",
            "UPDATE audit_chain_heads SET seq = 0 WHERE workspace_id = $1",
            "DELETE FROM audit_chain_heads WHERE workspace_id = $1",
        ] {
            let mut tx = pool.begin().await.unwrap();
            let done = sqlx::query(statement).bind(t.id).execute(&mut *tx).await;
            match done {
                Err(sqlx::Error::Database(db)) => {
                    assert_eq!(db.code().as_deref(), Some("42501"), "{role}: {statement}: {db}")
                }
                other => panic!("{role}: {statement}: expected a refusal, got {other:?}"),
            }
        }
    }
    assert_eq!(head(&owner_pool().await, t.id).await, before);
}

/// An edit made around the grants and triggers (a superuser disabling them) breaks the chain at
/// that entry, and a removed entry leaves a gap; verification names the first broken link.
#[tokio::test]
async fn chain_verification_names_the_first_altered_or_missing_entry() {
    let app = TestApp::new().await;
    let t = app.tenant("tamper").await;
    let service = service_pool().await;
    let intact = shared::audit::verify_chain(&service, t.id).await.unwrap();
    assert!(intact.is_intact() && intact.checked >= 10, "{intact:?}");

    let owner = owner_pool().await;
    let mut tx = owner.begin().await.unwrap();
    // Ordinary triggers (the append-only refusal) do not fire in replica mode.
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE audit_log SET changes = '{}' WHERE workspace_id = $1 AND seq = 5")
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let altered = shared::audit::verify_chain(&service, t.id).await.unwrap();
    assert_eq!((altered.checked, altered.first_broken_seq), (4, Some(5)), "{altered:?}");
    assert!(altered.problem.unwrap().contains("content"));

    let t2 = app.tenant("tamper-gap").await;
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE workspace_id = $1 AND seq = 3")
        .bind(t2.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let gap = shared::audit::verify_chain(&service, t2.id).await.unwrap();
    assert_eq!(gap.first_broken_seq, Some(4), "{gap:?}");
    assert!(gap.problem.unwrap().contains("position 3 is missing"));
}

#[tokio::test]
async fn owners_page_filter_and_export_the_log_and_it_outlives_the_workspace() {
    let app = TestApp::new().await;
    let t = app.tenant("audit-api").await;
    let path = format!("{}/audit-log", t.path());
    let first = app.get(&t.admin, &format!("{path}?limit=3")).await;
    first.expect(StatusCode::OK);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let seqs: Vec<i64> = items.iter().map(|i| i["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&t.admin, &format!("{path}?limit=3&cursor={cursor}")).await;
    assert!(second.body["items"][0]["seq"].as_i64().unwrap() < seqs[2]);

    let by_table = app.get(&t.owner, &format!("{path}?table=comments&action=comments.insert&limit=100")).await;
    let comments = by_table.body["items"].as_array().unwrap();
    assert!(!comments.is_empty() && comments.iter().all(|e| e["action"] == "comments.insert"));
    let by_row = app.get(&t.owner, &format!("{path}?table=projects&row_id={}", t.project_id)).await;
    assert!(by_row.body["items"].as_array().unwrap().iter().all(|e| e["row_id"] == t.project_id.to_string()));
    let by_actor = app.get(&t.owner, &format!("{path}?actor=user:{}&limit=100", t.member.id)).await;
    assert!(by_actor.body["items"].as_array().unwrap().iter().all(|e| e["actor"] == format!("user:{}", t.member.id)));
    let future = app.get(&t.owner, &format!("{path}?since=2999-01-01T00:00:00Z")).await;
    assert_eq!(future.body["items"], json!([]));
    for bad in [
        "cursor=abc",
        "format=xml",
        "limit=0",
        "since=yesterday",
        "since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
    ] {
        let refused = app.get(&t.owner, &format!("{path}?{bad}")).await;
        assert!(refused.status.is_client_error(), "{bad}: {}", refused.status);
    }

    let export = app.get(&t.owner, &format!("{path}?format=ndjson")).await;
    export.expect(StatusCode::OK);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    let total = head(&service_pool().await, t.id).await;
    let lines = export.body.as_str().unwrap().lines().filter(|l| !l.is_empty()).count() as i64;
    assert_eq!(lines, total, "the export holds every entry");

    // The trail outlives the workspace: its deletion is the last entry, and the chain holds.
    app.delete(&t.owner, &t.path()).await.expect(StatusCode::NO_CONTENT);
    let service = service_pool().await;
    let last: String = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE workspace_id = $1 AND table_name = 'workspaces' ORDER BY seq DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&service)
    .await
    .unwrap();
    assert_eq!(last, "workspaces.delete");
    assert!(shared::audit::verify_chain(&service, t.id).await.unwrap().is_intact());
}

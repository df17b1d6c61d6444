//! Data export: an owner's request becomes an archive in S3 (moto) holding every row of the
//! workspace and none of another, read from one snapshot, streamed in parts, with a manifest
//! that matches it; the export role reads one workspace at a time and writes no tenant data.

use std::collections::BTreeMap;
use std::io::Read as _;

use axum::http::StatusCode;
use integration_tests::{
    TestApp, base_settings, create_bucket, create_queue, exporter, fill_other_tables, owner_pool, worker_pool,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Tables with a workspace that archives leave out on purpose (the manifest says why).
const NOT_EXPORTED: [&str; 2] = ["file_deletions", "realtime_subscriptions"];

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

async fn app_with_bucket() -> (TestApp, String) {
    let bucket = create_bucket("exports").await;
    let mut settings = base_settings();
    settings.push(("EXPORTS_BUCKET".into(), bucket.clone()));
    (TestApp::with_settings(settings).await, bucket)
}

/// Rows per table of `workspace`, from the catalog (every table with a workspace, the workspace
/// row itself, and its people).
async fn expected_rows(owner: &PgPool, workspace: Uuid) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped)",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    let mut rows = BTreeMap::new();
    for table in tables.into_iter().filter(|t| !NOT_EXPORTED.contains(&t.as_str())) {
        let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table} WHERE workspace_id = $1")))
            .bind(workspace)
            .fetch_one(owner)
            .await
            .unwrap();
        rows.insert(table, n);
    }
    rows.insert("workspaces".into(), 1);
    let people: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT user_id FROM workspace_members WHERE workspace_id = $1
                               UNION SELECT user_id FROM client_contacts WHERE workspace_id = $1) p",
    )
    .bind(workspace)
    .fetch_one(owner)
    .await
    .unwrap();
    rows.insert("users".into(), people);
    rows
}

async fn download(url: &str) -> Vec<u8> {
    assert!(url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"), "{url}");
    let response = reqwest::get(url).await.expect("download");
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().await.unwrap().to_vec()
}

fn gunzip_lines(data: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(data).read_to_string(&mut text).expect("gzip");
    text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

#[tokio::test]
async fn an_export_holds_every_row_of_its_workspace_and_none_of_another() {
    let (app, bucket) = app_with_bucket().await;
    let (t, other) = (app.tenant("export-mine").await, app.tenant("export-other").await);
    fill_other_tables(&t).await;
    fill_other_tables(&other).await;
    let path = format!("{}/exports", t.path());
    // A ready file, uploaded through its form: the archive holds a copy of it.
    integration_tests::files::bucket().await;
    let files = format!("{}/deliverables/{}/files", t.project_path(), t.visible_deliverable_id);
    let upload = app
        .post(&t.owner, &files, json!({"name": "Final cut.mov", "content_type": "video/quicktime", "size": 3000}))
        .await;
    let upload = upload.expect(StatusCode::CREATED).clone();
    let file_bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    assert!(
        integration_tests::files::post_form(&upload["upload"], file_bytes.clone(), "video/quicktime")
            .await
            .is_success()
    );
    let file_id = upload["file"]["id"].as_str().unwrap().to_owned();
    app.post(&t.owner, &format!("{files}/{file_id}/confirm"), json!(null)).await.expect(StatusCode::OK);

    let requested = app.post(&t.owner, &path, json!(null)).await;
    let body = requested.expect(StatusCode::ACCEPTED).clone();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["requested_by"], json!(t.owner.id));
    let export_id = requested.id();
    let again = app.post(&t.owner, &path, json!(null)).await;
    assert_eq!(again.problem(StatusCode::CONFLICT), "export_in_progress");

    let owner = owner_pool().await;
    let worker = exporter(&bucket, None).await;
    let outcome = worker.export(&export_id.to_string()).await.expect("export");
    assert!(matches!(outcome, export_worker::Outcome::Exported { .. }), "{outcome:?}");
    assert_eq!(worker.export(&export_id.to_string()).await.unwrap(), export_worker::Outcome::Settled);

    let shown = app.get(&t.owner, &format!("{path}/{export_id}")).await;
    let shown = shown.expect(StatusCode::OK).clone();
    assert_eq!(shown["status"], "succeeded", "{shown}");
    let data = download(shown["download"]["data_url"].as_str().expect("a data link")).await;
    let manifest: Value =
        serde_json::from_slice(&download(shown["download"]["manifest_url"].as_str().unwrap()).await).unwrap();

    // The manifest describes the object it sits beside.
    assert_eq!(manifest["format"], "saas-workspace-export/1");
    assert_eq!(manifest["workspace_id"], json!(t.id));
    assert_eq!(manifest["data"]["bytes"], json!(data.len()));
    assert_eq!(manifest["data"]["sha256"], json!(hex::encode(Sha256::digest(&data))));
    let lines = gunzip_lines(&data);
    assert_eq!(manifest["data"]["lines"], json!(lines.len()));
    assert_eq!(shown["rows"], json!(lines.len()));
    let not_exported: Vec<&str> =
        manifest["not_exported"].as_array().unwrap().iter().filter_map(|t| t["table"].as_str()).collect();
    assert_eq!(not_exported, NOT_EXPORTED);
    // The file's copy, listed in the manifest and downloaded through its own link.
    assert_eq!(manifest["files"]["count"], 1, "{}", manifest["files"]);
    assert_eq!(manifest["files"]["items"][0]["id"], file_id.as_str());
    assert_eq!(manifest["files"]["items"][0]["name"], "Final cut.mov");
    assert_eq!(manifest["files"]["items"][0]["object"], format!("files/{file_id}"));
    let link = app.get(&t.owner, &format!("{path}/{export_id}/files/{file_id}")).await;
    let link = link.expect(StatusCode::OK)["url"].as_str().unwrap().to_owned();
    assert_eq!(download(&link).await, file_bytes, "the archived file's bytes");
    let not_archived = app.get(&t.owner, &format!("{path}/{export_id}/files/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(not_archived.problem(StatusCode::NOT_FOUND), "not_found");
    let admin = app.get(&t.admin, &format!("{path}/{export_id}/files/{file_id}")).await;
    assert_eq!(admin.problem(StatusCode::FORBIDDEN), "forbidden");

    // Every row of the workspace, each table's count exact, and nothing of the other one. The
    // audit entry recording the export's success is written after its snapshot.
    let mut expected = expected_rows(&owner, t.id).await;
    assert!(expected.values().all(|n| *n > 0), "the fixture fills every table: {expected:?}");
    let snapshot_at = manifest["snapshot_at"].as_str().expect("snapshot time");
    let audited_by_then: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND created_at <= $2::timestamptz")
            .bind(t.id)
            .bind(snapshot_at)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(expected["audit_log"], audited_by_then + 1, "one entry after the snapshot: the export's success");
    expected.insert("audit_log".into(), audited_by_then);
    let mut found: BTreeMap<String, i64> = BTreeMap::new();
    for line in &lines {
        let table = line["table"].as_str().expect("table").to_owned();
        let row = &line["row"];
        match table.as_str() {
            "workspaces" => assert_eq!(row["id"], json!(t.id)),
            "users" => {}
            _ => assert_eq!(row["workspace_id"], json!(t.id), "{table} row of another workspace: {row}"),
        }
        *found.entry(table).or_default() += 1;
    }
    assert_eq!(found, expected, "rows per table");
    let manifest_rows: BTreeMap<String, i64> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t["rows"].as_i64().unwrap()))
        .collect();
    assert_eq!(manifest_rows, expected);
    let text = String::from_utf8_lossy(&data).to_string() + &lines.iter().map(Value::to_string).collect::<String>();
    assert!(!text.contains(&other.id.to_string()), "the other workspace's id appears in the archive");

    // Secrets never leave: the columns are withheld and named in the manifest.
    let withheld = |table: &str| {
        manifest["tables"].as_array().unwrap().iter().find(|t| t["name"] == table).unwrap()["withheld_columns"].clone()
    };
    assert_eq!(withheld("api_keys"), json!(["secret_hash"]));
    assert_eq!(withheld("webhook_endpoints"), json!(["secret", "previous_secret"]));
    assert_eq!(withheld("invitations"), json!(["token_hash"]));
    assert!(!text.contains("whsec_"), "a webhook secret in the archive");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'workspace_exports.insert' AND actor = $2",
    )
    .bind(t.id)
    .bind(format!("user:{}", t.owner.id))
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(audited, 1, "the request is in the audit log with its owner");

    // Deleting the workspace takes its archives along.
    let s3 = shared::exports::client().await;
    let listed = |prefix: String| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move { s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap().key_count() }
    };
    assert_eq!(listed(format!("exports/{}/", t.id)).await, Some(3), "the data, the manifest and the file");
    app.delete(&t.owner, &t.path()).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(listed(format!("exports/{}/", t.id)).await.unwrap_or(0), 0, "archives outlived their workspace");
}

/// A workspace bigger than one part: the archive is uploaded in several parts of bounded size,
/// and reads back whole.
#[tokio::test]
async fn a_big_workspace_is_streamed_in_parts() {
    let (app, bucket) = app_with_bucket().await;
    let t = app.tenant("export-big").await;
    // ~12 MB of hard-to-compress comment text.
    sqlx::query(
        "INSERT INTO comments (id, workspace_id, project_id, body)
         SELECT gen_random_uuid(), $1, $2, (SELECT string_agg(md5(random()::text || i::text || j::text), '')
                                            FROM generate_series(1, 32) j)
         FROM generate_series(1, 12000) i",
    )
    .bind(t.id)
    .bind(t.project_id)
    .execute(&owner_pool().await)
    .await
    .unwrap();
    let export_id = app.post(&t.owner, &format!("{}/exports", t.path()), json!(null)).await.id();
    let outcome = exporter(&bucket, None).await.export(&export_id.to_string()).await.unwrap();
    let export_worker::Outcome::Exported { rows, bytes } = outcome else { panic!("{outcome:?}") };
    assert!(bytes > export_worker::archive::MIN_PART_BYTES as u64, "{bytes} bytes: more than one part");
    let shown = app.get(&t.owner, &format!("{}/exports/{export_id}", t.path())).await;
    let data = download(shown.body["download"]["data_url"].as_str().unwrap()).await;
    assert_eq!(data.len() as u64, bytes);
    let lines = gunzip_lines(&data);
    assert_eq!(lines.len() as u64, rows);
    assert!(lines.iter().filter(|l| l["table"] == "comments").count() >= 12_000);
}

/// S3 failing: the export goes back to pending with the error, is retried, and fails for good
/// after its attempts; the sweep puts open exports on the queue once per window.
#[tokio::test]
async fn failed_attempts_are_retried_then_settled_and_the_sweep_enqueues_open_exports() {
    let (app, _bucket) = app_with_bucket().await;
    let t = app.tenant("export-failing").await;
    let export_id = app.post(&t.owner, &format!("{}/exports", t.path()), json!(null)).await.id();
    let queue_url = create_queue("exports", &[]).await;
    let broken = exporter("no-such-bucket-for-exports", Some(&queue_url)).await;

    assert_eq!(broken.sweep().await.unwrap(), 1, "a new export is enqueued");
    assert_eq!(broken.sweep().await.unwrap(), 0, "not twice within the window");
    for attempt in 1..=export_worker::MAX_ATTEMPTS {
        assert!(broken.export(&export_id.to_string()).await.is_err(), "attempt {attempt}");
        let shown = app.get(&t.owner, &format!("{}/exports/{export_id}", t.path())).await;
        let expected = if attempt < export_worker::MAX_ATTEMPTS { "pending" } else { "failed" };
        assert_eq!(shown.body["status"], expected, "after attempt {attempt}: {}", shown.body);
        assert!(shown.body["error"].as_str().unwrap().contains("S3"), "{}", shown.body);
        assert!(shown.body["download"].is_null());
    }
    assert_eq!(broken.export(&export_id.to_string()).await.unwrap(), export_worker::Outcome::Settled);
    assert_eq!(broken.export(&Uuid::now_v7().to_string()).await.unwrap(), export_worker::Outcome::Gone);
    assert!(broken.export("not-an-id").await.is_err());
    // A failed export no longer blocks a new one.
    app.post(&t.owner, &format!("{}/exports", t.path()), json!(null)).await.expect(StatusCode::ACCEPTED);
}

/// The export role, by raw SQL: nothing without a workspace named, only that workspace's rows
/// with one, never a secret column, and no write to tenant data.
#[tokio::test]
async fn the_export_role_reads_one_workspace_and_writes_nothing() {
    let app = TestApp::new().await;
    let (a, b) = (app.tenant("exporter-a").await, app.tenant("exporter-b").await);
    fill_other_tables(&a).await;
    fill_other_tables(&b).await;
    let pool = worker_pool("app_exporter").await;
    let expected = expected_rows(&owner_pool().await, a.id).await;
    // The worker claims exports of every workspace (ids and states, no tenant content), so that
    // one table is readable whole; the archive's statement filters it by workspace.
    for table in expected.keys().filter(|t| *t != "workspace_exports") {
        let unscoped: i64 =
            sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table}"))).fetch_one(&pool).await.unwrap();
        assert_eq!(unscoped, 0, "{table} without a workspace named");
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.export_workspace', $1, true)")
            .bind(a.id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let seen: i64 =
            sqlx::query_scalar(sql(format!("SELECT count(*) FROM {table}"))).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(seen, expected[table], "{table}: exactly workspace a's rows, with no filter written");
        tx.rollback().await.unwrap();
    }
    for (statement, what) in [
        ("SELECT secret FROM webhook_endpoints", "reading a webhook secret"),
        ("SELECT secret_hash FROM api_keys", "reading a key hash"),
        ("SELECT token_hash FROM invitations", "reading an invitation token"),
        ("SELECT subject FROM users", "reading sign-in subjects"),
        ("SELECT * FROM plans", "reading the plan catalog"),
        ("UPDATE projects SET name = 'x'", "updating projects"),
        ("DELETE FROM comments", "deleting comments"),
        ("INSERT INTO audit_log (workspace_id, actor, action) VALUES (gen_random_uuid(), 'x', 'x')", "forging audit"),
        ("UPDATE workspace_exports SET workspace_id = gen_random_uuid()", "moving an export"),
    ] {
        let refused = sqlx::query(statement).execute(&pool).await.expect_err(what);
        let code = refused.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{what}: {refused}");
    }
}

//! Files on deliverables, through moto's S3: real bytes posted through the signed form,
//! confirmed, listed and downloaded; the refused cases; the storage quota under a concurrent
//! burst; and no object left behind by anything that owned a file.

use axum::http::StatusCode;
use integration_tests::{TestApp, TestResponse, TestUser, files, grant_override, owner_pool, service_pool};
use serde_json::{Value, json};
use uuid::Uuid;

fn files_path(t: &integration_tests::Tenant, deliverable: Uuid) -> String {
    format!("{}/deliverables/{deliverable}/files", t.project_path())
}

async fn request(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    name: &str,
    content_type: &str,
    size: usize,
) -> TestResponse {
    app.post(user, path, json!({"name": name, "content_type": content_type, "size": size})).await
}

fn bytes(n: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(n).collect()
}

/// Rows of the workspace's files and its storage in use, as the service sees them.
async fn footprint(workspace: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM files WHERE workspace_id = $1),
                coalesce((SELECT used_bytes FROM workspace_storage WHERE workspace_id = $1), 0)",
    )
    .bind(workspace)
    .fetch_one(&service_pool().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_member_uploads_through_the_form_and_the_client_downloads_the_same_bytes() {
    let app = TestApp::new().await;
    files::bucket().await;
    let t = app.tenant("files-flow").await;
    let path = files_path(&t, t.visible_deliverable_id);
    let hook = json!({"url": "https://hooks.example.test/files", "events": ["file.added", "file.deleted"]});
    app.post(&t.owner, &format!("{}/webhooks", t.path()), hook).await.expect(StatusCode::CREATED);
    let content = bytes(5000);
    let requested =
        request(&app, &t.member, &path, "Brand book ü \u{202E}v2.pdf", "Application/PDF", content.len()).await;
    let requested = requested.expect(StatusCode::CREATED).clone();
    let file = &requested["file"];
    assert_eq!(file["name"], "Brand book ü v2.pdf", "the bidi override is taken out");
    assert_eq!((file["state"].as_str(), file["content_type"].as_str()), (Some("pending"), Some("application/pdf")));
    let key = shared::files::object_key(t.id, file["id"].as_str().unwrap().parse().unwrap());
    assert_eq!(requested["upload"]["fields"]["key"], key.as_str());

    // Pending: nobody lists it, and no download link is given.
    let listed = app.get(&t.contact, &path).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"], json!([]));
    let file_path = format!("{path}/{}", file["id"].as_str().unwrap());
    assert_eq!(
        app.get(&t.member, &format!("{file_path}/download")).await.problem(StatusCode::CONFLICT),
        "file_not_ready"
    );
    assert_eq!(app.get(&t.contact, &format!("{file_path}/download")).await.problem(StatusCode::NOT_FOUND), "not_found");

    assert!(files::post_form(&requested["upload"], content.clone(), "application/pdf").await.is_success());
    // What S3 does with the form's `tagging` field (moto ignores it): the pending tag.
    let s3 = shared::exports::client().await;
    let tag = aws_sdk_s3::types::Tag::builder().key("upload").value("pending").build().unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().unwrap();
    s3.put_object_tagging().bucket(files::BUCKET).key(&key).tagging(tagging).send().await.unwrap();

    let confirmed = app.post(&t.member, &format!("{file_path}/confirm"), json!(null)).await;
    assert_eq!(confirmed.expect(StatusCode::OK)["state"], "ready");
    let tags = s3.get_object_tagging().bucket(files::BUCKET).key(&key).send().await.unwrap();
    assert!(tags.tag_set().is_empty(), "a confirmed upload keeps no pending tag for the lifecycle rule to expire");
    let again = app.post(&t.member, &format!("{file_path}/confirm"), json!(null)).await;
    assert_eq!(again.expect(StatusCode::OK)["state"], "ready", "confirming twice answers the file");

    let listed = app.get(&t.contact, &path).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"][0]["id"], file["id"]);
    let download = app.get(&t.contact, &format!("{file_path}/download")).await;
    let url = download.expect(StatusCode::OK)["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"), "{url}");
    // What S3 answers the link with (moto ignores these two parameters): the file's name and type.
    let parsed = reqwest::Url::parse(&url).unwrap();
    let query = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(
        query("response-content-disposition").as_deref(),
        Some("attachment; filename=\"Brand book _ v2.pdf\"; filename*=UTF-8''Brand%20book%20%C3%BC%20v2.pdf")
    );
    assert_eq!(query("response-content-type").as_deref(), Some("application/pdf"));
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), reqwest::StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), content.as_slice(), "the downloaded bytes differ");

    // The storage in use, on the workspace's billing answer; the feed and the webhooks know.
    let billing = app.get(&t.owner, &format!("{}/billing", t.path())).await;
    assert_eq!(billing.expect(StatusCode::OK)["usage"]["storage_bytes"], 5000);
    let (verb, visible): (String, bool) = sqlx::query_as(
        "SELECT verb, client_visible FROM activity WHERE workspace_id = $1 AND subject_type = 'file' ORDER BY id DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&owner_pool().await)
    .await
    .unwrap();
    assert_eq!((verb.as_str(), visible), ("file.added", true));
    let event: Value =
        sqlx::query_scalar("SELECT payload FROM webhook_events WHERE workspace_id = $1 AND type = 'file.added'")
            .bind(t.id)
            .fetch_one(&owner_pool().await)
            .await
            .unwrap();
    assert_eq!(event["data"]["name"], "Brand book ü v2.pdf");
    assert_eq!(event["data"]["attached_to"], "Mockups");

    // Viewers download, API keys act as their role.
    let viewer_download = app.get(&t.viewer, &format!("{file_path}/download")).await;
    viewer_download.expect(StatusCode::OK);
    let key_created =
        app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "viewer key", "role": "viewer"})).await;
    let viewer_key = TestUser::api_key(&key_created);
    let refused = request(&app, &viewer_key, &path, "x.pdf", "application/pdf", 10).await;
    assert_eq!(refused.problem(StatusCode::FORBIDDEN), "forbidden");
    app.get(&viewer_key, &format!("{file_path}/download")).await.expect(StatusCode::OK);

    // Deleted: gone from the list, its storage released, the deletion in the feed.
    app.delete(&t.member, &file_path).await.expect(StatusCode::NO_CONTENT);
    app.delete(&t.member, &file_path).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(footprint(t.id).await, (0, 0));
    let deleted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM activity WHERE workspace_id = $1 AND verb = 'file.deleted'")
            .bind(t.id)
            .fetch_one(&owner_pool().await)
            .await
            .unwrap();
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn a_contact_sees_no_file_of_a_deliverable_not_shared_with_them_until_it_is() {
    let app = TestApp::new().await;
    files::bucket().await;
    let t = app.tenant("files-hidden").await;
    let path = files_path(&t, t.hidden_deliverable_id);
    let requested = request(&app, &t.owner, &path, "notes.txt", "text/plain", 11).await;
    let requested = requested.expect(StatusCode::CREATED).clone();
    assert!(files::post_form(&requested["upload"], b"hello world".to_vec(), "text/plain").await.is_success());
    let file_path = format!("{path}/{}", requested["file"]["id"].as_str().unwrap());
    app.post(&t.owner, &format!("{file_path}/confirm"), json!(null)).await.expect(StatusCode::OK);
    assert_eq!(app.get(&t.contact, &path).await.problem(StatusCode::NOT_FOUND), "not_found");
    assert_eq!(app.get(&t.contact, &format!("{file_path}/download")).await.problem(StatusCode::NOT_FOUND), "not_found");
    // Shared: now it is the contact's to download.
    let deliverable = format!("{}/deliverables/{}", t.project_path(), t.hidden_deliverable_id);
    app.call(
        axum::http::Method::PUT,
        &deliverable,
        Some(&t.owner.token),
        Some(&json!({"title": "Internal notes", "client_visible": true})),
    )
    .await
    .expect(StatusCode::OK);
    let download = app.get(&t.contact, &format!("{file_path}/download")).await;
    let url = download.expect(StatusCode::OK)["url"].as_str().unwrap().to_owned();
    assert_eq!(reqwest::get(&url).await.unwrap().bytes().await.unwrap().as_ref(), b"hello world");
}

#[tokio::test]
async fn refused_uploads_answer_a_stable_code_and_write_nothing() {
    let app = TestApp::new().await;
    files::bucket().await;
    let t = app.tenant("files-refused").await;
    let path = files_path(&t, t.visible_deliverable_id);
    let before = footprint(t.id).await;

    // Bad declarations.
    for body in [
        json!({"name": "a.pdf", "content_type": "pdf", "size": 10}),
        json!({"name": "a.pdf", "content_type": "text/plain; charset=utf-8", "size": 10}),
        json!({"name": "a.pdf", "content_type": "application/pdf", "size": 0}),
        json!({"name": "a.pdf", "content_type": "application/pdf", "size": 5_368_709_121_u64}),
        json!({"name": "", "content_type": "application/pdf", "size": 10}),
        json!({"name": "a.pdf", "content_type": "application/pdf", "size": -1}),
    ] {
        let refused = app.post(&t.member, &path, body.clone()).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{body}");
    }
    // Larger than the plan lets one file be.
    grant_override(t.id, "file_size_mb", json!(1)).await;
    let too_large = request(&app, &t.member, &path, "cut.mov", "video/quicktime", 1_048_577).await;
    assert_eq!(too_large.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    // A viewer, a contact, and a deliverable of another workspace.
    assert_eq!(
        request(&app, &t.viewer, &path, "a.pdf", "application/pdf", 10).await.problem(StatusCode::FORBIDDEN),
        "forbidden"
    );
    assert_eq!(
        request(&app, &t.contact, &path, "a.pdf", "application/pdf", 10).await.problem(StatusCode::FORBIDDEN),
        "forbidden"
    );
    let other = app.tenant("files-other").await;
    let foreign = format!("{}/deliverables/{}/files", t.project_path(), other.visible_deliverable_id);
    assert_eq!(
        request(&app, &t.member, &foreign, "a.pdf", "application/pdf", 10).await.problem(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(footprint(t.id).await, before, "no refused request wrote a row or reserved storage");

    // Confirming what was not uploaded changes nothing.
    let pending =
        request(&app, &t.member, &path, "a.pdf", "application/pdf", 100).await.expect(StatusCode::CREATED).clone();
    let confirm = format!("{path}/{}/confirm", pending["file"]["id"].as_str().unwrap());
    assert_eq!(app.post(&t.member, &confirm, json!(null)).await.problem(StatusCode::CONFLICT), "upload_not_found");
    assert_eq!(footprint(t.id).await, (before.0 + 1, before.1 + 100));

    // An upload of another size, or another type, than declared (S3 refuses both through the
    // form; moto does not, and a client could put the object otherwise): discarded.
    let key = |answer: &Value| answer["upload"]["fields"]["key"].as_str().unwrap().to_owned();
    files::put_object(&key(&pending), bytes(101), "application/pdf").await;
    let mismatch = app.post(&t.member, &confirm, json!(null)).await;
    assert_eq!(mismatch.problem(StatusCode::CONFLICT), "upload_mismatch");
    assert_eq!(footprint(t.id).await, before, "the mismatched upload's file is gone and its storage released");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM file_deletions WHERE object_key = $1")
        .bind(key(&pending))
        .fetch_one(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(queued, 1, "its object is queued for deletion");
    let typed =
        request(&app, &t.member, &path, "a.pdf", "application/pdf", 100).await.expect(StatusCode::CREATED).clone();
    files::put_object(&key(&typed), bytes(100), "text/html").await;
    let confirm_typed = format!("{path}/{}/confirm", typed["file"]["id"].as_str().unwrap());
    let wrong_type = app.post(&t.member, &confirm_typed, json!(null)).await;
    assert_eq!(wrong_type.problem(StatusCode::CONFLICT), "upload_mismatch");
    assert!(wrong_type.body["detail"].as_str().unwrap().contains("text/html"));

    // An upload after its form expired (S3 refuses the post; checked again at confirmation).
    let late =
        request(&app, &t.member, &path, "a.pdf", "application/pdf", 100).await.expect(StatusCode::CREATED).clone();
    sqlx::query("UPDATE files SET upload_expires_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(late["file"]["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .execute(&service_pool().await)
        .await
        .unwrap();
    assert!(files::post_form(&late["upload"], bytes(100), "application/pdf").await.is_success());
    let confirm_late = format!("{path}/{}/confirm", late["file"]["id"].as_str().unwrap());
    assert_eq!(app.post(&t.member, &confirm_late, json!(null)).await.problem(StatusCode::GONE), "upload_expired");
    assert_eq!(footprint(t.id).await, before);

    // Another workspace's file, through this workspace's path: not found, untouched.
    let theirs =
        request(&app, &other.owner, &files_path(&other, other.visible_deliverable_id), "b.pdf", "application/pdf", 5)
            .await
            .expect(StatusCode::CREATED)
            .clone();
    let theirs_id = theirs["file"]["id"].as_str().unwrap();
    assert!(key(&theirs).starts_with(&format!("files/{}/", other.id)), "keys live under their own workspace's prefix");
    for (method, suffix) in [("POST", "/confirm"), ("GET", "/download")] {
        let response =
            app.call(method.parse().unwrap(), &format!("{path}/{theirs_id}{suffix}"), Some(&t.owner.token), None).await;
        assert_eq!(response.problem(StatusCode::NOT_FOUND), "not_found", "{method} {suffix}");
    }
    // Deleting is idempotent, as every delete here: 204, and nothing of theirs is touched.
    app.delete(&t.owner, &format!("{path}/{theirs_id}")).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(footprint(other.id).await, (1, 5));
}

#[tokio::test]
async fn the_storage_quota_holds_under_a_concurrent_burst() {
    let app = TestApp::new().await;
    files::bucket().await;
    let t = app.tenant("files-quota").await;
    grant_override(t.id, "storage_mb", json!(1)).await;
    let path = files_path(&t, t.visible_deliverable_id);
    // 1 MiB holds three files of 300,000 bytes (900,000), not four; eight ask at once.
    let names: Vec<String> = (0..8).map(|i| format!("part-{i}.bin")).collect();
    let burst = futures::future::join_all(
        names.iter().map(|name| request(&app, &t.member, &path, name, "application/octet-stream", 300_000)),
    )
    .await;
    let admitted = burst.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused = burst
        .iter()
        .filter(|r| r.status == StatusCode::PAYMENT_REQUIRED && r.body["code"] == "plan_limit_reached")
        .count();
    assert_eq!((admitted, refused), (3, 5), "{:?}", burst.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(footprint(t.id).await, (3, 900_000));

    // Checked again at confirmation: with the quota lowered meanwhile, the upload does not fit.
    let first = burst.iter().find(|r| r.status == StatusCode::CREATED).unwrap();
    assert!(files::post_form(&first.body["upload"], bytes(300_000), "application/octet-stream").await.is_success());
    sqlx::query("UPDATE entitlement_overrides SET value = 0 WHERE workspace_id = $1 AND entitlement = 'storage_mb'")
        .bind(t.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let confirm = format!("{path}/{}/confirm", first.body["file"]["id"].as_str().unwrap());
    assert_eq!(
        app.post(&t.member, &confirm, json!(null)).await.problem(StatusCode::PAYMENT_REQUIRED),
        "plan_limit_reached"
    );
    let state: String = sqlx::query_scalar("SELECT state::text FROM files WHERE id = $1")
        .bind(first.body["file"]["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(state, "pending");
}

/// Uploads and confirms one file on `deliverable`; answers its object's key.
async fn uploaded(app: &TestApp, t: &integration_tests::Tenant, deliverable: Uuid, project_path: &str) -> String {
    let path = format!("{project_path}/deliverables/{deliverable}/files");
    let requested = request(app, &t.owner, &path, "f.bin", "application/octet-stream", 64).await;
    let requested = requested.expect(StatusCode::CREATED).clone();
    assert!(files::post_form(&requested["upload"], bytes(64), "application/octet-stream").await.is_success());
    let confirm = format!("{path}/{}/confirm", requested["file"]["id"].as_str().unwrap());
    app.post(&t.owner, &confirm, json!(null)).await.expect(StatusCode::OK);
    requested["upload"]["fields"]["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn deleting_anything_that_owns_a_file_leaves_no_object_in_the_bucket() {
    let app = TestApp::new().await;
    files::bucket().await;
    let worker = files::worker().await;
    let t = app.tenant("files-lifecycle").await;
    let project = t.project_path();
    let deliverable = |id: Uuid| format!("{project}/deliverables/{id}");

    // First, a deletion that fails: kept with its reason and retried later. (In this test, not
    // its own: the failing worker fails every due deletion of the database, and this test's
    // own come after it.)
    let failing = uploaded(&app, &t, t.visible_deliverable_id, &project).await;
    let failing_id = failing.rsplit('/').next().unwrap();
    app.delete(&t.owner, &format!("{}/files/{failing_id}", deliverable(t.visible_deliverable_id)))
        .await
        .expect(StatusCode::NO_CONTENT);
    let broken: files_worker::FilesWorker =
        integration_tests::worker("app_files", &[("FILES_BUCKET", "saas-no-such-bucket".to_owned())]).await;
    assert!(broken.sweep().await.is_err(), "a failed deletion fails the sweep, for its alarm");
    let (attempts, error, later): (i32, Option<String>, bool) = sqlx::query_as(
        "SELECT attempts, last_error, next_attempt_at > now() FROM file_deletions WHERE object_key = $1",
    )
    .bind(&failing)
    .fetch_one(&owner_pool().await)
    .await
    .unwrap();
    assert_eq!((attempts, later), (1, true));
    assert!(error.is_some_and(|e| !e.is_empty()));
    assert!(files::object(&failing).await.is_some());
    sqlx::query("UPDATE file_deletions SET next_attempt_at = now() WHERE object_key = $1")
        .bind(&failing)
        .execute(&owner_pool().await)
        .await
        .unwrap();

    // A file deleted by itself, one with its deliverable, one with its project.
    let own = uploaded(&app, &t, t.visible_deliverable_id, &project).await;
    let id = own.rsplit('/').next().unwrap();
    app.delete(&t.owner, &format!("{}/files/{id}", deliverable(t.visible_deliverable_id)))
        .await
        .expect(StatusCode::NO_CONTENT);
    let with_deliverable = uploaded(&app, &t, t.hidden_deliverable_id, &project).await;
    app.delete(&t.owner, &deliverable(t.hidden_deliverable_id)).await.expect(StatusCode::NO_CONTENT);
    let internal = format!("{}/projects/{}", t.path(), t.internal_project_id);
    let internal_deliverable =
        app.post(&t.owner, &format!("{internal}/deliverables"), json!({"title": "Spec"})).await.id();
    let with_project = uploaded(&app, &t, internal_deliverable, &internal).await;
    app.delete(&t.owner, &internal).await.expect(StatusCode::NO_CONTENT);
    // An upload never confirmed, long abandoned.
    let requested = request(
        &app,
        &t.owner,
        &format!("{}/files", deliverable(t.visible_deliverable_id)),
        "a.bin",
        "application/octet-stream",
        8,
    )
    .await;
    let requested = requested.expect(StatusCode::CREATED).clone();
    assert!(files::post_form(&requested["upload"], bytes(8), "application/octet-stream").await.is_success());
    let abandoned = requested["upload"]["fields"]["key"].as_str().unwrap().to_owned();
    sqlx::query(
        "UPDATE files SET upload_expires_at = now() - interval '2 hours' WHERE state = 'pending' AND workspace_id = $1",
    )
    .bind(t.id)
    .execute(&service_pool().await)
    .await
    .unwrap();
    for key in [&own, &with_deliverable, &with_project, &abandoned] {
        assert!(files::object(key).await.is_some(), "{key} is in the bucket before the sweep");
    }
    // Still a file to delete with the workspace itself.
    let with_workspace = uploaded(&app, &t, t.visible_deliverable_id, &project).await;

    // Other tests' deletions share the database: at least this test's are counted.
    let report = worker.sweep().await.expect("sweep");
    assert!(report.abandoned_uploads >= 1 && report.objects_deleted >= 5, "{report:?}");
    for key in [&failing, &own, &with_deliverable, &with_project, &abandoned] {
        assert!(files::object(key).await.is_none(), "{key} outlived its file");
    }
    assert_eq!(files::object(&with_workspace).await.as_deref(), Some(bytes(64).as_slice()));

    app.delete(&t.owner, &t.path()).await.expect(StatusCode::NO_CONTENT);
    worker.sweep().await.expect("sweep");
    assert_eq!(files::keys_under(&format!("files/{}/", t.id)).await, Vec::<String>::new());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM file_deletions WHERE workspace_id = $1")
        .bind(t.id)
        .fetch_one(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(left, 0, "the outbox is drained");
}

/// Raw SQL under the API role: a contact reads only ready files of shared deliverables of its
/// client's projects; nobody inserts a file already ready or rewrites its size; the files
/// worker sees only pending uploads.
#[tokio::test]
async fn by_sql_a_contact_reads_only_ready_shared_files_and_nobody_forges_one() {
    let app = TestApp::new().await;
    let t = app.tenant("files-sql").await;
    let owner = owner_pool().await;
    let insert = "INSERT INTO files (id, workspace_id, project_id, deliverable_id, name, content_type,
                                                 size_bytes, state, upload_expires_at, confirmed_at)
                  VALUES ($1, $2, $3, $4, 'f', 'a/b', 1, $5::file_state, now() + interval '1 hour',
                          CASE WHEN $5 = 'ready' THEN now() END)";
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for (id, deliverable, state) in [
        (ids[0], t.visible_deliverable_id, "ready"),
        (ids[1], t.visible_deliverable_id, "pending"),
        (ids[2], t.hidden_deliverable_id, "ready"),
    ] {
        sqlx::query(insert)
            .bind(id)
            .bind(t.id)
            .bind(t.project_id)
            .bind(deliverable)
            .bind(state)
            .execute(&owner)
            .await
            .unwrap();
    }
    let pool = integration_tests::api_pool().await;
    let caller = |user: &TestUser| {
        shared::auth::Caller::new(
            integration_tests::HS256_ISSUER.to_owned(),
            user.subject.clone(),
            Some(user.email.clone()),
        )
    };
    let mut tx = shared::db::TenantTx::begin(&pool, &caller(&t.contact)).await.unwrap();
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM files").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(seen, vec![ids[0]], "only the ready file of the shared deliverable");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_storage").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(stored, 0, "a contact does not read the workspace's storage");
    drop(tx);

    let mut tx = shared::db::TenantTx::begin(&pool, &caller(&t.member)).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM files").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 3, "a member sees the workspace's files, pending ones included");
    let forged = sqlx::query(insert)
        .bind(Uuid::now_v7())
        .bind(t.id)
        .bind(t.project_id)
        .bind(t.visible_deliverable_id)
        .bind("ready")
        .execute(&mut *tx)
        .await;
    assert!(forged.is_err(), "a file cannot be inserted already ready");
    drop(tx);
    let mut tx = shared::db::TenantTx::begin(&pool, &caller(&t.member)).await.unwrap();
    let resized = sqlx::query("UPDATE files SET size_bytes = 1").execute(&mut *tx).await;
    assert!(resized.is_err(), "a file's size is not the API's to rewrite");
    drop(tx);

    let worker = integration_tests::worker_pool("app_files").await;
    let seen: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM files WHERE workspace_id = $1").bind(t.id).fetch_all(&worker).await.unwrap();
    assert_eq!(seen, vec![ids[1]], "the files worker sees pending uploads only");
    let names = sqlx::query("SELECT name FROM files LIMIT 1").fetch_all(&worker).await;
    assert!(names.is_err(), "nor any file's name");
}

#[tokio::test]
async fn a_comment_carries_files_that_its_readers_download() {
    let app = TestApp::new().await;
    files::bucket().await;
    let t = app.tenant("files-comments").await;
    let shared_comment = format!("{}/comments/{}/files", t.project_path(), t.visible_comment_id);
    let team_comment = format!("{}/comments/{}/files", t.project_path(), t.hidden_comment_id);
    for path in [&shared_comment, &team_comment] {
        let requested = request(&app, &t.member, path, "screenshot.png", "image/png", 640).await;
        let requested = requested.expect(StatusCode::CREATED).clone();
        assert_eq!(requested["file"]["comment_id"], json!(path.split('/').nth(7).unwrap()));
        assert_eq!(requested["file"]["deliverable_id"], Value::Null);
        assert!(files::post_form(&requested["upload"], bytes(640), "image/png").await.is_success());
        let confirm = format!("{path}/{}/confirm", requested["file"]["id"].as_str().unwrap());
        app.post(&t.member, &confirm, json!(null)).await.expect(StatusCode::OK);
    }
    // The contact reads the shared comment's file, and nothing of the team's comment.
    let listed = app.get(&t.contact, &shared_comment).await;
    let file_id = listed.expect(StatusCode::OK)["items"][0]["id"].as_str().unwrap().to_owned();
    let link = app.get(&t.contact, &format!("{shared_comment}/{file_id}/download")).await;
    let url = link.expect(StatusCode::OK)["url"].as_str().unwrap().to_owned();
    assert_eq!(reqwest::get(&url).await.unwrap().bytes().await.unwrap().as_ref(), bytes(640).as_slice());
    assert_eq!(app.get(&t.contact, &team_comment).await.problem(StatusCode::NOT_FOUND), "not_found");
    // A comment's file is not reachable as a deliverable's, nor the other way round.
    let as_deliverable = format!("{}/deliverables/{}/files/{file_id}/download", t.project_path(), t.visible_comment_id);
    assert_eq!(app.get(&t.member, &as_deliverable).await.problem(StatusCode::NOT_FOUND), "not_found");
    // Contacts comment, but only the team attaches files.
    let refused = request(&app, &t.contact, &shared_comment, "mine.png", "image/png", 10).await;
    assert_eq!(refused.problem(StatusCode::FORBIDDEN), "forbidden");
    // Deleting the comment deletes its file, and queues its object.
    let comment = format!("{}/comments/{}", t.project_path(), t.visible_comment_id);
    app.delete(&t.owner, &comment).await.expect(StatusCode::NO_CONTENT);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM file_deletions WHERE object_key = $1")
        .bind(shared::files::object_key(t.id, file_id.parse().unwrap()))
        .fetch_one(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(queued, 1);
    assert_eq!(footprint(t.id).await, (1, 640), "only the team comment's file is left");
}

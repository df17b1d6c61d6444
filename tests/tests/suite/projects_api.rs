//! Behaviour of the projects function: pagination, filters, replacement, idempotent deletes,
//! and what a client contact sees and writes.

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::{Value, json};

fn names(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn projects_page_newest_first_and_filter_by_status_and_client() {
    let app = TestApp::new().await;
    let t = app.tenant("pages").await;
    let projects = format!("{}/projects", t.path());
    for i in 0..5 {
        let status = if i % 2 == 0 { "active" } else { "on_hold" };
        app.post(&t.member, &projects, json!({"name": format!("P{i}"), "status": status}))
            .await
            .expect(StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = app.get(&t.viewer, &format!("{projects}?limit=3{query}")).await;
        seen.extend(names(page.expect(StatusCode::OK)));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["P4", "P3", "P2", "P1", "P0", "Internal", "Client site"]);
    let on_hold = app.get(&t.viewer, &format!("{projects}?status=on_hold")).await;
    assert_eq!(names(&on_hold.body), ["P3", "P1"]);
    let for_client = app.get(&t.viewer, &format!("{projects}?client_id={}", t.client_id)).await;
    assert_eq!(names(&for_client.body), ["Client site"]);
}

#[tokio::test]
async fn put_replaces_a_project_and_is_idempotent() {
    let app = TestApp::new().await;
    let t = app.tenant("put").await;
    let body = json!({"name": "Renamed", "status": "completed", "due_date": "2027-01-31"});
    let first = app.put(&t.member, &t.project_path(), body.clone()).await;
    let second = app.put(&t.member, &t.project_path(), body).await;
    for field in ["name", "status", "due_date", "client_id", "description"] {
        assert_eq!(first.body[field], second.body[field], "{field}");
    }
    assert_eq!(second.body["due_date"], "2027-01-31");
    assert_eq!(second.body["client_id"], Value::Null, "PUT replaces: an omitted client is unassigned");
    // The contact lost the project with its client assignment.
    assert_eq!(app.get(&t.contact, &t.project_path()).await.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn deletes_are_idempotent_and_cascade() {
    let app = TestApp::new().await;
    let t = app.tenant("delete").await;
    app.delete(&t.member, &t.project_path()).await.expect(StatusCode::NO_CONTENT);
    app.delete(&t.member, &t.project_path()).await.expect(StatusCode::NO_CONTENT);
    let pool = integration_tests::service_pool().await;
    let children: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM milestones WHERE project_id = $1) + (SELECT count(*) FROM deliverables WHERE project_id = $1)
              + (SELECT count(*) FROM comments WHERE project_id = $1)",
    )
    .bind(t.project_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(children, 0);
    // Items under a project that is gone: 404 on reads, since the project cannot be seen.
    let orphan = app.get(&t.member, &format!("{}/milestones", t.project_path())).await;
    assert_eq!(orphan.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn a_client_contact_sees_only_shared_items_and_comments_visibly() {
    let app = TestApp::new().await;
    let t = app.tenant("portal").await;
    let projects = app.get(&t.contact, &format!("{}/projects", t.path())).await;
    assert_eq!(names(&projects.body), ["Client site"]);
    let deliverables = app.get(&t.contact, &format!("{}/deliverables", t.project_path())).await;
    assert_eq!(deliverables.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(deliverables.body["items"][0]["id"], t.visible_deliverable_id.to_string());
    let comments = app.get(&t.contact, &format!("{}/comments", t.project_path())).await;
    assert_eq!(comments.body["items"].as_array().unwrap().len(), 1);
    // A contact's comment is always visible to the client, whatever it asks for.
    let posted = app
        .post(
            &t.contact,
            &format!("{}/comments", t.project_path()),
            json!({"body": "Thanks!", "client_visible": false}),
        )
        .await;
    assert_eq!(posted.expect(StatusCode::CREATED)["client_visible"], true);
    let own = format!("{}/comments/{}", t.project_path(), posted.id());
    app.put(&t.contact, &own, json!({"body": "Thanks a lot!"})).await.expect(StatusCode::OK);
    app.delete(&t.contact, &own).await.expect(StatusCode::NO_CONTENT);
    // Not on a project that is not their client's.
    let other = app
        .post(&t.contact, &format!("{}/projects/{}/comments", t.path(), t.internal_project_id), json!({"body": "hi"}))
        .await;
    assert_eq!(other.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn a_deliverable_may_only_point_at_a_milestone_of_its_project() {
    let app = TestApp::new().await;
    let t = app.tenant("milestone").await;
    let internal = format!("{}/projects/{}", t.path(), t.internal_project_id);
    let foreign = app
        .post(&t.member, &format!("{internal}/deliverables"), json!({"title": "x", "milestone_id": t.milestone_id}))
        .await;
    assert_eq!(foreign.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    assert_eq!(foreign.body["errors"][0]["field"], "milestone_id");
    let ok = app
        .post(
            &t.member,
            &format!("{}/deliverables", t.project_path()),
            json!({"title": "x", "milestone_id": t.milestone_id}),
        )
        .await;
    assert_eq!(ok.expect(StatusCode::CREATED)["milestone_id"], t.milestone_id.to_string());
}

#[tokio::test]
async fn concurrent_creates_by_one_user_all_succeed() {
    let app = TestApp::new().await;
    let t = app.tenant("burst").await;
    let projects = format!("{}/projects", t.path());
    let creates = (0..20).map(|i| app.post(&t.member, &projects, json!({"name": format!("burst {i}")})));
    let responses = futures::future::join_all(creates).await;
    assert!(
        responses.iter().all(|r| r.status == StatusCode::CREATED),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

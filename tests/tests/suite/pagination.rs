//! Every list is cursor-paginated with the same bounds: walking it one item at a time returns
//! every item once, in the order of one big page; `limit` is bounded; cursors are checked.

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::{Value, json};

/// Each list's path, and the field that identifies an item in it.
fn lists(t: &integration_tests::Tenant) -> Vec<(String, &'static str)> {
    let project = format!("{}/projects/{}", t.path(), t.project_id);
    vec![
        (format!("{}/members", t.path()), "user_id"),
        (format!("{}/clients", t.path()), "id"),
        (format!("{}/clients/{}/contacts", t.path(), t.client_id), "user_id"),
        (format!("{}/projects", t.path()), "id"),
        (format!("{project}/milestones"), "id"),
        (format!("{project}/deliverables"), "id"),
        (format!("{project}/comments"), "id"),
        (format!("{}/ai/runs", t.path()), "id"),
        (format!("{}/exports", t.path()), "id"),
    ]
}

#[tokio::test]
async fn every_list_pages_through_all_its_items_once() {
    let app = TestApp::new().await;
    let t = app.tenant("pages").await;
    // More than one item in every list.
    let project = format!("{}/projects/{}", t.path(), t.project_id);
    app.post(&t.owner, &format!("{project}/milestones"), json!({"title": "Build"})).await.expect(StatusCode::CREATED);
    app.post(&t.owner, &format!("{}/clients", t.path()), json!({"name": "Globex"})).await.expect(StatusCode::CREATED);
    let second_contact = app.user("pages-contact-2").await;
    app.add_contact(&t.owner, t.id, t.client_id, &second_contact).await;
    for _ in 0..2 {
        app.post(
            &t.owner,
            &format!("{}/ai/runs", t.path()),
            json!({"tool": "proposal_draft", "input": {"brief": "x"}}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    for _ in 0..2 {
        sqlx::query("INSERT INTO workspace_exports (id, workspace_id, status) VALUES ($1, $2, 'failed')")
            .bind(uuid::Uuid::now_v7())
            .bind(t.id)
            .execute(&integration_tests::owner_pool().await)
            .await
            .unwrap();
    }
    for (list, key) in lists(&t) {
        let all = app.get(&t.owner, &format!("{list}?limit=100")).await;
        let all: Vec<Value> =
            all.expect(StatusCode::OK)["items"].as_array().unwrap().iter().map(|i| i[key].clone()).collect();
        assert!(all.len() >= 2, "{list}: the fixture gives it at least two items, got {all:?}");
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{list}?limit=1&cursor={c}"),
                None => format!("{list}?limit=1"),
            };
            let page = app.get(&t.owner, &url).await;
            let page = page.expect(StatusCode::OK);
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 1, "{url}: more than `limit` items");
            walked.extend(items.iter().map(|i| i[key].clone()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(walked.len() <= all.len(), "{list}: the walk does not end");
        }
        assert_eq!(walked, all, "{list}: one item at a time gives every item once, in the same order");
    }
}

#[tokio::test]
async fn every_list_bounds_its_limit_and_checks_its_cursor() {
    let app = TestApp::new().await;
    let t = app.tenant("bounds").await;
    for (list, _) in lists(&t) {
        for limit in ["0", "101", "-1", "many"] {
            let response = app.get(&t.owner, &format!("{list}?limit={limit}")).await;
            assert!(response.status.is_client_error(), "{list}?limit={limit}: {}", response.status);
            let code = response.problem(response.status).to_owned();
            assert!(["validation_failed", "invalid_query"].contains(&code.as_str()), "{list}?limit={limit}: {code}");
        }
        let bad_cursor = app.get(&t.owner, &format!("{list}?cursor=not-a-cursor")).await;
        assert_eq!(bad_cursor.problem(StatusCode::BAD_REQUEST), "invalid_cursor", "{list}");
    }
}

//! The activity feed: one entry per user-facing change, written by the database in the change's
//! transaction with its actor, subject, project and visibility; members read all of it, client
//! contacts the client-visible part of their clients' projects, nobody another workspace's; the
//! feed pages, filters and resumes.

use axum::http::StatusCode;
use integration_tests::{TestApp, TestUser, service_pool};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

fn verbs(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|a| a["verb"].as_str().unwrap().to_owned()).collect()
}

async fn feed(app: &TestApp, user: &TestUser, path: &str) -> Value {
    app.get(user, path).await.expect(StatusCode::OK).clone()
}

#[tokio::test]
async fn every_user_facing_change_is_in_the_feed_and_each_reader_sees_their_part() {
    let app = TestApp::new().await;
    let t = app.tenant("activity").await;
    let since = OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let project = app
        .post(&t.member, &format!("{}/projects", t.path()), json!({"name": "Brand refresh", "client_id": t.client_id}))
        .await;
    let project_id = project.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_owned();
    app.put(
        &t.member,
        &format!("{}/projects/{project_id}", t.path()),
        json!({"name": "Brand refresh", "status": "on_hold", "client_id": t.client_id}),
    )
    .await
    .expect(StatusCode::OK);
    app.put(
        &t.member,
        &format!("{}/milestones/{}", t.project_path(), t.milestone_id),
        json!({"title": "Design", "status": "done"}),
    )
    .await
    .expect(StatusCode::OK);
    app.post(&t.member, &format!("{}/deliverables", t.project_path()), json!({"title": "Internal draft"}))
        .await
        .expect(StatusCode::CREATED);
    app.put(
        &t.member,
        &format!("{}/deliverables/{}", t.project_path(), t.visible_deliverable_id),
        json!({"title": "Mockups v2", "client_visible": true, "status": "in_review"}),
    )
    .await
    .expect(StatusCode::OK);
    app.post(&t.contact, &format!("{}/comments", t.project_path()), json!({"body": "Love it"}))
        .await
        .expect(StatusCode::CREATED);
    let newcomer = app.user("activity-newcomer").await;
    app.add_member(&t.owner, t.id, &newcomer, "viewer").await;
    app.delete(&t.owner, &format!("{}/members/{}", t.path(), newcomer.id)).await.expect(StatusCode::NO_CONTENT);
    let contact = app.user("activity-contact").await;
    app.add_contact(&t.owner, t.id, t.client_id, &contact).await;
    sqlx::query("UPDATE subscriptions SET cancel_at_period_end = true WHERE workspace_id = $1")
        .bind(t.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    app.post(
        &t.member,
        &format!("{}/ai/runs", t.path()),
        json!({"tool": "proposal_draft", "input": {"brief": "A site"}}),
    )
    .await
    .expect(StatusCode::CREATED);

    let path = format!("{}/activity?limit=100&since={}", t.path(), since.replace('+', "%2B"));
    let all = feed(&app, &t.viewer, &path).await;
    let mut seen = verbs(&all);
    seen.reverse();
    assert_eq!(
        seen,
        [
            "project.created",
            "project.status_changed",
            "milestone.done",
            "deliverable.created",
            "deliverable.status_changed",
            "comment.added",
            "member.joined",
            "member.left",
            "contact.linked",
            "subscription.changed",
            "ai_run.succeeded",
        ]
    );
    let items = all["items"].as_array().unwrap();
    let created = items.iter().find(|a| a["verb"] == "project.created").unwrap();
    assert_eq!(created["actor_id"], t.member.id.to_string());
    assert_eq!(created["actor"], format!("user:{}", t.member.id));
    assert_eq!(created["subject_type"], "project");
    assert_eq!(created["subject_id"], project_id.as_str());
    assert_eq!(created["subject_name"], "Brand refresh");
    assert_eq!(created["project_id"], project_id.as_str());
    assert_eq!(created["client_id"], t.client_id.to_string());
    assert_eq!(created["client_visible"], true);
    assert_eq!(created["message"], "Project “Brand refresh” was created.");
    let moved = items.iter().find(|a| a["verb"] == "deliverable.status_changed").unwrap();
    assert_eq!(moved["data"], json!({"status": "in_review", "previous_status": "draft"}));
    let comment = items.iter().find(|a| a["verb"] == "comment.added").unwrap();
    assert_eq!(comment["actor_id"], t.contact.id.to_string());
    let billing = items.iter().find(|a| a["verb"] == "subscription.changed").unwrap();
    assert!(billing["actor_id"].is_null() && !billing["client_visible"].as_bool().unwrap());

    // The client's contact: the client-visible part of the client's projects, nothing else.
    let portal = feed(&app, &t.contact, &path).await;
    let mut visible = verbs(&portal);
    visible.reverse();
    assert_eq!(
        visible,
        ["project.created", "project.status_changed", "milestone.done", "deliverable.status_changed", "comment.added"]
    );
    assert!(portal["items"].as_array().unwrap().iter().all(|a| a["client_visible"] == true));
    // Another workspace's owner: not found, not an empty page.
    let other = app.tenant("activity-other").await;
    let refused = app.get(&other.owner, &format!("{}/activity", t.path())).await;
    assert_eq!(refused.problem(StatusCode::NOT_FOUND), "not_found");
    let own = feed(&app, &other.owner, &format!("{}/activity?limit=100", other.path())).await;
    assert!(own["items"].as_array().unwrap().iter().all(|a| a["subject_name"] != "Brand refresh"));

    // One project's feed, and a resume after the third event: the rest, oldest first.
    let one = feed(&app, &t.owner, &format!("{}/activity?project_id={project_id}", t.path())).await;
    assert_eq!(verbs(&one), ["project.status_changed", "project.created"]);
    let third = items[items.len() - 3]["id"].as_str().unwrap();
    let resumed = feed(&app, &t.owner, &format!("{}/activity?after={third}&limit=100", t.path())).await;
    let resumed_ids: Vec<&str> =
        resumed["items"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = items.iter().map(|a| a["id"].as_str().unwrap()).collect();
    expected.reverse();
    assert_eq!(resumed_ids, expected[3..]);
    // Paging forward by `after` with the answer's cursor misses nothing either.
    let first = feed(&app, &t.owner, &format!("{}/activity?after={third}&limit=2", t.path())).await;
    let next = first["next_cursor"].as_str().unwrap();
    let second = feed(&app, &t.owner, &format!("{}/activity?after={next}&limit=100", t.path())).await;
    let paged: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(paged, expected[3..]);
    let both = app.get(&t.owner, &format!("{}/activity?after={third}&cursor={third}", t.path())).await;
    assert_eq!(both.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
}

#[tokio::test]
async fn a_change_that_rolls_back_leaves_no_activity() {
    let app = TestApp::new().await;
    let t = app.tenant("activity-rollback").await;
    let caller = t.owner.caller();
    let (mut tx, _) = app.state.open_workspace(&caller, t.id).await.unwrap();
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'Never')")
        .bind(id)
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM activity WHERE subject_id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1, "written in the change's own transaction");
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM activity WHERE subject_id = $1")
        .bind(id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(after, 0);
}

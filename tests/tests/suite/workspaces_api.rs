//! Behaviour of the workspaces function: ownership, members, clients and contacts.

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn the_creator_owns_a_new_workspace_and_sees_it_listed() {
    let app = TestApp::new().await;
    let user = app.user("creator").await;
    let created = app.post(&user, "/v1/workspaces", json!({"name": "  Studio  "})).await;
    let body = created.expect(StatusCode::CREATED);
    assert_eq!((body["name"].as_str(), body["role"].as_str()), (Some("Studio"), Some("owner")));
    let listed = app.get(&user, "/v1/workspaces").await;
    assert_eq!(listed.body["items"][0]["id"], body["id"]);
    let members = app.get(&user, &format!("/v1/workspaces/{}/members", created.id())).await;
    assert_eq!(members.body["items"][0]["role"], "owner");
    assert_eq!(members.body["items"][0]["email"], user.email);
}

#[tokio::test]
async fn the_last_owner_can_neither_leave_nor_be_demoted() {
    let app = TestApp::new().await;
    let t = app.tenant("owner").await;
    let me = format!("{}/members/{}", t.path(), t.owner.id);
    assert_eq!(app.put(&t.owner, &me, json!({"role": "admin"})).await.problem(StatusCode::CONFLICT), "last_owner");
    assert_eq!(app.delete(&t.owner, &me).await.problem(StatusCode::CONFLICT), "last_owner");
    // With a second owner, the first may step down.
    app.put(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id), json!({"role": "owner"}))
        .await
        .expect(StatusCode::OK);
    app.put(&t.owner, &me, json!({"role": "admin"})).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = TestApp::new().await;
    for round in 0..5 {
        let t = app.tenant(&format!("race{round}")).await;
        app.put(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id), json!({"role": "owner"}))
            .await
            .expect(StatusCode::OK);
        let (admin_path, owner_path) =
            (format!("{}/members/{}", t.path(), t.admin.id), format!("{}/members/{}", t.path(), t.owner.id));
        let demote_admin = app.put(&t.owner, &admin_path, json!({"role": "member"}));
        let demote_owner = app.put(&t.admin, &owner_path, json!({"role": "member"}));
        let (first, second) = tokio::join!(demote_admin, demote_owner);
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort();
        // Whoever commits first wins; the other hits the last-owner rule or has lost the owner role.
        assert!(statuses == [200, 409] || statuses == [200, 403], "round {round}: {statuses:?}");
        let owners: i64 =
            sqlx::query_scalar("SELECT count(*) FROM workspace_members WHERE workspace_id = $1 AND role = 'owner'")
                .bind(t.id)
                .fetch_one(&integration_tests::service_pool().await)
                .await
                .unwrap();
        assert_eq!(owners, 1, "round {round}");
    }
}

#[tokio::test]
async fn membership_rules() {
    let app = TestApp::new().await;
    let t = app.tenant("members").await;
    let members = format!("{}/members", t.path());
    let invitations = format!("{}/invitations", t.path());
    let again = app.post(&t.owner, &invitations, json!({"email": t.member.email, "role": "viewer"})).await;
    assert_eq!(again.problem(StatusCode::CONFLICT), "already_member");
    let newcomer = app.user("newcomer").await;
    // A domain is matched in any case; the part before the @ exactly.
    let shouted_domain = newcomer.email.replace("@test.example", "@TEST.Example");
    let by_admin = app.post(&t.admin, &invitations, json!({"email": shouted_domain, "role": "owner"})).await;
    assert_eq!(by_admin.problem(StatusCode::FORBIDDEN), "forbidden");
    let invited = app.post(&t.admin, &invitations, json!({"email": shouted_domain, "role": "member"})).await;
    invited.expect(StatusCode::CREATED);
    app.accept_invitation(&newcomer, invited.id()).await;
    assert_eq!(app.get(&newcomer, &t.path()).await.expect(StatusCode::OK)["role"], "member");
    // No one is added by e-mail alone: only the invitation the person accepts makes them a member.
    let direct = app.post(&t.owner, &members, json!({"email": newcomer.email, "role": "member"})).await;
    assert_eq!(direct.problem(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
    // The admin may not change or remove the owner.
    let owner = format!("{members}/{}", t.owner.id);
    assert_eq!(app.delete(&t.admin, &owner).await.problem(StatusCode::FORBIDDEN), "forbidden");
    // Anyone may leave; a second removal is a no-op.
    let viewer = format!("{members}/{}", t.viewer.id);
    app.delete(&t.viewer, &viewer).await.expect(StatusCode::NO_CONTENT);
    app.delete(&t.owner, &viewer).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(app.get(&t.viewer, &t.path()).await.problem(StatusCode::NOT_FOUND), "not_found");
    // Changing the role of someone who is not a member.
    let gone = app.put(&t.owner, &viewer, json!({"role": "member"})).await;
    assert_eq!(gone.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn client_contacts_come_and_go_with_their_link_and_their_client() {
    let app = TestApp::new().await;
    let t = app.tenant("contacts").await;
    let client = format!("{}/clients/{}", t.path(), t.client_id);
    let listed = app.get(&t.member, &format!("{client}/contacts")).await;
    assert_eq!(listed.body["items"][0]["email"], t.contact.email);
    let member_as_contact =
        app.post(&t.owner, &format!("{client}/invitations"), json!({"email": t.member.email})).await;
    assert_eq!(member_as_contact.problem(StatusCode::CONFLICT), "already_member");
    let again = app.post(&t.owner, &format!("{client}/invitations"), json!({"email": t.contact.email})).await;
    assert_eq!(again.problem(StatusCode::CONFLICT), "already_contact");
    // The contact sees the workspace as a client.
    assert_eq!(app.get(&t.contact, &t.path()).await.body["role"], "client");
    app.delete(&t.owner, &format!("{client}/contacts/{}", t.contact.id)).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(app.get(&t.contact, &t.project_path()).await.problem(StatusCode::NOT_FOUND), "not_found");
    // Deleting the client keeps its projects, unassigned.
    app.delete(&t.owner, &client).await.expect(StatusCode::NO_CONTENT);
    app.delete(&t.owner, &client).await.expect(StatusCode::NO_CONTENT);
    let project = app.get(&t.owner, &t.project_path()).await;
    assert_eq!(project.expect(StatusCode::OK)["client_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn deleting_a_workspace_removes_everything_in_it() {
    let app = TestApp::new().await;
    let t = app.tenant("gone").await;
    app.delete(&t.owner, &t.path()).await.expect(StatusCode::NO_CONTENT);
    let pool = integration_tests::service_pool().await;
    for table in
        ["workspace_members", "clients", "client_contacts", "projects", "milestones", "deliverables", "comments"]
    {
        assert_eq!(integration_tests::count(&pool, table, t.id).await, 0, "{table}");
    }
    assert_eq!(app.get(&t.owner, &t.path()).await.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn workspaces_page_with_a_cursor() {
    let app = TestApp::new().await;
    let user = app.user("pager").await;
    for i in 0..3 {
        app.post(&user, "/v1/workspaces", json!({"name": format!("W{i}")})).await.expect(StatusCode::CREATED);
    }
    let first = app.get(&user, "/v1/workspaces?limit=2").await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app.get(&user, &format!("/v1/workspaces?limit=2&cursor={cursor}")).await;
    let names: Vec<&str> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["W2", "W1", "W0"]);
    assert!(second.body["next_cursor"].is_null());
}

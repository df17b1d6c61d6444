//! The role matrix: every route × owner, admin, member, viewer, client contact, outsider.

use integration_tests::routes::{Ctx, ROLES, actor, rows};
use integration_tests::{INTERNAL_CLIENT_EMAIL, INTERNAL_CLIENT_NOTES, TestApp};

#[tokio::test]
async fn every_route_answers_each_role_as_the_matrix_says() {
    let app = TestApp::new().await;
    let outsider = app.user("outsider").await;
    app.workspace(&outsider, "Outsider's own").await;
    let mut mismatches = Vec::new();
    for (role, role_name) in ROLES.iter().enumerate() {
        let shared_ctx = Ctx::new(&app, role_name).await;
        for row in rows() {
            let fresh_ctx;
            let ctx = if row.fresh {
                fresh_ctx = Ctx::new(&app, role_name).await;
                &fresh_ctx
            } else {
                &shared_ctx
            };
            let (method, path, body) = (row.request)(ctx);
            let user = actor(ctx, role, &outsider);
            let response = app.call(method.clone(), &path, Some(&user.token), body.as_ref()).await;
            let expected = row.expect[role];
            if response.status.as_u16() != expected {
                mismatches.push(format!(
                    "{role_name:>8} {method} {} -> {} (expected {expected}) {}",
                    row.pattern, response.status, response.body
                ));
            } else if response.status.is_client_error() {
                // Refusals are problem+json with a code, never an empty or plain-text body.
                response.problem(response.status);
            } else if *role_name == "contact" {
                // Fields, not only statuses: nothing the agency keeps for itself reaches a contact.
                let body = response.body.to_string();
                for internal in [INTERNAL_CLIENT_NOTES, INTERNAL_CLIENT_EMAIL] {
                    if body.contains(internal) {
                        mismatches.push(format!("contact {method} {} received {internal:?}: {body}", row.pattern));
                    }
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "role matrix mismatches:\n{}", mismatches.join("\n"));
}

#[tokio::test]
async fn a_client_contact_gets_the_portal_view_of_its_client_and_members_the_whole_client() {
    let app = TestApp::new().await;
    let t = app.tenant("portal-view").await;
    let clients = format!("{}/clients", t.path());
    let one = format!("{clients}/{}", t.client_id);
    let keys = |body: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let portal = app.get(&t.contact, &one).await;
    let portal = portal.expect(axum::http::StatusCode::OK);
    assert_eq!(keys(portal), ["id", "name", "portal_note"]);
    assert_eq!(portal["portal_note"], "Welcome to your project portal");
    let listed = app.get(&t.contact, &clients).await;
    let items = listed.expect(axum::http::StatusCode::OK)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(keys(&items[0]), ["id", "name", "portal_note"]);
    for member in [&t.owner, &t.admin, &t.member, &t.viewer] {
        let team = app.get(member, &one).await;
        let team = team.expect(axum::http::StatusCode::OK);
        assert_eq!(keys(team), ["created_at", "email", "id", "name", "notes", "portal_note", "updated_at"]);
        assert_eq!(team["notes"], INTERNAL_CLIENT_NOTES);
    }
}

/// Three callers every route must refuse whatever it does: an API key whose creator was removed
/// (401 on every workspace route), a client contact of a workspace whose plan lost the portal
/// (402), and someone who signed in first with a member's address in capitals (an outsider).
#[tokio::test]
async fn every_route_refuses_a_dead_key_a_downgraded_contact_and_a_look_alike_address() {
    use axum::http::StatusCode;
    use integration_tests::{TestUser, subscribe};
    use serde_json::json;

    let app = TestApp::new().await;
    let live = Ctx::new(&app, "edges").await;
    let t = &live.tenant;
    let key = app.post(&t.admin, &format!("{}/api-keys", t.path()), json!({"name": "Admin's", "role": "admin"})).await;
    let dead_key = TestUser::api_key(&key);
    app.delete(&t.owner, &format!("{}/members/{}", t.path(), t.admin.id)).await.expect(StatusCode::NO_CONTENT);
    let (local, domain) = t.member.email.split_once('@').unwrap();
    let squatter = TestUser::signed_in(
        &format!("squatter-{}", uuid::Uuid::new_v4().simple()),
        Some(&format!("{}@{domain}", local.to_uppercase())),
    );
    let downgraded = Ctx::new(&app, "edges-downgraded").await;
    subscribe(downgraded.tenant.id, "studio", "canceled").await;

    let mut mismatches = Vec::new();
    for row in rows().into_iter().filter(|row| row.pattern.contains("{workspace_id}")) {
        let cases = [
            ("dead key", &live, &dead_key, 401, Some("api_key_creator_lacks_role")),
            ("downgraded contact", &downgraded, &downgraded.tenant.contact, 402, Some("feature_not_in_plan")),
            ("look-alike address", &live, &squatter, row.expect[5], None),
        ];
        for (who, ctx, caller, status, code) in cases {
            let (method, path, body) = (row.request)(ctx);
            let response = app.call(method.clone(), &path, Some(&caller.token), body.as_ref()).await;
            let answered = response.body["code"].as_str();
            if response.status.as_u16() != status || code.is_some_and(|code| answered != Some(code)) {
                mismatches.push(format!(
                    "{who:>18} {method} {} -> {} (expected {status} {code:?}) {}",
                    row.pattern, response.status, response.body
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "refusals that did not hold:\n{}", mismatches.join("\n"));
}

//! The role matrix: every route × owner, admin, member, viewer, client contact, outsider.

use integration_tests::TestApp;
use integration_tests::routes::{Ctx, ROLES, actor, rows};

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
            }
        }
    }
    assert!(mismatches.is_empty(), "role matrix mismatches:\n{}", mismatches.join("\n"));
}

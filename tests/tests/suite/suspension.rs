//! Suspension by a platform operator: a suspended workspace answers every read and refuses
//! every write route (table-driven over the route list, so a new write route cannot forget it),
//! its API keys stop, and lifting it restores writes; both are audited with the operator and the
//! reason.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use integration_tests::routes::{Ctx, rows};
use integration_tests::{AdminApi, TestApp, service_pool};
use serde_json::{Value, json};

/// The admin API's answer to a POST of `body` to `uri`, as the holder of `token`.
async fn post(admin: &AdminApi, token: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let answer = admin.call(token, Method::POST, uri, Some(body)).await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn a_suspended_workspace_reads_but_refuses_every_write_and_its_keys_stop() {
    let app = TestApp::new().await;
    let admin = AdminApi::new().await;
    let operator = admin.operator.clone();
    let ctx = Ctx::new(&app, "suspended").await;
    let t = &ctx.tenant;
    let key = app.post(&t.owner, &format!("{}/api-keys", t.path()), json!({"name": "K", "role": "admin"})).await;
    let key = key.body["key"].as_str().unwrap().to_owned();

    let (status, body) =
        post(&admin, &operator, &format!("/v1/admin/workspaces/{}/suspend", t.id), json!({"reason": "x"})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
    let (status, body) = post(
        &admin,
        &operator,
        &format!("/v1/admin/workspaces/{}/suspend", t.id),
        json!({"reason": "Chargeback under review"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suspended_at"].is_string());
    // A tenant cannot suspend or lift anything.
    let (status, _) =
        post(&admin, &t.owner.token, &format!("/v1/admin/workspaces/{}/unsuspend", t.id), json!({"reason": "please"}))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The billing portal writes nothing here and stays open, so an owner can fix a payment (and
    // so do the billing details, kept only in Stripe);
    // checkout, with this fixture's live subscription, sends to the portal before writing (a
    // new checkout of a suspended workspace is refused: below). Previewing and changing plan, cancelling or
    // resuming the subscription writes only in Stripe: a suspended customer may still stop paying.
    let open_while_suspended = [
        "/v1/workspaces/{workspace_id}/billing/portal",
        "/v1/workspaces/{workspace_id}/billing/checkout",
        "/v1/workspaces/{workspace_id}/billing/subscription",
        "/v1/workspaces/{workspace_id}/billing/subscription/preview",
        "/v1/workspaces/{workspace_id}/billing/subscription/cancel",
        "/v1/workspaces/{workspace_id}/billing/subscription/resume",
        // The billing details (name, address, tax IDs) live only in Stripe, like the portal's.
        "/v1/workspaces/{workspace_id}/billing/customer",
        "/v1/workspaces/{workspace_id}/billing/customer/tax-ids",
        "/v1/workspaces/{workspace_id}/billing/customer/tax-ids/{tax_id}",
    ];
    let mut wrong = Vec::new();
    for row in rows() {
        if !row.pattern.starts_with("/v1/workspaces/{workspace_id}") || open_while_suspended.contains(&row.pattern) {
            continue;
        }
        let (method, path, body) = (row.request)(&ctx);
        let response = app.call(method.clone(), &path, Some(&t.owner.token), body.as_ref()).await;
        let refused = response.status == StatusCode::FORBIDDEN && response.body["code"] == "workspace_suspended";
        // Reads answer as usual (as the role matrix says the owner is answered); every write is
        // refused, whatever it writes.
        let ok = if method == Method::GET { response.status.as_u16() == row.expect[0] } else { refused };
        if !ok {
            wrong.push(format!("{method} {} -> {} {}", row.pattern, response.status, response.body));
        }
    }
    assert!(wrong.is_empty(), "while suspended:\n{}", wrong.join("\n"));
    let by_key = app
        .send(Request::get(format!("{}/projects", t.path())).header("x-api-key", &key).body(Body::empty()).unwrap())
        .await;
    assert_eq!(by_key.problem(StatusCode::FORBIDDEN), "workspace_suspended");
    let portal = app
        .post(
            &t.owner,
            &format!("{}/billing/portal", t.path()),
            json!({"return_url": "https://app.example.test/billing"}),
        )
        .await;
    assert_eq!(portal.status, StatusCode::OK, "{}", portal.body);

    let (status, body) = post(
        &admin,
        &operator,
        &format!("/v1/admin/workspaces/{}/unsuspend", t.id),
        json!({"reason": "Chargeback resolved"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suspended_at"].is_null());
    app.post(&t.member, &format!("{}/projects", t.path()), json!({"name": "Back to work"}))
        .await
        .expect(StatusCode::CREATED);
    let by_key = app
        .send(Request::get(format!("{}/projects", t.path())).header("x-api-key", &key).body(Body::empty()).unwrap())
        .await;
    assert_eq!(by_key.status, StatusCode::OK);

    // A new checkout of a suspended workspace (no live subscription) is refused.
    let other = Ctx::new(&app, "suspended-checkout").await;
    sqlx::query("DELETE FROM subscriptions WHERE workspace_id = $1")
        .bind(other.tenant.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let (status, _) = post(
        &admin,
        &operator,
        &format!("/v1/admin/workspaces/{}/suspend", other.tenant.id),
        json!({"reason": "Fraud check"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let checkout = app
        .post(
            &other.tenant.owner,
            &format!("{}/billing/checkout", other.tenant.path()),
            json!({"plan": "pro", "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}),
        )
        .await;
    assert_eq!(checkout.problem(StatusCode::FORBIDDEN), "workspace_suspended");

    // Audited: the change itself by the workspace's trigger, and the operator's reasons.
    let entries: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT actor, action, coalesce(details, changes, '{}') FROM audit_log
         WHERE workspace_id = $1 AND actor LIKE 'operator:%' ORDER BY seq",
    )
    .bind(t.id)
    .fetch_all(&service_pool().await)
    .await
    .unwrap();
    let actor = format!("operator:{}|dev-operator", integration_tests::HS256_ISSUER);
    let actions: Vec<&str> = entries.iter().map(|(_, action, _)| action.as_str()).collect();
    assert_eq!(actions, ["workspaces.update", "workspace.suspended", "workspaces.update", "workspace.unsuspended"]);
    assert!(entries.iter().all(|(who, _, _)| *who == actor), "{entries:?}");
    assert_eq!(entries[1].2["reason"], "Chargeback under review");
    assert_eq!(entries[3].2["reason"], "Chargeback resolved");
}

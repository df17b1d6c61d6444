//! A user of workspace A gets nothing of workspace B through any route: every route aimed at B's
//! ids answers 404 (never 403 or 500) and B's rows stay as they were.

use axum::http::StatusCode;
use integration_tests::routes::{Ctx, rows};
use integration_tests::{TestApp, TestUser, service_pool};
use uuid::Uuid;

async fn fingerprint(workspace_id: Uuid) -> String {
    let pool = service_pool().await;
    sqlx::query_scalar(
        "SELECT concat_ws('|',
            (SELECT string_agg(w.name || w.updated_at::text, ',') FROM workspaces w WHERE w.id = $1),
            (SELECT string_agg(m.user_id::text || m.role::text, ',' ORDER BY m.user_id) FROM workspace_members m WHERE m.workspace_id = $1),
            (SELECT string_agg(c.id::text || c.name || c.updated_at::text, ',' ORDER BY c.id) FROM clients c WHERE c.workspace_id = $1),
            (SELECT string_agg(cc.user_id::text, ',' ORDER BY cc.user_id) FROM client_contacts cc WHERE cc.workspace_id = $1),
            (SELECT string_agg(p.id::text || p.updated_at::text, ',' ORDER BY p.id) FROM projects p WHERE p.workspace_id = $1),
            (SELECT string_agg(x.id::text || x.updated_at::text, ',' ORDER BY x.id) FROM milestones x WHERE x.workspace_id = $1),
            (SELECT string_agg(x.id::text || x.updated_at::text, ',' ORDER BY x.id) FROM deliverables x WHERE x.workspace_id = $1),
            (SELECT string_agg(x.id::text || x.updated_at::text, ',' ORDER BY x.id) FROM comments x WHERE x.workspace_id = $1))",
    )
    .bind(workspace_id)
    .fetch_one(&pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_route_aimed_at_another_workspace_answers_404_and_changes_nothing() {
    let app = TestApp::new().await;
    let a = Ctx::new(&app, "a").await;
    let b = Ctx::new(&app, "b").await;
    let before = fingerprint(b.tenant.id).await;
    let mut leaks = Vec::new();
    // Every user of A, whatever their role there, is an outsider to B: so are an API key of A,
    // and someone who signed in first with the address of B's member in capitals.
    let created = app
        .post(
            &a.tenant.owner,
            &format!("{}/api-keys", a.tenant.path()),
            serde_json::json!({"name": "A", "role": "admin"}),
        )
        .await;
    let a_key = TestUser::api_key(&created);
    let (local, domain) = b.tenant.member.email.split_once('@').unwrap();
    let squatter = TestUser::signed_in(
        &format!("squatter-{}", Uuid::new_v4().simple()),
        Some(&format!("{}@{domain}", local.to_uppercase())),
    );
    let a_users =
        [&a.tenant.owner, &a.tenant.admin, &a.tenant.member, &a.tenant.viewer, &a.tenant.contact, &a_key, &squatter];
    for row in rows().into_iter().filter(|row| row.pattern.contains("{workspace_id}")) {
        let (method, path, body) = (row.request)(&b);
        for user in a_users {
            let response = app.call(method.clone(), &path, Some(&user.token), body.as_ref()).await;
            if response.status != StatusCode::NOT_FOUND {
                leaks.push(format!("{method} {path} as {} -> {} {}", user.subject, response.status, response.body));
            }
        }
    }
    assert!(leaks.is_empty(), "routes that did not answer 404 across tenants:\n{}", leaks.join("\n"));

    // A's contact once A's plan lost the portal is still nobody in B (404); a key of A whose
    // creator was removed is refused before anything else (401), wherever it is sent.
    let created = app
        .post(
            &a.tenant.admin,
            &format!("{}/api-keys", a.tenant.path()),
            serde_json::json!({"name": "A", "role": "admin"}),
        )
        .await;
    let dead_key = TestUser::api_key(&created);
    app.delete(&a.tenant.owner, &format!("{}/members/{}", a.tenant.path(), a.tenant.admin.id))
        .await
        .expect(StatusCode::NO_CONTENT);
    integration_tests::subscribe(a.tenant.id, "studio", "canceled").await;
    for row in rows().into_iter().filter(|row| row.pattern.contains("{workspace_id}")) {
        let (method, path, body) = (row.request)(&b);
        for (caller, expected) in [(&a.tenant.contact, StatusCode::NOT_FOUND), (&dead_key, StatusCode::UNAUTHORIZED)] {
            let response = app.call(method.clone(), &path, Some(&caller.token), body.as_ref()).await;
            if response.status != expected {
                leaks.push(format!("{method} {path} as {} -> {} {}", caller.subject, response.status, response.body));
            }
        }
    }
    assert!(leaks.is_empty(), "refusals across tenants that did not hold:\n{}", leaks.join("\n"));
    assert_eq!(fingerprint(b.tenant.id).await, before, "workspace B changed");
}

#[tokio::test]
async fn lists_never_include_another_workspaces_rows() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let listed = app.get(&a.owner, "/v1/workspaces?limit=100").await;
    let ids: Vec<&str> = listed.body["items"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a.id.to_string()]);
    // A's project list filtered by B's client: empty, not an error and not B's projects.
    let filtered = app.get(&a.owner, &format!("{}/projects?client_id={}", a.path(), b.client_id)).await;
    assert_eq!(filtered.body["items"], serde_json::json!([]));
    // A project of B addressed under A's workspace path.
    let crossed = app.get(&a.owner, &format!("{}/projects/{}", a.path(), b.project_id)).await;
    assert_eq!(crossed.problem(StatusCode::NOT_FOUND), "not_found");
    // Children of B's project addressed under A's workspace and project ids.
    let crossed = app.get(&a.owner, &format!("{}/deliverables/{}", a.project_path(), b.visible_deliverable_id)).await;
    assert_eq!(crossed.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn a_project_cannot_be_assigned_to_another_workspaces_client() {
    let app = TestApp::new().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let response = app
        .post(&a.owner, &format!("{}/projects", a.path()), serde_json::json!({"name": "x", "client_id": b.client_id}))
        .await;
    assert_eq!(response.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    assert_eq!(response.body["errors"][0]["field"], "client_id");
}

/// Every route is in the OpenAPI document (tests/tests/suite/openapi.rs proves a route cannot be
/// declared otherwise), so the document lists the routes the role matrix must cover.
#[tokio::test]
async fn every_declared_route_has_a_row() {
    let doc = serde_json::to_value(local_stack::openapi_document()).unwrap();
    let mut declared = Vec::new();
    for (pattern, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                declared.push(format!("{} {pattern}", method.to_uppercase()));
            }
        }
    }
    assert!(declared.len() > 30, "found only {declared:?}");
    // Called by Stripe with a signature, not by users with a token: tests/tests/suite/stripe_webhook.rs.
    let signed_by_stripe = ["POST /", "POST /v1/stripe/webhook"];
    // Without a token, for anyone: tests/tests/suite/health.rs and tests/tests/suite/openapi.rs.
    let public = ["GET /v1/health", "GET /v1/openapi.json"];
    // For platform operators only, not tenants: tests/tests/suite/admin.rs runs the reads with every
    // tenant role (403), an API key and forged groups (401), and an operator (200);
    // tests/tests/suite/suspension.rs, tests/tests/suite/overrides.rs and tests/tests/suite/admin_billing.rs the writes.
    let operators_only = [
        "GET /v1/admin/workspaces",
        "GET /v1/admin/workspaces/{workspace_id}",
        "GET /v1/admin/totals",
        "GET /v1/admin/workspaces/{workspace_id}/overrides",
        "POST /v1/admin/workspaces/{workspace_id}/overrides",
        "POST /v1/admin/workspaces/{workspace_id}/overrides/{override_id}/revoke",
        "POST /v1/admin/workspaces/{workspace_id}/suspend",
        "POST /v1/admin/workspaces/{workspace_id}/unsuspend",
        "POST /v1/admin/workspaces/{workspace_id}/trial",
    ];
    let mut covered: Vec<String> = rows().iter().map(|r| format!("{} {}", r.method, r.pattern)).collect();
    covered.extend(signed_by_stripe.map(str::to_owned));
    covered.extend(public.map(str::to_owned));
    covered.extend(operators_only.map(str::to_owned));
    let missing: Vec<_> = declared.iter().filter(|d| !covered.contains(d)).collect();
    assert!(missing.is_empty(), "routes without a row in tests/src/routes.rs: {missing:?}");
}

//! Plans, entitlements derived only from the synced subscription, and plan limits enforced by the
//! database exactly at the limit, even under concurrent requests.

use axum::http::StatusCode;
use integration_tests::{TestApp, count, owner_pool, service_pool, subscribe};
use serde_json::json;
use shared::plans;
use uuid::Uuid;

/// A plan's row: id, projects, members, AI runs a month, requests and expensive requests a
/// minute, priced per seat, its features (AI tools, client portal, API access, webhooks, AI
/// runs beyond the quota), and its storage and file size in MiB.
type PlanRow = (String, Option<i32>, Option<i32>, i32, i32, i32, bool, [bool; 5], [i32; 2]);

#[tokio::test]
async fn the_catalog_matches_the_database() {
    type Row = (String, Option<i32>, Option<i32>, i32, i32, i32, bool, bool, bool, bool, bool, bool, i32, i32);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, max_projects, max_members, ai_runs_per_month, requests_per_minute, expensive_per_minute, per_seat,
                ai_tools, client_portal, api_access, webhooks, ai_overage, storage_mb, file_size_mb
         FROM plans ORDER BY id",
    )
    .fetch_all(&owner_pool().await)
    .await
    .unwrap();
    let rows: Vec<PlanRow> = rows
        .into_iter()
        .map(|r| (r.0, r.1, r.2, r.3, r.4, r.5, r.6, [r.7, r.8, r.9, r.10, r.11], [r.12, r.13]))
        .collect();
    let mut catalog: Vec<_> = plans::CATALOG
        .iter()
        .map(|p| {
            let limit = |n: Option<u32>| n.map(|n| n as i32);
            (
                p.id.to_owned(),
                limit(p.limits.projects),
                limit(p.limits.members),
                p.limits.ai_runs_per_month as i32,
                p.limits.requests_per_minute as i32,
                p.limits.expensive_per_minute as i32,
                p.per_seat,
                [
                    p.features.ai_tools,
                    p.features.client_portal,
                    p.features.api_access,
                    p.features.webhooks,
                    p.features.ai_overage,
                ],
                [p.limits.storage_mb as i32, p.limits.file_size_mb as i32],
            )
        })
        .collect();
    catalog.sort();
    assert_eq!(rows, catalog, "shared/src/plans.rs and the plans table disagree");
}

#[tokio::test]
async fn a_new_workspace_is_on_the_free_plan() {
    let app = TestApp::new().await;
    let owner = app.user("free").await;
    let id = app.workspace(&owner, "Free").await;
    let billing = app.get(&owner, &format!("/v1/workspaces/{id}/billing")).await;
    let body = billing.expect(StatusCode::OK);
    assert_eq!(body["plan"], "free");
    assert_eq!(body["status"], "none");
    assert_eq!(body["entitlements"]["limits"]["projects"], 3);
    assert_eq!(body["entitlements"]["features"]["ai_tools"], false);
    let usage = &body["usage"];
    assert_eq!((&usage["projects"], &usage["members"], &usage["storage_bytes"]), (&json!(0), &json!(1), &json!(0)));
    // Without a subscription, the AI quota's window is the calendar month.
    assert_eq!(usage["ai_runs"], 0);
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(usage["ai_quota_window"]["starts"], today.replace_day(1).unwrap().to_string());
    assert_eq!(body["entitlements"]["limits"]["storage_mb"], 100);
}

#[tokio::test]
async fn fifty_concurrent_creates_at_a_limit_of_three_leave_exactly_three() {
    let app = TestApp::new().await;
    let owner = app.user("burst").await;
    let id = app.workspace(&owner, "Burst").await;
    let path = format!("/v1/workspaces/{id}/projects");
    let creates = (0..50).map(|i| app.post(&owner, &path, json!({"name": format!("P{i}")})));
    let responses = futures::future::join_all(creates).await;
    let created = responses.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused: Vec<_> = responses.iter().filter(|r| r.status != StatusCode::CREATED).collect();
    assert_eq!(created, 3);
    for response in refused {
        assert_eq!(response.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    }
    assert_eq!(count(&service_pool().await, "projects", id).await, 3);
}

#[tokio::test]
async fn member_seats_are_limited_by_plan_too() {
    let app = TestApp::new().await;
    let owner = app.user("seats").await;
    let id = app.workspace(&owner, "Seats").await;
    let invitations = format!("/v1/workspaces/{id}/invitations");
    let (first, second) = (app.user("seat1").await, app.user("seat2").await);
    app.add_member(&owner, id, &first, "member").await;
    let over = app.post(&owner, &invitations, json!({"email": second.email, "role": "member"})).await;
    assert_eq!(over.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    // Upgrading lifts the limit.
    subscribe(id, "pro", "active").await;
    app.add_member(&owner, id, &second, "member").await;
}

async fn set_grace(workspace_id: Uuid, interval: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE subscriptions SET grace_until = now() + interval '{interval}' WHERE workspace_id = $1"
    )))
    .bind(workspace_id)
    .execute(&service_pool().await)
    .await
    .unwrap();
}

#[tokio::test]
async fn entitlements_follow_the_subscription_status() {
    let app = TestApp::new().await;
    let owner = app.user("states").await;
    let id = app.workspace(&owner, "States").await;
    let billing = format!("/v1/workspaces/{id}/billing");
    let cases = [
        ("active", None, "pro"),
        ("trialing", None, "pro"),
        ("past_due", Some("3 days"), "pro"),
        ("past_due", Some("-1 second"), "free"),
        ("past_due", None, "free"),
        ("unpaid", None, "free"),
        ("paused", None, "free"),
        ("incomplete", None, "free"),
        ("incomplete_expired", None, "free"),
        ("canceled", None, "free"),
        ("a_status_from_the_future", None, "free"),
    ];
    for (status, grace, expected) in cases {
        subscribe(id, "pro", status).await;
        sqlx::query("UPDATE subscriptions SET grace_until = NULL WHERE workspace_id = $1")
            .bind(id)
            .execute(&service_pool().await)
            .await
            .unwrap();
        if let Some(grace) = grace {
            set_grace(id, grace).await;
        }
        let body = app.get(&owner, &billing).await;
        assert_eq!(body.body["plan"], expected, "{status} {grace:?}");
        assert_eq!(body.body["subscribed_plan"], "pro");
        assert_eq!(body.body["status"], status);
    }
}

#[tokio::test]
async fn limits_follow_a_downgrade_without_deleting_anything() {
    let app = TestApp::new().await;
    let owner = app.user("downgrade").await;
    let id = app.workspace(&owner, "Downgrade").await;
    subscribe(id, "pro", "active").await;
    let path = format!("/v1/workspaces/{id}/projects");
    for i in 0..5 {
        app.post(&owner, &path, json!({"name": format!("P{i}")})).await.expect(StatusCode::CREATED);
    }
    subscribe(id, "pro", "canceled").await;
    let refused = app.post(&owner, &path, json!({"name": "one more"})).await;
    assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    let listed = app.get(&owner, &path).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 5, "existing projects stay");
}

#[tokio::test]
async fn members_cannot_write_billing_state_by_sql() {
    let app = TestApp::new().await;
    let t = app.tenant("billing-sql").await;
    let pool = integration_tests::api_pool().await;
    let caller = shared::auth::Caller::new(integration_tests::HS256_ISSUER.into(), t.owner.subject.clone(), None);
    let mut tx = shared::db::TenantTx::begin(&pool, &caller).await.unwrap();
    let result = sqlx::query("UPDATE subscriptions SET status = 'active', plan_id = 'studio'").execute(&mut *tx).await;
    let error = result.expect_err("the API role has no UPDATE on subscriptions");
    assert_eq!(error.as_database_error().and_then(|e| e.code()).as_deref(), Some("42501"));
}

#[tokio::test]
async fn the_client_portal_is_a_paid_feature() {
    let app = TestApp::new().await;
    let owner = app.user("portal-free").await;
    let ws = app.workspace(&owner, "Portal on free").await;
    let client = app.post(&owner, &format!("/v1/workspaces/{ws}/clients"), json!({"name": "Acme"})).await.id();
    let contact = app.user("portal-contact").await;
    let link = app
        .post(&owner, &format!("/v1/workspaces/{ws}/clients/{client}/invitations"), json!({"email": contact.email}))
        .await;
    assert_eq!(link.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");

    // A paying workspace's contacts lose the portal when the subscription ends; the team does not.
    let t = app.tenant("portal-downgrade").await;
    app.get(&t.contact, &t.project_path()).await.expect(StatusCode::OK);
    subscribe(t.id, "studio", "canceled").await;
    let refused = app.get(&t.contact, &t.project_path()).await;
    assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
    app.get(&t.member, &t.project_path()).await.expect(StatusCode::OK);
}

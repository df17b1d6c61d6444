//! AI runs beyond the plan's quota: admitted and billed through their own meter on plans that
//! allow them, never past the workspace's spending cap (exactly, under concurrency), with the
//! 80% and 100% mails of the cap; refused where the plan, an override or a missing overage price
//! says so; and, against the local Stripe, bought with a VAT ID and seen with its tax and the
//! overage on the upcoming invoice.

use axum::http::StatusCode;
use integration_tests::stripe::{LocalBilling, SECRET_KEY, form_of, meter_events_server};
use integration_tests::{Tenant, TestApp, grant_override, service_pool, subscribe};
use serde_json::{Value, json};
use uuid::Uuid;

fn runs(t: &Tenant) -> String {
    format!("{}/ai/runs", t.path())
}

fn overage_path(t: &Tenant) -> String {
    format!("{}/billing/ai-overage", t.path())
}

fn brief() -> Value {
    json!({"tool": "proposal_draft", "input": {"brief": "A booking site"}})
}

/// A Pro subscription whose overage price costs 10 cents a run, with its quota used up.
async fn pro_past_its_quota(t: &Tenant) {
    subscribe(t.id, "pro", "active").await;
    let service = service_pool().await;
    sqlx::query("UPDATE subscriptions SET overage_unit_amount = 10, currency = 'usd' WHERE workspace_id = $1")
        .bind(t.id)
        .execute(&service)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, app.ai_quota_period($1), 500)",
    )
    .bind(t.id)
    .execute(&service)
    .await
    .unwrap();
}

async fn window_usage(workspace: Uuid) -> (i32, i32) {
    sqlx::query_as("SELECT reserved, overage FROM ai_quota_usage WHERE workspace_id = $1")
        .bind(workspace)
        .fetch_one(&service_pool().await)
        .await
        .unwrap()
}

async fn cap_mails(workspace: Uuid) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT DISTINCT (params->>'percent')::int8 FROM emails WHERE workspace_id = $1 AND template = 'ai_spending_cap'
         ORDER BY 1",
    )
    .bind(workspace)
    .fetch_all(&service_pool().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn runs_past_the_quota_are_billed_as_overage_up_to_the_spending_cap() {
    let app = TestApp::new().await;
    let t = app.tenant("overage").await;
    pro_past_its_quota(&t).await;

    let first = app.post(&t.member, &runs(&t), brief()).await;
    let run_id = first.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_owned();
    assert_eq!(window_usage(t.id).await, (500, 1), "the quota's 500 untouched, one run beyond it");
    let (run_overage, record_overage): (bool, bool) = sqlx::query_as(
        "SELECT r.overage, u.overage FROM ai_runs r JOIN usage_records u ON u.run_id = r.id WHERE r.id = $1::uuid",
    )
    .bind(&run_id)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert!(run_overage && record_overage);
    let billing = app.get(&t.owner, &format!("{}/billing", t.path())).await;
    let billing = billing.expect(StatusCode::OK).clone();
    assert_eq!((&billing["usage"]["ai_runs"], &billing["usage"]["ai_overage_runs"]), (&json!(500), &json!(1)));
    assert_eq!(billing["entitlements"]["features"]["ai_overage"], true);
    let seen = app.get(&t.owner, &overage_path(&t)).await.expect(StatusCode::OK).clone();
    assert_eq!(
        (seen["admitted"].clone(), seen["billable"].clone(), seen["unit_amount"].clone(), seen["cap"].clone()),
        (json!(true), json!(true), json!("10"), Value::Null)
    );
    assert_eq!(
        (seen["runs"].clone(), seen["spent"].clone(), seen["remaining_runs"].clone()),
        (json!(1), json!(10), Value::Null)
    );

    // A cap of 50 cents: four more runs; the third crosses 80%, the fourth reaches it.
    for bad in [json!({"cap": -1}), json!({"cap": "10"}), json!({"cap": 100_000_000_001_i64}), json!({"limit": 5})] {
        let refused = app.put(&t.owner, &overage_path(&t), bad.clone()).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(app.put(&t.member, &overage_path(&t), json!({"cap": 50})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&t.member, &overage_path(&t)).await.status, StatusCode::FORBIDDEN);
    let capped = app.put(&t.admin, &overage_path(&t), json!({"cap": 50})).await.expect(StatusCode::OK).clone();
    assert_eq!((capped["cap"].clone(), capped["remaining_runs"].clone()), (json!(50), json!(4)));
    for expected in [vec![], vec![], vec![80], vec![80, 100]] {
        app.post(&t.member, &runs(&t), brief()).await.expect(StatusCode::CREATED);
        assert_eq!(cap_mails(t.id).await, expected);
    }
    let refused = app.post(&t.member, &runs(&t), brief()).await;
    assert_eq!(refused.problem(StatusCode::TOO_MANY_REQUESTS), "spending_cap_reached");
    assert_eq!(window_usage(t.id).await, (500, 5));
    let mail: Value = sqlx::query_scalar(
        "SELECT params FROM emails WHERE workspace_id = $1 AND template = 'ai_spending_cap' AND params->>'percent' = '100' LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert_eq!((mail["cap"].clone(), mail["spent"].clone(), mail["runs"].clone()), (json!(50), json!(50), json!(5)));

    // Raising the cap admits exactly what it allows, however many ask at once.
    app.put(&t.owner, &overage_path(&t), json!({"cap": 80})).await.expect(StatusCode::OK);
    let path = runs(&t);
    let answers = futures::future::join_all((0..7).map(|_| app.post(&t.member, &path, brief()))).await;
    let admitted = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    assert_eq!(admitted, 3);
    assert!(
        answers.iter().filter(|a| a.status != StatusCode::CREATED).all(|a| a.body["code"] == "spending_cap_reached")
    );
    assert_eq!(window_usage(t.id).await, (500, 8));
    // A cap of 0: no runs beyond the quota at all, said as the quota.
    app.put(&t.owner, &overage_path(&t), json!({"cap": 0})).await.expect(StatusCode::OK);
    assert_eq!(app.post(&t.member, &runs(&t), brief()).await.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    // Lifting it: unlimited again.
    let lifted = app.put(&t.owner, &overage_path(&t), json!({"cap": null})).await.expect(StatusCode::OK).clone();
    assert_eq!(lifted["remaining_runs"], Value::Null);
    app.post(&t.member, &runs(&t), brief()).await.expect(StatusCode::CREATED);
}

#[tokio::test]
async fn overage_is_refused_where_the_plan_an_override_or_a_missing_price_says_so() {
    let app = TestApp::new().await;
    let t = app.tenant("overage-refused").await;
    pro_past_its_quota(&t).await;
    // An operator withholds overage: the quota is the end.
    grant_override(t.id, "ai_overage", json!(0)).await;
    assert_eq!(app.post(&t.member, &runs(&t), brief()).await.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    let seen = app.get(&t.owner, &overage_path(&t)).await.expect(StatusCode::OK).clone();
    assert_eq!((seen["admitted"].clone(), seen["remaining_runs"].clone()), (json!(false), json!(0)));

    // A subscription without the overage price: it could not be billed, so it is not admitted.
    let other = app.tenant("overage-unpriced").await;
    pro_past_its_quota(&other).await;
    sqlx::query("UPDATE subscriptions SET overage_unit_amount = NULL WHERE workspace_id = $1")
        .bind(other.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let refused = app.post(&other.member, &runs(&other), brief()).await;
    assert_eq!(refused.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    assert_eq!(app.get(&other.owner, &overage_path(&other)).await.expect(StatusCode::OK)["billable"], false);
    assert_eq!(window_usage(other.id).await, (500, 0));
}

/// A run within the quota goes to the usage meter, one beyond it to the overage meter, whose
/// price bills it: the included runs are never charged.
#[tokio::test]
async fn included_and_overage_runs_go_to_their_own_meters() {
    let app = TestApp::new().await;
    let t = app.tenant("overage-meters").await;
    pro_past_its_quota(&t).await;
    sqlx::query("UPDATE ai_quota_usage SET reserved = 499 WHERE workspace_id = $1")
        .bind(t.id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let included = app.post(&t.member, &runs(&t), brief()).await.expect(StatusCode::CREATED)["id"].clone();
    let beyond = app.post(&t.member, &runs(&t), brief()).await.expect(StatusCode::CREATED)["id"].clone();
    let stripe = meter_events_server().await;
    let worker: usage_worker::UsageWorker = integration_tests::worker(
        "app_usage",
        &[("STRIPE_SECRET_KEY", SECRET_KEY.into()), ("STRIPE_API_BASE", stripe.uri())],
    )
    .await;
    for run in [&included, &beyond] {
        let record: Uuid = sqlx::query_scalar("SELECT id FROM usage_records WHERE run_id = $1::uuid")
            .bind(run.as_str().unwrap())
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
        assert_eq!(worker.report(&record.to_string()).await.unwrap(), usage_worker::Outcome::Reported);
    }
    let sent: Vec<_> = stripe.received_requests().await.unwrap().iter().map(form_of).collect();
    let meters: Vec<&str> = sent.iter().map(|f| f["event_name"].as_str()).collect();
    assert_eq!(meters, ["ai_tool_runs", "ai_overage_runs"]);
    assert!(sent.iter().all(|f| f["payload[value]"] == "1"));
}

/// The whole story on the local Stripe, with no account: bought with a German VAT ID (19% VAT
/// on the invoice), the quota used up, a run beyond it, and the overage with its tax on the
/// upcoming invoice.
#[tokio::test]
async fn on_the_local_stripe_the_tax_and_the_overage_show_on_the_invoices() {
    let t = LocalBilling::start("overage-local").await;
    let (app, owner, ws) = (&t.app, &t.owner, t.ws);
    let address = [("name", "Muster GmbH"), ("line1", "Hauptstr. 1"), ("postal_code", "10115"), ("city", "Berlin")];
    let mut form = address.to_vec();
    form.extend([("country", "DE"), ("vat_id", "DE123456789")]);
    t.checkout_paying("pro", &form).await;
    t.apply_events().await;
    let portal = t.portal_url().await;
    t.portal_action(&portal, "renew").await;
    t.apply_events().await;
    let customer = app.get(owner, &format!("/v1/workspaces/{ws}/billing/customer")).await;
    let customer = customer.expect(StatusCode::OK).clone();
    assert_eq!(
        (customer["address"]["country"].as_str(), customer["tax_ids"][0]["value"].as_str()),
        (Some("DE"), Some("DE123456789"))
    );
    let invoices = app.get(owner, &format!("/v1/workspaces/{ws}/invoices")).await.expect(StatusCode::OK).clone();
    let renewal = &invoices["items"][0];
    assert_eq!(
        (renewal["subtotal"].as_i64(), renewal["tax"].as_i64(), renewal["total"].as_i64()),
        (Some(2900), Some(551), Some(3451))
    );

    // The quota used up; one run beyond it, reported to the local Stripe's overage meter.
    sqlx::query(
        "INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, app.ai_quota_period($1), 500)
         ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = 500",
    )
    .bind(ws)
    .execute(&service_pool().await)
    .await
    .unwrap();
    let run = app.post(owner, &format!("/v1/workspaces/{ws}/ai/runs"), brief()).await;
    let run_id = run.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_owned();
    let record: Uuid = sqlx::query_scalar("SELECT id FROM usage_records WHERE run_id = $1::uuid")
        .bind(&run_id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    let worker: usage_worker::UsageWorker = integration_tests::worker(
        "app_usage",
        &[("STRIPE_SECRET_KEY", SECRET_KEY.into()), ("STRIPE_API_BASE", t.base.clone())],
    )
    .await;
    worker.report(&record.to_string()).await.unwrap();
    let invoices = app.get(owner, &format!("/v1/workspaces/{ws}/invoices")).await.expect(StatusCode::OK).clone();
    let upcoming = &invoices["upcoming"];
    // 29.00 and one run at 0.10, with 19% VAT on both.
    assert_eq!(
        (upcoming["subtotal"].as_i64(), upcoming["tax"].as_i64(), upcoming["total"].as_i64()),
        (Some(2910), Some(553), Some(3463)),
        "{upcoming}"
    );
}

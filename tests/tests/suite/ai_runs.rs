//! AI tool runs against a local provider that records every request: retries and time budget,
//! failures billed nothing, the quota exact under concurrency, idempotent replays.

use std::time::Duration;

use axum::http::StatusCode;
use integration_tests::ai::{API_KEY, messages_requests, ok};
use integration_tests::{Tenant, TestApp, base_settings, service_pool, subscribe};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn app_with(provider: &MockServer, budget_ms: u64) -> TestApp {
    let mut settings = base_settings();
    settings.push(("AI_PROVIDER_BASE_URL".into(), provider.uri()));
    settings.push(("AI_TIME_BUDGET_MS".into(), budget_ms.to_string()));
    TestApp::with_settings(settings).await
}

fn runs(t: &Tenant) -> String {
    format!("{}/ai/runs", t.path())
}

fn proposal() -> Value {
    json!({"tool": "proposal_draft", "input": {"brief": "A booking site for a yoga studio", "client_name": "Zen Co"}})
}

async fn usage_records(workspace_id: Uuid) -> i64 {
    integration_tests::count(&service_pool().await, "usage_records", workspace_id).await
}

async fn reserved(workspace_id: Uuid) -> i32 {
    sqlx::query_scalar("SELECT coalesce(sum(reserved), 0)::int FROM ai_quota_usage WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap()
}

async fn run_row(run_id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, error FROM ai_runs WHERE id = $1::uuid")
        .bind(run_id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_successful_run_stores_output_and_tokens_and_records_usage_once() {
    let provider = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).mount(&provider).await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-ok").await;
    let response =
        app.post(&t.member, &runs(&t), json!({"tool": "project_status_summary", "project_id": t.project_id})).await;
    let run = response.expect(StatusCode::CREATED);
    assert_eq!((run["status"].as_str(), run["output"].as_str()), (Some("succeeded"), Some("Here is the draft.")));
    assert_eq!((run["input_tokens"].as_i64(), run["output_tokens"].as_i64()), (Some(321), Some(123)));
    assert!(!response.body.to_string().contains(API_KEY), "the provider key never reaches a client");
    assert_eq!(usage_records(t.id).await, 1);
    assert_eq!(reserved(t.id).await, 1);

    let requests = messages_requests(&provider).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.headers.get("x-api-key").unwrap(), API_KEY);
    assert_eq!(request.headers.get("anthropic-version").unwrap(), "2023-06-01");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!((body["model"].as_str(), body["max_tokens"].as_i64()), (Some("claude-test"), Some(300)));
    assert!(body["system"].as_str().unwrap().contains("project status"));
    let prompt = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("Client site") && prompt.contains("Design") && prompt.contains("Internal notes"),
        "{prompt}"
    );

    let fetched = app.get(&t.viewer, &format!("{}/{}", runs(&t), run["id"].as_str().unwrap())).await;
    assert_eq!(fetched.expect(StatusCode::OK)["output"], "Here is the draft.");
}

#[tokio::test]
async fn a_client_update_email_is_written_from_client_visible_data_only() {
    let provider = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).mount(&provider).await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-email").await;
    let body = json!({"tool": "client_update_email", "project_id": t.project_id, "input": {"tone": "formal"}});
    app.post(&t.owner, &runs(&t), body).await.expect(StatusCode::CREATED);
    let sent: Value = serde_json::from_slice(&messages_requests(&provider).await[0].body).unwrap();
    let prompt = sent["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains("Mockups") && prompt.contains("For the client"), "{prompt}");
    assert!(
        !prompt.contains("Internal notes") && !prompt.contains("Team only"),
        "internal data leaked into a client e-mail: {prompt}"
    );
    assert!(sent["system"].as_str().unwrap().contains("formal"));
}

#[tokio::test]
async fn a_429_then_success_is_retried_and_billed_once() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&provider)
        .await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).with_priority(2).mount(&provider).await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-429").await;
    app.post(&t.member, &runs(&t), proposal()).await.expect(StatusCode::CREATED);
    assert_eq!(messages_requests(&provider).await.len(), 2);
    assert_eq!(usage_records(t.id).await, 1);
}

#[tokio::test]
async fn repeated_500s_fail_the_run_release_the_quota_and_bill_nothing() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&provider)
        .await;
    let app = app_with(&provider, 5000).await;
    let t = app.tenant("ai-500").await;
    let response = app.post(&t.member, &runs(&t), proposal()).await;
    assert_eq!(response.problem(StatusCode::BAD_GATEWAY), "provider_error");
    assert!(response.body["detail"].as_str().unwrap().contains("Nothing was billed"));
    assert!(messages_requests(&provider).await.len() >= 2, "5xx is retried");
    let listed = app.get(&t.member, &runs(&t)).await;
    let failed = &listed.body["items"][0];
    assert_eq!(
        run_row(failed["id"].as_str().unwrap()).await,
        ("failed".to_owned(), Some("the AI provider failed: HTTP 500 Internal Server Error".to_owned()))
    );
    assert_eq!(reserved(t.id).await, 0, "the reservation is given back");
    assert_eq!(usage_records(t.id).await, 0);
}

#[tokio::test]
async fn a_provider_slower_than_the_budget_is_a_504_and_bills_nothing() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ok().set_delay(Duration::from_secs(3)))
        .mount(&provider)
        .await;
    let app = app_with(&provider, 600).await;
    let t = app.tenant("ai-slow").await;
    let started = std::time::Instant::now();
    let response = app.post(&t.member, &runs(&t), proposal()).await;
    assert_eq!(response.problem(StatusCode::GATEWAY_TIMEOUT), "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(2), "the budget bounds the whole call: {:?}", started.elapsed());
    assert_eq!((reserved(t.id).await, usage_records(t.id).await), (0, 0));
}

#[tokio::test]
async fn a_malformed_reply_fails_the_run_and_bills_nothing() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>oops</html>"))
        .mount(&provider)
        .await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-bad").await;
    let response = app.post(&t.member, &runs(&t), proposal()).await;
    assert_eq!(response.problem(StatusCode::BAD_GATEWAY), "provider_error");
    assert_eq!(messages_requests(&provider).await.len(), 1, "a malformed success is not retried");
    assert_eq!((reserved(t.id).await, usage_records(t.id).await), (0, 0));
}

#[tokio::test]
async fn the_quota_is_exact_under_concurrency() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ok().set_delay(Duration::from_millis(50)))
        .mount(&provider)
        .await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-quota").await;
    subscribe(t.id, "pro", "active").await;
    // Pro allows 500 a month; leave 4 of them.
    let period = time::OffsetDateTime::now_utc().date().replace_day(1).unwrap();
    sqlx::query("INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, $2, 496)")
        .bind(t.id)
        .bind(period)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let path = runs(&t);
    let responses = futures::future::join_all((0..8).map(|_| app.post(&t.member, &path, proposal()))).await;
    let succeeded = responses.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(succeeded, 4);
    for refused in responses.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(refused.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    }
    assert_eq!(messages_requests(&provider).await.len(), 4, "refused runs never reach the provider");
    assert_eq!((reserved(t.id).await, usage_records(t.id).await), (500, 4));
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_run_without_a_second_call() {
    let provider = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).mount(&provider).await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-idem").await;
    let send = |body: Value| {
        let request = axum::http::Request::post(runs(&t))
            .header("authorization", format!("Bearer {}", t.member.token))
            .header("content-type", "application/json")
            .header("idempotency-key", "run-7")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        app.send(request)
    };
    let first = send(proposal()).await;
    first.expect(StatusCode::CREATED);
    // Same request with its fields in another order: still the same request.
    let reordered = json!({"input": {"client_name": "Zen Co", "brief": "A booking site for a yoga studio"}, "tool": "proposal_draft"});
    let second = send(reordered).await;
    assert_eq!(second.expect(StatusCode::OK)["id"], first.body["id"]);
    assert_eq!(second.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(messages_requests(&provider).await.len(), 1);
    assert_eq!(usage_records(t.id).await, 1);
    let different = send(json!({"tool": "proposal_draft", "input": {"brief": "Something else"}})).await;
    assert_eq!(different.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    assert_eq!(different.body["errors"][0]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn plans_without_ai_tools_and_bad_requests_are_refused_before_anything_runs() {
    let app = TestApp::new().await;
    let owner = app.user("ai-free").await;
    let ws = app.workspace(&owner, "Free").await;
    let free = app.post(&owner, &format!("/v1/workspaces/{ws}/ai/runs"), proposal()).await;
    assert_eq!(free.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
    let t = app.tenant("ai-bad-input").await;
    let other = app.tenant("ai-other").await;
    let cases = [
        (json!({"tool": "write_a_novel"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"tool": "project_status_summary"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"tool": "proposal_draft", "input": {"brief": ""}}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"tool": "proposal_draft", "input": {"brief": "x", "colour": "red"}}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"tool": "client_update_email", "project_id": t.project_id, "input": {"tone": "angry"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"tool": "project_status_summary", "project_id": other.project_id}), StatusCode::NOT_FOUND),
    ];
    for (body, status) in cases {
        let response = app.post(&t.owner, &runs(&t), body.clone()).await;
        assert_eq!(response.status, status, "{body}: {}", response.body);
    }
    assert!(messages_requests(&app.provider).await.is_empty());
    assert_eq!((reserved(t.id).await, usage_records(t.id).await), (0, 0));
}

/// Owners and admins are mailed when the month's runs reach 80% and 100% of the plan's, once
/// each per workspace and month, in the reservation's transaction.
#[tokio::test]
async fn the_quota_mails_go_out_at_80_and_100_percent_once_each() {
    let provider = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).mount(&provider).await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("quota-mail").await;
    subscribe(t.id, "pro", "active").await; // 500 runs a month
    let quota_mails = || async {
        sqlx::query_as::<_, (String, serde_json::Value)>(
            "SELECT to_address, params FROM emails WHERE workspace_id = $1 AND template = 'ai_quota' ORDER BY to_address, params->>'percent'",
        )
        .bind(t.id)
        .fetch_all(&service_pool().await)
        .await
        .unwrap()
    };
    let set_reserved = |n: i32| async move {
        sqlx::query(
            "INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, date_trunc('month', now())::date, $2)
             ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = excluded.reserved",
        )
        .bind(t.id)
        .bind(n)
        .execute(&integration_tests::owner_pool().await)
        .await
        .unwrap();
    };
    set_reserved(398).await;
    app.post(&t.member, &runs(&t), proposal()).await.expect(StatusCode::CREATED); // 399: under 80%
    assert!(quota_mails().await.is_empty());
    app.post(&t.member, &runs(&t), proposal()).await.expect(StatusCode::CREATED); // 400 of 500
    app.post(&t.member, &runs(&t), proposal()).await.expect(StatusCode::CREATED); // 401: no second mail
    let at_80 = quota_mails().await;
    assert_eq!(at_80.len(), 2, "owner and admin: {at_80:?}");
    assert!(at_80.iter().all(|(_, p)| p["percent"] == 80 && p["limit"] == 500));
    set_reserved(499).await;
    app.post(&t.member, &runs(&t), proposal()).await.expect(StatusCode::CREATED); // 500 of 500
    let refused = app.post(&t.member, &runs(&t), proposal()).await;
    assert_eq!(refused.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    let all = quota_mails().await;
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all.iter().filter(|(_, p)| p["percent"] == 100).count(), 2);
}

/// The quota's window is a month of the subscription's billing period, counted from its start
/// (here the second month of a yearly period), not the calendar month; the billing answer shows
/// it, and a refusal says when it renews.
#[tokio::test]
async fn the_quota_follows_the_billing_period_not_the_calendar_month() {
    let provider = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/messages")).respond_with(ok()).mount(&provider).await;
    let app = app_with(&provider, 3000).await;
    let t = app.tenant("ai-period").await;
    subscribe(t.id, "pro", "active").await;
    let service = service_pool().await;
    sqlx::query(
        "UPDATE subscriptions SET billing_interval = 'year', current_period_start = now() - interval '40 days',
                                  current_period_end = now() + interval '325 days' WHERE workspace_id = $1",
    )
    .bind(t.id)
    .execute(&service)
    .await
    .unwrap();
    let (window, first_window, renews): (time::Date, time::Date, time::Date) = sqlx::query_as(
        "SELECT ((now() - interval '40 days') AT TIME ZONE 'UTC' + interval '1 month')::date,
                ((now() - interval '40 days') AT TIME ZONE 'UTC')::date,
                ((now() - interval '40 days') AT TIME ZONE 'UTC' + interval '2 months')::date",
    )
    .fetch_one(&service)
    .await
    .unwrap();
    // The period's first month used its whole quota; that does not count now.
    sqlx::query("INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, $2, 500)")
        .bind(t.id)
        .bind(first_window)
        .execute(&service)
        .await
        .unwrap();
    app.post(&t.member, &runs(&t), proposal()).await.expect(StatusCode::CREATED);
    let counted: time::Date = sqlx::query_scalar("SELECT quota_period FROM ai_runs WHERE workspace_id = $1")
        .bind(t.id)
        .fetch_one(&service)
        .await
        .unwrap();
    assert_eq!(counted, window);
    let billing = app.get(&t.owner, &format!("{}/billing", t.path())).await;
    let usage = &billing.expect(StatusCode::OK)["usage"];
    assert_eq!(usage["ai_runs"], 1);
    assert_eq!(usage["ai_quota_window"], json!({"starts": window.to_string(), "renews": renews.to_string()}));

    // The window's quota used up: refused, saying when it renews.
    sqlx::query("UPDATE ai_quota_usage SET reserved = 500 WHERE workspace_id = $1 AND period = $2")
        .bind(t.id)
        .bind(window)
        .execute(&service)
        .await
        .unwrap();
    let refused = app.post(&t.member, &runs(&t), proposal()).await;
    assert_eq!(refused.problem(StatusCode::TOO_MANY_REQUESTS), "quota_exceeded");
    assert!(refused.body["detail"].as_str().unwrap().contains(&renews.to_string()), "{}", refused.body);
}

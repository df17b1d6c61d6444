//! Checkout and the Customer Portal against a local Stripe that records every request: the
//! exact form fields, metadata and idempotency keys sent, one customer per workspace under
//! concurrency, and nothing trusted from a redirect.

use axum::http::{HeaderValue, StatusCode};
use integration_tests::stripe::{Creates, SECRET_KEY, form_of, price_list};
use integration_tests::{TestApp, TestUser, base_settings, service_pool, subscribe};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn checkout_body(plan: &str) -> Value {
    json!({"plan": plan, "success_url": "https://app.example.test/billing?ok=1", "cancel_url": "https://app.example.test/billing"})
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default().into_iter().filter(|r| r.url.path() == p).collect()
}

async fn customer_of(workspace_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT stripe_customer_id FROM workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap()
}

async fn owner_with_workspace(app: &TestApp, label: &str) -> (TestUser, Uuid) {
    let owner = app.user(label).await;
    let ws = app.workspace(&owner, label).await;
    (owner, ws)
}

#[tokio::test]
async fn checkout_sends_stripe_exactly_what_links_the_subscription_to_the_workspace() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "checkout").await;
    let response = app.post(&owner, &format!("/v1/workspaces/{ws}/billing/checkout"), checkout_body("pro")).await;
    let body = response.expect(StatusCode::OK);
    assert!(body["url"].as_str().unwrap().starts_with("https://checkout.stripe.com/c/pay/cs_test_"), "{body}");

    let customers = requests_to(&app.stripe, "/v1/customers").await;
    assert_eq!(customers.len(), 1);
    let customer_form = form_of(&customers[0]);
    assert_eq!(customer_form["name"], "checkout");
    assert_eq!(customer_form["email"], owner.email);
    assert_eq!(customer_form["metadata[workspace_id]"], ws.to_string());
    assert_eq!(customers[0].headers.get("idempotency-key").unwrap(), format!("customer:{ws}").as_str());
    assert_eq!(customers[0].headers.get("authorization").unwrap(), format!("Bearer {SECRET_KEY}").as_str());
    assert_eq!(customers[0].headers.get("stripe-version").unwrap(), shared::stripe::API_VERSION);

    let prices = requests_to(&app.stripe, "/v1/prices").await;
    // Stripe reads an array as `lookup_keys[]=` or indexed (`lookup_keys[0]=`, async-stripe's form).
    let lookup_keys: Vec<_> = prices[0]
        .url
        .query_pairs()
        .filter(|(k, _)| k.starts_with("lookup_keys["))
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(lookup_keys, ["pro_monthly"]);
    // Pro admits AI runs beyond its quota: the overage price is looked up too.
    let overage_keys: Vec<_> = prices[1].url.query_pairs().filter(|(k, _)| k.starts_with("lookup_keys[")).collect();
    assert_eq!(overage_keys[0].1, "ai_overage_run");

    let sessions = requests_to(&app.stripe, "/v1/checkout/sessions").await;
    assert_eq!(sessions.len(), 1);
    let form = form_of(&sessions[0]);
    let customer = customer_of(ws).await.expect("the customer is stored on the workspace");
    let expected = [
        ("mode", "subscription"),
        ("customer", customer.as_str()),
        ("client_reference_id", &ws.to_string()),
        ("line_items[0][price]", "price_pro_monthly"),
        ("line_items[0][quantity]", "1"),
        // The metered overage price, without a quantity (usage decides).
        ("line_items[1][price]", "price_ai_overage_run"),
        ("success_url", "https://app.example.test/billing?ok=1"),
        ("cancel_url", "https://app.example.test/billing"),
        ("metadata[workspace_id]", &ws.to_string()),
        ("subscription_data[metadata][workspace_id]", &ws.to_string()),
        // The workspace's first paid subscription: the plan's trial.
        ("subscription_data[trial_period_days]", "14"),
        // Flexible billing mode: a yearly plan may sit beside the monthly metered overage price.
        ("subscription_data[billing_mode][type]", "flexible"),
        ("allow_promotion_codes", "true"),
        // Tax: the billing address and tax IDs collected and saved on the customer, and Stripe
        // Tax on (the default).
        ("billing_address_collection", "required"),
        ("tax_id_collection[enabled]", "true"),
        ("customer_update[address]", "auto"),
        ("customer_update[name]", "auto"),
        ("automatic_tax[enabled]", "true"),
    ];
    for (field, value) in expected {
        assert_eq!(form.get(field).map(String::as_str), Some(value), "{field}");
    }
    assert_eq!(form.len(), expected.len(), "no unexpected fields: {form:?}");
    let key = sessions[0].headers.get("idempotency-key").unwrap().to_str().unwrap();
    assert!(key.starts_with(&format!("checkout:{ws}:pro:")), "{key}");

    // The redirect proves nothing: the workspace stays free until the webhook says otherwise.
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!(billing.body["plan"], "free");
}

#[tokio::test]
async fn twenty_concurrent_checkouts_create_one_customer_and_converge_on_one_session() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "twenty").await;
    let path = format!("/v1/workspaces/{ws}/billing/checkout");
    let body = checkout_body("studio");
    // No Idempotency-Key: twenty independent clicks.
    let responses = futures::future::join_all((0..20).map(|_| app.post(&owner, &path, body.clone()))).await;
    assert!(
        responses.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        responses.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(requests_to(&app.stripe, "/v1/customers").await.len(), 1);
    let sessions = requests_to(&app.stripe, "/v1/checkout/sessions").await;
    assert_eq!(sessions.len(), 1, "one session for one workspace and plan, so only one can be paid");
    let urls: std::collections::HashSet<&str> = responses.iter().map(|r| r.body["url"].as_str().unwrap()).collect();
    assert_eq!(urls.len(), 1, "every click got the same session");
    assert_eq!(customer_of(ws).await.as_deref(), Some(form_of(&sessions[0])["customer"].as_str()));
}

#[tokio::test]
async fn a_new_session_only_for_another_plan_or_once_the_open_one_is_used_or_expiring() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "sessions").await;
    let path = format!("/v1/workspaces/{ws}/billing/checkout");
    let url = |r: &integration_tests::TestResponse| r.body["url"].as_str().unwrap().to_owned();
    let pro = app.post(&owner, &path, checkout_body("pro")).await;
    assert_eq!(url(&app.post(&owner, &path, checkout_body("pro")).await), url(&pro), "reused while open");
    let studio = app.post(&owner, &path, checkout_body("studio")).await;
    assert_ne!(url(&studio), url(&pro), "another plan is another session");
    // About to expire: a fresh one, so nobody is sent to a page that dies under them.
    sqlx::query("UPDATE checkout_sessions SET expires_at = now() + interval '5 minutes' WHERE url = $1")
        .bind(url(&pro))
        .execute(&service_pool().await)
        .await
        .unwrap();
    let fresh = app.post(&owner, &path, checkout_body("pro")).await;
    assert_ne!(url(&fresh), url(&pro));
    // Completed (the worker marks it on checkout.session.completed): a fresh one too.
    let session_id = fresh.body["id"].as_str().unwrap().to_owned();
    let worker = app.billing_worker(7).await;
    let completed = integration_tests::stripe::checkout_completed_event(
        &format!("evt_done_{}", ws.simple()),
        integration_tests::stripe::now(),
        ws,
        "cus_sessions",
        "sub_sessions_missing",
    );
    let mut completed = completed;
    completed["data"]["object"]["id"] = json!(session_id);
    worker.apply(&completed.to_string()).await.unwrap();
    let after = app.post(&owner, &path, checkout_body("pro")).await;
    assert_ne!(url(&after), url(&fresh));
    let sessions = requests_to(&app.stripe, "/v1/checkout/sessions").await;
    assert_eq!(sessions.len(), 4);
    // The trial comes with the first subscription only: not once a checkout completed.
    let trials: Vec<Option<String>> =
        sessions.iter().map(|s| form_of(s).get("subscription_data[trial_period_days]").cloned()).collect();
    assert_eq!(trials, [Some("14".to_owned()), Some("14".to_owned()), Some("14".to_owned()), None]);
    assert_eq!((pro.body["trial_days"].as_u64(), after.body["trial_days"].as_u64()), (Some(14), None));
}

#[tokio::test]
async fn a_retried_checkout_gets_the_same_session_and_stripe_the_clients_idempotency_key() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "retry").await;
    let mut urls = Vec::new();
    for _ in 0..2 {
        let response = app
            .send(
                axum::http::Request::post(format!("/v1/workspaces/{ws}/billing/checkout"))
                    .header("authorization", format!("Bearer {}", owner.token))
                    .header("content-type", "application/json")
                    .header("idempotency-key", HeaderValue::from_static("click-42"))
                    .body(axum::body::Body::from(checkout_body("pro").to_string()))
                    .unwrap(),
            )
            .await;
        urls.push(response.expect(StatusCode::OK)["url"].clone());
    }
    assert_eq!(urls[0], urls[1]);
    let keys: Vec<String> = requests_to(&app.stripe, "/v1/checkout/sessions")
        .await
        .iter()
        .map(|r| r.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, vec![format!("checkout:{ws}:pro:month:click-42")], "the retry is answered from the open session");
}

#[tokio::test]
async fn invalid_plans_and_foreign_redirects_are_refused_before_stripe_is_called() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "invalid").await;
    let path = format!("/v1/workspaces/{ws}/billing/checkout");
    let cases = [
        (checkout_body("free"), "plan"),
        (checkout_body("enterprise"), "plan"),
        (
            json!({"plan": "pro", "success_url": "https://evil.example.com/", "cancel_url": "https://app.example.test/"}),
            "success_url",
        ),
        (
            json!({"plan": "pro", "success_url": "https://app.example.test/", "cancel_url": "https://app.example.test.evil.io/"}),
            "cancel_url",
        ),
    ];
    for (body, field) in cases {
        let response = app.post(&owner, &path, body).await;
        assert_eq!(response.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
        assert_eq!(response.body["errors"][0]["field"], field);
    }
    assert!(app.stripe.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_workspace_with_a_live_subscription_is_sent_to_the_portal() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "live").await;
    subscribe(ws, "pro", "past_due").await;
    let response = app.post(&owner, &format!("/v1/workspaces/{ws}/billing/checkout"), checkout_body("studio")).await;
    assert_eq!(response.problem(StatusCode::CONFLICT), "subscription_exists");
    assert!(app.stripe.received_requests().await.unwrap().is_empty());
    subscribe(ws, "pro", "canceled").await;
    let again = app.post(&owner, &format!("/v1/workspaces/{ws}/billing/checkout"), checkout_body("studio")).await;
    again.expect(StatusCode::OK);
    // It had a subscription: no second trial.
    assert_eq!(again.body["trial_days"], serde_json::Value::Null);
    let sessions = requests_to(&app.stripe, "/v1/checkout/sessions").await;
    assert!(!form_of(&sessions[0]).contains_key("subscription_data[trial_period_days]"));
}

async fn app_with_stripe(stripe: &MockServer) -> TestApp {
    let mut settings = base_settings();
    settings.push(("STRIPE_API_BASE".into(), stripe.uri()));
    TestApp::with_settings(settings).await
}

#[tokio::test]
async fn stripe_down_is_a_503_and_stores_nothing_while_a_refusal_is_a_502() {
    let down = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/customers")).respond_with(ResponseTemplate::new(500)).mount(&down).await;
    let app = app_with_stripe(&down).await;
    let (owner, ws) = owner_with_workspace(&app, "down").await;
    let response = app.post(&owner, &format!("/v1/workspaces/{ws}/billing/checkout"), checkout_body("pro")).await;
    assert_eq!(response.problem(StatusCode::SERVICE_UNAVAILABLE), "service_unavailable");
    assert_eq!(requests_to(&down, "/v1/customers").await.len(), 3, "retried with the same idempotency key");
    assert_eq!(customer_of(ws).await, None);

    let refusing = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/customers")).respond_with(Creates("cus")).mount(&refusing).await;
    Mock::given(method("GET"))
        .and(path("/v1/prices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(price_list("pro_monthly")))
        .mount(&refusing)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such price"}}),
        ))
        .mount(&refusing)
        .await;
    let app = app_with_stripe(&refusing).await;
    let (owner, ws) = owner_with_workspace(&app, "refused").await;
    let response = app.post(&owner, &format!("/v1/workspaces/{ws}/billing/checkout"), checkout_body("pro")).await;
    assert_eq!(response.problem(StatusCode::BAD_GATEWAY), "billing_provider_error");
    assert!(
        !response.body["detail"].as_str().unwrap().contains("No such price"),
        "Stripe's message is logged, not shown"
    );
}

#[tokio::test]
async fn the_portal_opens_for_the_workspaces_customer_only() {
    let app = TestApp::new().await;
    let (owner, ws) = owner_with_workspace(&app, "portal").await;
    let path = format!("/v1/workspaces/{ws}/billing/portal");
    let none = app.post(&owner, &path, json!({"return_url": "https://app.example.test/settings"})).await;
    assert_eq!(none.problem(StatusCode::CONFLICT), "no_billing_account");
    subscribe(ws, "pro", "active").await;
    let foreign = app.post(&owner, &path, json!({"return_url": "https://phish.example.com/"})).await;
    assert_eq!(foreign.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    let opened = app.post(&owner, &path, json!({"return_url": "https://app.example.test/settings"})).await;
    assert!(
        opened.expect(StatusCode::OK)["url"].as_str().unwrap().starts_with("https://billing.stripe.com/p/session/")
    );
    let sessions = requests_to(&app.stripe, "/v1/billing_portal/sessions").await;
    assert_eq!(sessions.len(), 1);
    let form = form_of(&sessions[0]);
    assert_eq!(form["customer"], customer_of(ws).await.unwrap());
    assert_eq!(form["return_url"], "https://app.example.test/settings");
    assert!(sessions[0].headers.get("idempotency-key").is_some());
}

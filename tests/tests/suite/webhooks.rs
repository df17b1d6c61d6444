//! Outgoing webhooks end to end: endpoints through the API, events written by the database in
//! the change's transaction, the dispatcher sending them to a local receiver, signatures checked
//! with the Standard Webhooks reference library (Python, an implementation independent of ours),
//! retries, the delivery log, failure and auto-disable, SSRF refusals and the plan feature.

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use integration_tests::{Tenant, TestApp, api_pool, base_settings, create_queue, service_pool, subscribe};
use serde_json::{Value, json};
use shared::webhooks::egress::{Egress, EgressPolicy};
use uuid::Uuid;
use webhook_dispatcher::{Dispatcher, Outcome, RetrySchedule};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn app() -> TestApp {
    let mut settings = base_settings();
    settings.push(("WEBHOOKS_ALLOW_LOOPBACK_HTTP".into(), "true".into()));
    TestApp::with_settings(settings).await
}

/// The dispatcher as deployed, but allowed to reach the loopback receiver, with retries due at
/// once (the schedule itself is unit-tested) and endpoints disabled after `disable_after`.
async fn dispatcher(disable_after: Duration) -> Dispatcher {
    let deployed: Dispatcher =
        integration_tests::worker("app_webhooks", &[("WEBHOOKS_ALLOW_LOOPBACK_HTTP", "true".into())]).await;
    Dispatcher {
        egress: Egress::new(EgressPolicy {
            allow_loopback_http: true,
            timeout: Duration::from_secs(5),
            ..EgressPolicy::default()
        })
        .unwrap(),
        schedule: RetrySchedule::new(vec![Duration::ZERO; 7]),
        disable_after,
        ..deployed
    }
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(status)).mount(&server).await;
    server
}

/// Registers an endpoint; answers its id and its secret.
async fn register(app: &TestApp, t: &Tenant, url: &str, events: &[&str], format: &str) -> (Uuid, String) {
    let created = app
        .post(&t.owner, &format!("{}/webhooks", t.path()), json!({"url": url, "events": events, "format": format}))
        .await;
    let body = created.expect(StatusCode::CREATED);
    (created.id(), body["secret"].as_str().unwrap().to_owned())
}

/// The endpoint's deliveries that are pending, oldest first.
async fn pending(endpoint: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending' ORDER BY id")
        .bind(endpoint)
        .fetch_all(&service_pool().await)
        .await
        .unwrap()
}

/// Sends every pending delivery of the endpoint once.
async fn deliver_all(dispatcher: &Dispatcher, endpoint: Uuid) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for id in pending(endpoint).await {
        outcomes.push(dispatcher.deliver(&id.to_string()).await.unwrap());
    }
    outcomes
}

/// Each request verified by the reference library with `secret`: the payload, or the refusal.
fn verify_with_reference_library(requests: &[Request], secret: &str) -> Vec<Value> {
    let items: Vec<Value> = requests
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(name, value)| (name.to_string(), Value::String(value.to_str().unwrap().to_owned())))
                .collect();
            json!({"secret": secret, "body": String::from_utf8_lossy(&r.body), "headers": headers})
        })
        .collect();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/verify_standard_webhooks.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the project's Python tools (.venv, made by scripts/test.sh) run the reference verifier");
    serde_json::to_writer(child.stdin.take().unwrap(), &items).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the verifier failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn header(request: &Request, name: &str) -> String {
    request.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn changes_reach_a_registered_endpoint_signed_as_the_reference_library_verifies() {
    let app = app().await;
    let t = app.tenant("wh-signed").await;
    let server = receiver(204).await;
    let events =
        ["project.created", "project.updated", "comment.created", "deliverable.status_changed", "member.joined"];
    let (endpoint, secret) = register(&app, &t, &format!("{}/hooks", server.uri()), &events, "standard").await;
    assert!(secret.starts_with("whsec_"));

    let project = app
        .post(&t.member, &format!("{}/projects", t.path()), json!({"name": "Launch site", "client_id": t.client_id}))
        .await;
    let project_id = project.expect(StatusCode::CREATED)["id"].as_str().unwrap().to_owned();
    app.put(
        &t.member,
        &format!("{}/projects/{project_id}", t.path()),
        json!({"name": "Launch site", "status": "on_hold", "client_id": t.client_id}),
    )
    .await
    .expect(StatusCode::OK);
    // A client contact's comment and a deliverable's review reach the agency's endpoint too.
    app.post(&t.contact, &format!("{}/comments", t.project_path()), json!({"body": "Looks <great> & \"done\""}))
        .await
        .expect(StatusCode::CREATED);
    let deliverable = format!("{}/deliverables/{}", t.project_path(), t.visible_deliverable_id);
    let current = app.get(&t.owner, &deliverable).await.expect(StatusCode::OK).clone();
    let mut replaced = json!({"title": current["title"], "description": current["description"], "status": "in_review",
                              "client_visible": current["client_visible"]});
    if !current["milestone_id"].is_null() {
        replaced["milestone_id"] = current["milestone_id"].clone();
    }
    app.put(&t.member, &deliverable, replaced).await.expect(StatusCode::OK);
    let newcomer = app.user("wh-newcomer").await;
    app.add_member(&t.owner, t.id, &newcomer, "viewer").await;
    // Not subscribed: no delivery.
    app.delete(&t.owner, &format!("{}/projects/{project_id}", t.path())).await.expect(StatusCode::NO_CONTENT);

    let d = dispatcher(Duration::from_secs(3600)).await;
    let outcomes = deliver_all(&d, endpoint).await;
    assert_eq!(outcomes, vec![Outcome::Succeeded; 5]);
    let requests = server.received_requests().await.unwrap();
    let types: Vec<String> = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap().into())
        .collect();
    assert_eq!(types, events);

    let verified = verify_with_reference_library(&requests, &secret);
    for (payload, request) in verified.iter().zip(&requests) {
        assert!(payload.get("error").is_none(), "refused: {payload}");
        assert_eq!(payload, &serde_json::from_slice::<Value>(&request.body).unwrap());
        assert!(header(request, "webhook-id").starts_with("msg_"));
        assert_eq!(header(request, "content-type"), "application/json");
    }
    let wrong = verify_with_reference_library(&requests[..1], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert!(wrong[0]["error"].as_str().unwrap().contains("signature"), "{wrong:?}");

    let created = &verified[0]["data"];
    assert_eq!(created["id"], project_id.as_str());
    assert_eq!(created["name"], "Launch site");
    assert!(created.get("workspace_id").is_none());
    let updated = &verified[1]["data"];
    assert_eq!(updated["status"], "on_hold");
    assert_eq!(updated["previous_attributes"], json!({"status": "active"}));
    assert_eq!(verified[2]["data"]["body"], "Looks <great> & \"done\"");
    assert_eq!(verified[2]["data"]["author_id"], t.contact.id.to_string());
    assert_eq!(verified[3]["data"]["status"], "in_review");
    assert_eq!(verified[3]["data"]["previous_status"], current["status"]);
    assert_eq!(verified[4]["data"], json!({"user_id": newcomer.id, "role": "viewer", "email": newcomer.email}));

    // Nothing left to send, and a redelivered message sends nothing again.
    assert!(pending(endpoint).await.is_empty());
    let first: Uuid =
        sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id LIMIT 1")
            .bind(endpoint)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert_eq!(d.deliver(&first.to_string()).await.unwrap(), Outcome::NothingToDo);
    assert_eq!(server.received_requests().await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_delivery_in_flight_is_not_sent_twice_by_a_redelivered_message() {
    let app = app().await;
    let t = app.tenant("wh-inflight").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
        .mount(&server)
        .await;
    let (endpoint, _) = register(&app, &t, &server.uri(), &["comment.created"], "standard").await;
    app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": "Once"}))
        .await
        .expect(StatusCode::CREATED);
    let d = dispatcher(Duration::from_secs(3600)).await;
    let id = pending(endpoint).await[0].to_string();
    let (a, b) = tokio::join!(d.deliver(&id), d.deliver(&id));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| *o == Outcome::NothingToDo);
    assert_eq!(outcomes, [Outcome::Succeeded, Outcome::NothingToDo]);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_answers_and_every_attempt_is_logged() {
    let app = app().await;
    let t = app.tenant("wh-retry").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy, try later"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_string("ok")).mount(&server).await;
    let (endpoint, _) = register(&app, &t, &server.uri(), &["comment.created"], "standard").await;
    app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": "Ping"}))
        .await
        .expect(StatusCode::CREATED);
    let d = dispatcher(Duration::from_secs(3600)).await;
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::RetryScheduled]);
    let endpoint_path = format!("{}/webhooks/{endpoint}", t.path());
    let failing = app.get(&t.admin, &endpoint_path).await.expect(StatusCode::OK).clone();
    assert!(failing["failing_since"].is_string(), "{failing}");
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::RetryScheduled]);
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::Succeeded]);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    // The same message each time (receivers deduplicate on its id), signed anew.
    assert!(requests.iter().all(|r| header(r, "webhook-id") == header(&requests[0], "webhook-id")));
    assert!(requests.iter().all(|r| r.body == requests[0].body));

    let log = app.get(&t.admin, &format!("{endpoint_path}/deliveries")).await.expect(StatusCode::OK).clone();
    let delivery = &log["items"][0];
    assert_eq!(delivery["status"], "succeeded");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["event_type"], "comment.created");
    assert_eq!(delivery["last_status_code"], 200);
    let detail = app
        .get(&t.admin, &format!("{endpoint_path}/deliveries/{}", delivery["id"].as_str().unwrap()))
        .await
        .expect(StatusCode::OK)
        .clone();
    let attempts = detail["attempts_log"].as_array().unwrap();
    let codes: Vec<i64> = attempts.iter().map(|a| a["status_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [503, 503, 200]);
    assert_eq!(attempts[0]["response_body"], "busy, try later");
    assert_eq!(attempts[0]["error"], "the endpoint answered 503");
    assert!(attempts.iter().all(|a| a["latency_ms"].as_i64().unwrap() >= 0));
    assert_eq!(detail["payload"]["data"]["body"], "Ping");
    // A success restarts the endpoint's failure clock.
    let healthy = app.get(&t.admin, &endpoint_path).await.expect(StatusCode::OK).clone();
    assert!(healthy["failing_since"].is_null());
    // Only failures are filtered for.
    let failed = app.get(&t.admin, &format!("{endpoint_path}/deliveries?status=failed")).await;
    assert_eq!(failed.expect(StatusCode::OK)["items"], json!([]));
}

#[tokio::test]
async fn a_delivery_fails_after_its_attempts_and_a_manual_retry_sends_it_once_more() {
    let app = app().await;
    let t = app.tenant("wh-exhaust").await;
    let down = receiver(500).await;
    let (endpoint, _) = register(&app, &t, &down.uri(), &["project.created"], "standard").await;
    app.post(&t.owner, &format!("{}/projects", t.path()), json!({"name": "Doomed"})).await.expect(StatusCode::CREATED);
    let d = dispatcher(Duration::from_secs(3600)).await;
    let mut outcomes = Vec::new();
    while !pending(endpoint).await.is_empty() {
        outcomes.extend(deliver_all(&d, endpoint).await);
    }
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Outcome::Failed));
    assert!(outcomes[..7].iter().all(|o| *o == Outcome::RetryScheduled));
    let endpoint_path = format!("{}/webhooks/{endpoint}", t.path());
    let log =
        app.get(&t.owner, &format!("{endpoint_path}/deliveries?status=failed")).await.expect(StatusCode::OK).clone();
    let delivery_id = log["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(log["items"][0]["attempts"], 8);
    assert!(log["items"][0]["next_attempt_at"].is_null());

    // The receiver is fixed: one more attempt, now.
    down.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&down).await;
    let retry = app.post(&t.admin, &format!("{endpoint_path}/deliveries/{delivery_id}/retry"), json!(null)).await;
    assert_eq!(retry.expect(StatusCode::ACCEPTED)["delivery_id"], delivery_id.as_str());
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::Succeeded]);
    let again = app.post(&t.admin, &format!("{endpoint_path}/deliveries/{delivery_id}/retry"), json!(null)).await;
    assert_eq!(again.problem(StatusCode::CONFLICT), "webhook_delivery_succeeded");
    let unknown =
        app.post(&t.admin, &format!("{endpoint_path}/deliveries/{}/retry", Uuid::now_v7()), json!(null)).await;
    assert_eq!(unknown.problem(StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn an_endpoint_failing_for_the_configured_period_is_disabled_and_its_managers_are_mailed() {
    let app = app().await;
    let t = app.tenant("wh-disable").await;
    let down = receiver(500).await;
    let (endpoint, _) = register(&app, &t, &down.uri(), &["comment.created"], "standard").await;
    for body in ["one", "two"] {
        app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": body}))
            .await
            .expect(StatusCode::CREATED);
    }
    // Failing "for zero seconds" is enough here: the first failure disables it.
    let d = dispatcher(Duration::ZERO).await;
    let ids = pending(endpoint).await;
    assert_eq!(d.deliver(&ids[0].to_string()).await.unwrap(), Outcome::Failed);
    let endpoint_path = format!("{}/webhooks/{endpoint}", t.path());
    let view = app.get(&t.owner, &endpoint_path).await.expect(StatusCode::OK).clone();
    assert_eq!(view["enabled"], false);
    assert!(view["disabled_reason"].as_str().unwrap().starts_with("every delivery failed since"));
    // What was still to be sent to it is settled as failed, and not sent.
    assert!(pending(endpoint).await.is_empty());
    assert_eq!(d.deliver(&ids[1].to_string()).await.unwrap(), Outcome::NothingToDo);
    assert_eq!(down.received_requests().await.unwrap().len(), 1);
    // Owners and admins get one mail each.
    let mails: Vec<(String, Value)> = sqlx::query_as(
        "SELECT to_address, params FROM emails WHERE workspace_id = $1 AND template = 'webhook_disabled'",
    )
    .bind(t.id)
    .fetch_all(&service_pool().await)
    .await
    .unwrap();
    let mut to: Vec<&str> = mails.iter().map(|(to, _)| to.as_str()).collect();
    to.sort();
    let mut managers = vec![t.owner.email.as_str(), t.admin.email.as_str()];
    managers.sort();
    assert_eq!(to, managers);
    assert_eq!(mails[0].1["url"], format!("{}/", down.uri()));
    // New changes write no deliveries for it; a retry waits for it to be re-enabled.
    app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": "three"}))
        .await
        .expect(StatusCode::CREATED);
    assert!(pending(endpoint).await.is_empty());
    let log = app.get(&t.owner, &format!("{endpoint_path}/deliveries")).await.expect(StatusCode::OK).clone();
    let dropped = log["items"][0]["id"].as_str().unwrap();
    let retry = app.post(&t.owner, &format!("{endpoint_path}/deliveries/{dropped}/retry"), json!(null)).await;
    assert_eq!(retry.problem(StatusCode::CONFLICT), "webhook_endpoint_disabled");
    // A test event still goes (that is how a fixed receiver is checked), then re-enabling works.
    down.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&down).await;
    app.post(&t.owner, &format!("{endpoint_path}/test"), json!(null)).await.expect(StatusCode::ACCEPTED);
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::Succeeded]);
    let test_body: Value = serde_json::from_slice(&down.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(test_body["type"], "webhook.test");
    let enabled = app.call(Method::PATCH, &endpoint_path, Some(&t.owner.token), Some(&json!({"enabled": true}))).await;
    let enabled = enabled.expect(StatusCode::OK);
    assert_eq!(enabled["enabled"], true);
    assert!(enabled["disabled_reason"].is_null() && enabled["failing_since"].is_null());
    app.post(&t.owner, &format!("{endpoint_path}/deliveries/{dropped}/retry"), json!(null))
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::Succeeded]);
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_until_the_overlap_ends() {
    let app = app().await;
    let t = app.tenant("wh-rotate").await;
    let server = receiver(200).await;
    let (endpoint, old_secret) = register(&app, &t, &server.uri(), &["comment.created"], "standard").await;
    let endpoint_path = format!("{}/webhooks/{endpoint}", t.path());
    let rotated = app.post(&t.admin, &format!("{endpoint_path}/rotate-secret"), json!({"overlap_hours": 2})).await;
    let rotated = rotated.expect(StatusCode::OK).clone();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": "During the overlap"}))
        .await
        .expect(StatusCode::CREATED);
    let d = dispatcher(Duration::from_secs(3600)).await;
    deliver_all(&d, endpoint).await;
    let during = server.received_requests().await.unwrap();
    assert_eq!(header(&during[0], "webhook-signature").split(' ').count(), 2);
    for secret in [&old_secret, &new_secret] {
        assert!(verify_with_reference_library(&during, secret)[0].get("error").is_none());
    }
    // No overlap: the old secret stops at once.
    app.post(&t.admin, &format!("{endpoint_path}/rotate-secret"), json!({"overlap_hours": 0}))
        .await
        .expect(StatusCode::OK);
    let newest: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(endpoint)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": "After"}))
        .await
        .expect(StatusCode::CREATED);
    deliver_all(&d, endpoint).await;
    let after = &server.received_requests().await.unwrap()[1..];
    assert_eq!(header(&after[0], "webhook-signature").split(' ').count(), 1);
    assert!(verify_with_reference_library(after, &newest)[0].get("error").is_none());
    assert!(verify_with_reference_library(after, &new_secret)[0].get("error").is_some());
}

#[tokio::test]
async fn secrets_are_shown_once_and_the_api_role_cannot_read_them() {
    let app = app().await;
    let t = app.tenant("wh-secret").await;
    let (endpoint, secret) = register(&app, &t, "https://hooks.example.test/in", &["project.created"], "slack").await;
    let listed = app.get(&t.owner, &format!("{}/webhooks", t.path())).await.expect(StatusCode::OK).clone();
    assert_eq!(listed["items"][0]["id"], endpoint.to_string());
    assert_eq!(listed["items"][0]["format"], "slack");
    assert!(!listed.to_string().contains(&secret) && !listed.to_string().contains("whsec_"));
    let one = app.get(&t.owner, &format!("{}/webhooks/{endpoint}", t.path())).await.expect(StatusCode::OK).clone();
    assert!(one.get("secret").is_none());
    // As the API's database role, inside the workspace as its owner: still no secret.
    let mut tx = shared::db::TenantTx::begin(&api_pool().await, &t.owner.caller()).await.unwrap();
    let read = sqlx::query_scalar::<_, String>("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(endpoint)
        .fetch_one(&mut *tx)
        .await
        .unwrap_err();
    assert!(read.to_string().contains("permission denied"), "{read}");
    // And the audit trail records the endpoint without it.
    let audited: Value = sqlx::query_scalar(
        "SELECT changes FROM audit_log WHERE table_name = 'webhook_endpoints' AND row_id = $1::text",
    )
    .bind(endpoint)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    assert!(audited.get("url").is_some() && audited.get("secret").is_none(), "{audited}");
}

#[tokio::test]
async fn endpoint_urls_and_events_are_checked_and_private_addresses_are_never_reached() {
    let strict = TestApp::new().await;
    let t = strict.tenant("wh-ssrf").await;
    let path = format!("{}/webhooks", t.path());
    // 2048 characters as sent, one more once normalized (the path's `/`): longer than the column
    // holds, so refused as a field error (it was a 500, found by schemathesis).
    let long_host = format!("{}.hooks.example.test", vec!["a".repeat(63); 31].join("."));
    let padding = 2048 - "https://".len() - long_host.len() - 1;
    let long_url = format!("https://{}.{long_host}", "c".repeat(padding));
    assert_eq!(long_url.len(), 2048);
    for url in [
        long_url.as_str(),
        "http://hooks.example.test/in",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        // IPv4-translated, NAT64 (local-use prefix), 6to4 and Teredo forms of private addresses.
        "https://[::ffff:0:7f00:1]/",
        "https://[64:ff9b:1::a9fe:a9fe]/",
        "https://[2002:a00:1::1]/",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://127.0.0.1:9000/",
        "https://user:pass@hooks.example.test/",
        "ftp://hooks.example.test/",
        "not a url",
    ] {
        let refused = strict.post(&t.owner, &path, json!({"url": url, "events": ["project.created"]})).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{url}");
        assert_eq!(refused.body["errors"][0]["field"], "url", "{url}");
    }
    for events in [json!([]), json!(["project.exploded"]), json!(["webhook.test"])] {
        let refused =
            strict.post(&t.owner, &path, json!({"url": "https://hooks.example.test/", "events": events})).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{events}");
    }
    let bad_format = strict
        .post(
            &t.owner,
            &path,
            json!({"url": "https://hooks.example.test/", "events": ["project.created"], "format": "teams"}),
        )
        .await;
    assert_eq!(bad_format.status.as_u16() / 100, 4, "{:?}", bad_format.body);

    // A name is checked where it is resolved, at connect time: `localhost` passes the API's
    // check (it is a name) and is refused by the dispatcher's resolver, before any byte is sent.
    let server = receiver(200).await;
    let port = server.address().port();
    let (endpoint, _) =
        register(&strict, &t, &format!("https://localhost:{port}/"), &["project.created"], "standard").await;
    strict
        .post(&t.owner, &format!("{}/projects", t.path()), json!({"name": "Rebind"}))
        .await
        .expect(StatusCode::CREATED);
    let d = Dispatcher {
        egress: Egress::new(EgressPolicy::default()).unwrap(),
        ..dispatcher(Duration::from_secs(3600)).await
    };
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::RetryScheduled]);
    assert!(server.received_requests().await.unwrap().is_empty());
    let error: String = sqlx::query_scalar("SELECT error FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1")
        .bind(endpoint)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert!(error.contains("is not a public address"), "{error}");
}

#[tokio::test]
async fn nothing_is_sent_for_a_change_that_rolled_back() {
    let app = app().await;
    let t = app.tenant("wh-rollback").await;
    let (endpoint, _) = register(&app, &t, "https://hooks.example.test/in", &["project.created"], "standard").await;
    // The insert's trigger writes its event and delivery inside the transaction...
    let (mut tx, _) = app.state.open_workspace(&t.owner.caller(), t.id).await.unwrap();
    sqlx::query("INSERT INTO projects (id, workspace_id, name) VALUES ($1, $2, 'Never')")
        .bind(Uuid::now_v7())
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1")
        .bind(endpoint)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1);
    // ...and both go with it.
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE workspace_id = $1")
        .bind(t.id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(after, 0);
    // A request that fails (the plan's project limit) writes nothing either.
    subscribe(t.id, "free", "active").await;
    let mut created = 0;
    loop {
        let next = app.post(&t.owner, &format!("{}/projects", t.path()), json!({"name": "Up to the limit"})).await;
        if next.status != StatusCode::CREATED {
            assert_eq!(next.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
            break;
        }
        created += 1;
    }
    assert_eq!(pending(endpoint).await.len(), created);
}

#[tokio::test]
async fn webhooks_are_a_plan_feature_and_a_downgraded_workspace_is_sent_nothing() {
    let app = app().await;
    let free = app.tenant("wh-free").await;
    subscribe(free.id, "free", "active").await;
    let refused = app
        .post(
            &free.owner,
            &format!("{}/webhooks", free.path()),
            json!({"url": "https://h.example.test/", "events": ["project.created"]}),
        )
        .await;
    assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");

    let t = app.tenant("wh-downgrade").await;
    let server = receiver(200).await;
    let (endpoint, _) = register(&app, &t, &server.uri(), &["subscription.updated"], "standard").await;
    subscribe(t.id, "free", "active").await;
    let d = dispatcher(Duration::from_secs(3600)).await;
    assert_eq!(deliver_all(&d, endpoint).await, [Outcome::Dropped("the workspace's plan does not include webhooks")]);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn subscription_and_ai_run_events_come_from_the_workers_changes() {
    let app = app().await;
    let t = app.tenant("wh-workers").await;
    let server = receiver(200).await;
    let (endpoint, _) =
        register(&app, &t, &server.uri(), &["subscription.updated", "ai_run.succeeded", "ai_run.failed"], "standard")
            .await;
    // The billing worker's write (as the fixture writes it) and an AI run that succeeds.
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
    let d = dispatcher(Duration::from_secs(3600)).await;
    deliver_all(&d, endpoint).await;
    let bodies: Vec<Value> =
        server.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert_eq!(bodies[0]["type"], "subscription.updated");
    assert_eq!(bodies[0]["data"]["cancel_at_period_end"], true);
    assert_eq!(bodies[0]["data"]["plan"], "studio");
    assert_eq!(bodies[1]["type"], "ai_run.succeeded");
    assert_eq!(bodies[1]["data"]["tool"], "proposal_draft");
    assert_eq!(bodies[1]["data"]["created_by"], t.member.id.to_string());
}

#[tokio::test]
async fn chat_formats_send_a_message_a_person_reads() {
    let app = app().await;
    let t = app.tenant("wh-chat").await;
    let (slack_server, discord_server) = (receiver(200).await, receiver(204).await);
    let (slack, _) = register(&app, &t, &slack_server.uri(), &["project.created"], "slack").await;
    let (discord, _) = register(&app, &t, &discord_server.uri(), &["project.created"], "discord").await;
    app.post(&t.owner, &format!("{}/projects", t.path()), json!({"name": "<Rebrand> & co"}))
        .await
        .expect(StatusCode::CREATED);
    let d = dispatcher(Duration::from_secs(3600)).await;
    deliver_all(&d, slack).await;
    deliver_all(&d, discord).await;
    let slack_body: Value = serde_json::from_slice(&slack_server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(slack_body, json!({"text": "Project “&lt;Rebrand&gt; &amp; co” was created."}));
    let discord_body: Value =
        serde_json::from_slice(&discord_server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(discord_body["content"], "Project “<Rebrand> & co” was created.");
}

#[tokio::test]
async fn the_sweep_queues_due_deliveries_and_the_batch_handler_sends_them() {
    let app = app().await;
    let t = app.tenant("wh-sweep").await;
    let server = receiver(200).await;
    let (endpoint, _) = register(&app, &t, &server.uri(), &["comment.created"], "standard").await;
    app.post(&t.owner, &format!("{}/comments", t.project_path()), json!({"body": "Queued"}))
        .await
        .expect(StatusCode::CREATED);
    let queue = shared::queue::Queue::connect(create_queue("webhooks-sweep", &[]).await).await;
    let d = Dispatcher { queue: Some(queue.clone()), ..dispatcher(Duration::from_secs(3600)).await };
    assert!(d.sweep().await.unwrap() >= 1);
    // Swept again at once: already on the queue, not queued twice.
    let enqueued: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT enqueued_at FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(endpoint)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert!(enqueued.is_some());
    let mut drained = 0;
    while pending(endpoint).await.len() == 1 && drained < 20 {
        queue.drain_once(1, |event| webhook_dispatcher::handle_batch(&d, event)).await.unwrap();
        drained += 1;
    }
    assert!(pending(endpoint).await.is_empty());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let malformed = shared::runtime::handle_event(&d, json!({"task": "nope"})).await;
    assert!(malformed.is_err());
}

#[tokio::test]
async fn deleting_a_workspace_with_endpoints_writes_no_events() {
    let app = app().await;
    let t = app.tenant("wh-delete").await;
    register(&app, &t, "https://hooks.example.test/in", &["project.deleted", "member.left"], "standard").await;
    app.delete(&t.owner, &t.path()).await.expect(StatusCode::NO_CONTENT);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE workspace_id = $1")
        .bind(t.id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

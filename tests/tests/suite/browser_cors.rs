//! A web front end on another origin calling the local stack, in a real browser (headless
//! Chromium): from an allowed origin its credentialed requests, preflighted or not, go through
//! and it can read the headers the API exposes; from any other origin the browser refuses to
//! send what needs a preflight and to show what it did send. What is tested is what a browser
//! enforces, not only the headers.

use axum::Router;
use axum::response::Html;
use integration_tests::TestApp;
use integration_tests::browser::Browser;
use serde_json::{Value, json};

/// Serves `router` on a free loopback port; answers its origin.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    origin
}

/// A front end's page: nothing but an origin for the scripts to run in.
async fn front_end() -> String {
    serve(Router::new().route("/", axum::routing::get(|| async { Html("<!doctype html><title>front end</title>") })))
        .await
}

/// What the page's `fetch` got: the status and the headers it may read, or the browser's refusal.
const CALL: &str = r#"
    const [url, method, token, body] = args;
    const init = { method, credentials: "include", headers: { authorization: "Bearer " + token } };
    if (body !== null) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
    try {
        const answer = await fetch(url, init);
        return { status: answer.status, ratelimit: answer.headers.get("ratelimit"),
                 request_id: answer.headers.get("x-request-id"), body: await answer.json() };
    } catch (refused) {
        return { refused: String(refused) };
    }
"#;

#[tokio::test]
async fn a_browser_on_an_allowed_origin_may_call_the_api_and_on_any_other_may_not() {
    let app = TestApp::new().await;
    let owner = app.user("browser-owner").await;
    let allowed = front_end().await;
    let other = front_end().await;
    // The local stack's routes behind its CORS layer, allowing the first front end only.
    let origins = local_stack::cors::origins(1, Some(&format!("{allowed}/")));
    let api =
        serve(local_stack::app(app.state.clone(), None, None, None, None).layer(local_stack::cors::layer(&origins)))
            .await;
    let browser = Browser::start().await;
    let call = |method: &str, path: &str, body: Value| json!([format!("{api}{path}"), method, owner.token, body]);

    browser.goto(&format!("{allowed}/")).await;
    // A simple GET with credentials, and a POST with JSON (preflighted).
    let listed = browser.run(CALL, call("GET", "/v1/workspaces", Value::Null)).await;
    assert_eq!(listed["status"], 200, "{listed}");
    assert!(listed["ratelimit"].as_str().is_some_and(|v| v.contains("r=")), "RateLimit is exposed: {listed}");
    assert!(listed["request_id"].as_str().is_some(), "x-request-id is exposed: {listed}");
    let created = browser.run(CALL, call("POST", "/v1/workspaces", json!({"name": "From the browser"}))).await;
    assert_eq!(created["status"], 201, "{created}");
    assert_eq!(created["body"]["name"], "From the browser");

    browser.goto(&format!("{other}/")).await;
    let listed = browser.run(CALL, call("GET", "/v1/workspaces", Value::Null)).await;
    assert!(listed["refused"].as_str().is_some(), "the answer is kept from another origin: {listed}");
    let created = browser.run(CALL, call("POST", "/v1/workspaces", json!({"name": "From elsewhere"}))).await;
    assert!(created["refused"].as_str().is_some(), "{created}");
    browser.close().await;

    // The refused POST was never sent (its preflight failed): one workspace, the allowed one's.
    let workspaces = app.get(&owner, "/v1/workspaces").await;
    let names: Vec<&str> =
        workspaces.body["items"].as_array().unwrap().iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, ["From the browser"]);
}

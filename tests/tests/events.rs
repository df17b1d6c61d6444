//! Every file in `events/` is a valid API Gateway HTTP API (v2) event that the function it names
//! answers with success: parsed by lambda_http exactly as the Lambda runtime parses it, and
//! served by that function's router against the seeded demo workspace.

use axum::body::Body;
use integration_tests::{TestApp, base_settings};

#[tokio::test]
async fn every_sample_event_is_served_by_its_function() {
    let mut settings = base_settings();
    settings.push(("AUTH_HS256_SECRET".into(), local_stack::DEV_HS256_SECRET.into()));
    let app = TestApp::with_settings(settings).await;
    local_stack::demo::seed(&app.state.pool, &integration_tests::service_pool().await)
        .await
        .expect("seed the demo workspace");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut served = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("workspaces-") || name.starts_with("projects-")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name} is not an API Gateway event: {e}"));
        let request = request.map(|body| Body::from(body.to_vec()));
        let response = app.send(request).await;
        assert!(response.status.is_success(), "{name}: {} {}", response.status, response.body);
        let expected_id = format!("evt-{}", name.trim_end_matches(".json"));
        assert_eq!(
            response.headers.get("x-request-id").unwrap(),
            expected_id.as_str(),
            "{name}: API Gateway's request id is used"
        );
        served += 1;
    }
    assert!(served >= 10, "only {served} events found");
}

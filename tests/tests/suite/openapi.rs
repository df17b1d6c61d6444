//! The OpenAPI document: generated from the handlers, committed as `openapi.json`, served by each
//! HTTP function for its own routes and by the local stack for all of them, with every route in
//! it and every problem code the source answers.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use integration_tests::{TestApp, admin_router, base_settings, local_aws, respond};
use serde_json::Value;
use shared::openapi::PROBLEMS;

const REGENERATE: &str = "cargo run -q -p local-stack -- openapi > openapi.json";

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `METHOD /path` of every operation in a document.
fn operations(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                found.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    found
}

async fn webhook_app() -> Router {
    local_aws().await;
    integration_tests::stripe_webhook("whsec_openapi_test", "http://127.0.0.1:1/unused", &[]).await
}

async fn document_of(router: &Router) -> Value {
    let answer = respond(router.clone(), Request::get(shared::openapi::PATH).body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/json");
    answer.body
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = shared::openapi::to_pretty_json(&local_stack::openapi_document());
    let committed = repo_file("openapi.json");
    assert!(
        committed == generated,
        "openapi.json differs from the routes' document: the API changed; regenerate it with `{REGENERATE}` \
         and review the difference"
    );
    let doc: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn operations_are_named_tagged_and_described_once() {
    let doc = serde_json::to_value(local_stack::openapi_document()).unwrap();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(operation["tags"].as_array().is_some_and(|t| t.len() == 1), "{id}: one tag");
            for (status, response) in operation["responses"].as_object().unwrap() {
                let described =
                    response.get("$ref").is_some() || response["description"].as_str().is_some_and(|d| !d.is_empty());
                assert!(described, "{id} {status}: a response needs a description");
            }
            // Links name an operation of the document and give each of its path parameters.
            for (status, response) in operation["responses"].as_object().unwrap() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    let target_path = doc["paths"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .find(|(_, item)| item.as_object().unwrap().values().any(|op| op["operationId"] == target))
                        .map(|(path, _)| path.clone())
                        .unwrap_or_else(|| panic!("{id} {status}: link {name} to an unknown operation"));
                    for param in target_path.split('{').skip(1).map(|p| p.split('}').next().unwrap()) {
                        assert!(link["parameters"][param].is_string(), "{id} {status}: link {name} lacks {param}");
                    }
                }
            }
            // Path parameters are all declared.
            for name in path.split('{').skip(1).map(|p| p.split('}').next().unwrap()) {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{id}: path parameter {name} is not declared");
            }
        }
    }
}

/// Each function serves the document of its own routes; together they are the whole API's, and
/// every operation in them reaches a handler (no `route_not_found`, no `method_not_allowed`).
#[tokio::test]
async fn every_function_serves_its_own_routes_and_each_documented_route_exists() {
    let app = TestApp::new().await;
    let mut functions: Vec<(&str, Router)> = Vec::new();
    for function in ["workspaces", "projects", "checkout", "portal", "ai-runs"] {
        functions.push((function, app.router_of(function)));
    }
    functions.push(("admin", admin_router(base_settings()).await));
    functions.push(("stripe-webhook", webhook_app().await));

    let whole = serde_json::to_value(local_stack::openapi_document()).unwrap();
    let mut union = BTreeSet::new();
    for (function, router) in &functions {
        let doc = document_of(router).await;
        assert_eq!(doc["info"]["title"], format!("SaaS API: the {function} function"));
        for operation in operations(&doc) {
            let (method, path) = operation.split_once(' ').unwrap();
            let concrete = path
                .split('/')
                .map(|part| if part.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { part.to_owned() })
                .collect::<Vec<_>>()
                .join("/");
            let request = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(if concrete.is_empty() { "/".to_owned() } else { concrete })
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let answer = respond(router.clone(), request).await;
            let code = answer.body["code"].as_str().unwrap_or_default();
            assert!(
                code != "route_not_found" && code != "method_not_allowed",
                "{function}: {operation} is documented but not routed ({} {code})",
                answer.status
            );
        }
        // A schema of the same name means the same thing in the whole API's document.
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            assert_eq!(
                &whole["components"]["schemas"][name], schema,
                "{function}: schema {name} differs (two types, one name)"
            );
        }
        union.extend(operations(&doc));
    }
    assert_eq!(union, operations(&whole), "the functions' documents together are the whole API's");
}

/// Every file under `dirs`, its subfolders included, with its text.
fn source_files(mut dirs: Vec<std::path::PathBuf>) -> Vec<(std::path::PathBuf, String)> {
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path, text));
            }
        }
    }
    files
}

/// Routes are declared only through `routes!` with a `#[utoipa::path]`, so a route cannot exist
/// without being in the document; this fails if a function routes around it.
#[test]
fn no_function_routes_outside_the_document() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut offenders = Vec::new();
    let functions = std::fs::read_dir(&root).unwrap().map(|function| function.unwrap().path().join("src"));
    for (path, text) in source_files(functions.collect()) {
        if text.contains(".route(") || text.contains(".route_service(") || text.contains(".nest(") {
            offenders.push(path.display().to_string());
        }
    }
    assert!(offenders.is_empty(), "routes outside routes!(): {offenders:?}");
}

/// Every problem `code` the source can answer is in the document (and in docs/api.md's table).
#[test]
fn every_problem_code_is_documented() {
    let documented: BTreeSet<&str> = PROBLEMS.iter().map(|(_, code, _)| *code).collect();
    let mut answered = BTreeSet::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("shared/src")];
    for function in std::fs::read_dir(root.join("functions")).unwrap() {
        dirs.push(function.unwrap().path().join("src"));
    }
    for (_, text) in source_files(dirs) {
        // `code: "..."`, and the helpers that take the code first: `rejected("...", `, `gone("...", `.
        for marker in ["code: \"", "rejected(\"", "gone(\""] {
            for chunk in text.split(marker).skip(1) {
                let code = chunk.split('"').next().unwrap();
                if code.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !code.is_empty() {
                    answered.insert(code.to_owned());
                }
            }
        }
    }
    // Fixed codes of ApiError's own variants.
    for code in ["unauthenticated", "forbidden", "not_found", "validation_failed", "rate_limited", "internal_error"] {
        answered.insert(code.to_owned());
    }
    // A WebSocket frame's error (the realtime function), not an HTTP response.
    answered.remove("invalid_message");
    let missing: Vec<_> = answered.iter().filter(|c| !documented.contains(c.as_str())).collect();
    assert!(missing.is_empty(), "codes answered but not in shared::openapi::PROBLEMS: {missing:?}");

    let api = repo_file("docs/api.md");
    let errors = api.split("## Errors").nth(1).unwrap().split("\n## ").next().unwrap();
    let unlisted: Vec<_> = documented.iter().filter(|c| !errors.contains(&format!("`{c}`"))).collect();
    assert!(unlisted.is_empty(), "codes missing from docs/api.md's error table: {unlisted:?}");
}

/// The local stack answers `GET /v1/openapi.json` without a token.
#[tokio::test]
async fn the_local_stack_serves_its_document() {
    let app = TestApp::new().await;
    let local = local_stack::app(app.state.clone(), None, None, None, None);
    let doc = document_of(&local).await;
    assert_eq!(doc["info"]["title"], "SaaS API");
    let served = operations(&doc);
    assert!(served.contains("GET /v1/workspaces/{workspace_id}/projects"));
    assert!(served.contains("GET /v1/health") && served.contains("GET /v1/openapi.json"));
    // Billing, AI, admin and the webhook are documented only when the stack serves them.
    assert!(!served.iter().any(|op| op.contains("/billing/checkout") || op.contains("/v1/admin/")));
    assert!(served.is_subset(&operations(&serde_json::to_value(local_stack::openapi_document()).unwrap())));
}

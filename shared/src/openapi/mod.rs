//! The OpenAPI 3.1 document, generated from the code: each handler carries a `#[utoipa::path]`
//! attribute and is routed with `utoipa-axum`'s `routes!`, so a route and its documentation are
//! one declaration. This module adds what every operation shares (problem+json errors with
//! their codes, the two security schemes) and serves the document at [`PATH`].

mod links;
mod problems;
pub mod schemas;

use axum::routing::get;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, Info, OpenApi, Ref, RefOr};

pub use problems::PROBLEMS;
pub use utoipa_axum::router::OpenApiRouter;

/// Where every HTTP function (and the local stack) serves its document.
pub const PATH: &str = "/v1/openapi.json";

/// The security scheme names operations refer to.
pub const BEARER: &str = "bearer";
pub const API_KEY: &str = "api_key";

/// The workspace-scoped paths, where an API key may stand in for a member.
const WORKSPACE_SCOPE: &str = "/v1/workspaces/{workspace_id}";

const DESCRIPTION: &str = "The multi-tenant SaaS API: workspaces, their members, clients and \
client contacts, projects with milestones, deliverables and comments, AI tool runs, billing \
with Stripe, API keys, invitations, outgoing webhooks, the audit log, exports and the platform \
admin surface.\n\nErrors are RFC 9457 `application/problem+json` with a stable `code`. Lists \
are paged by cursor (`?limit=1..100&cursor=<next_cursor>`), newest first. Unknown body fields \
are rejected.";

/// The document's title for a function (the local stack's `local` documents the whole API).
pub fn title(function: &str) -> String {
    if function == "local" { "SaaS API".to_owned() } else { format!("SaaS API: the {function} function") }
}

/// The document of the routes given, completed with what every operation shares.
pub fn document(paths: OpenApi, title: &str) -> OpenApi {
    let mut doc = paths;
    doc.info = Info::builder().title(title).version(env!("CARGO_PKG_VERSION")).description(Some(DESCRIPTION)).build();
    let components = doc.components.get_or_insert_with(Components::new);
    components.schemas.insert("Problem".into(), problems::problem_schema());
    components.schemas.insert("FieldError".into(), problems::field_error_schema());
    for (name, response) in problems::responses() {
        components.responses.insert(name, RefOr::T(response));
    }
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An ID or access token of the user pool (Cognito, or any configured OIDC issuer); \
                     API keys (`sak_...`) are also accepted as a bearer token.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        API_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Api-Key",
            "A workspace API key (`sak_...`); it acts as a member of the role it was given, in its own workspace only.",
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for operation in operations(item) {
            complete_operation(path, operation);
        }
    }
    links::add(&mut doc);
    doc
}

/// The document as JSON, as committed in `openapi.json` (pretty, with a final newline).
pub fn to_pretty_json(doc: &OpenApi) -> String {
    let mut text = serde_json::to_string_pretty(doc).expect("an OpenAPI document serializes");
    text.push('\n');
    text
}

/// `GET /v1/openapi.json` answering the document of `paths`; no token, like the health check.
/// Completed and serialized on the first request, not at start-up: a cold start pays only for
/// collecting the routes' paths, and most execution environments are never asked.
pub fn serve<S: Clone + Send + Sync + 'static>(paths: OpenApi, title: String) -> axum::Router<S> {
    let lazy = std::sync::Arc::new(LazyDocument { paths, title, body: std::sync::OnceLock::new() });
    axum::Router::new().route(
        PATH,
        get(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], lazy.body()) }),
    )
}

struct LazyDocument {
    paths: OpenApi,
    title: String,
    body: std::sync::OnceLock<axum::body::Bytes>,
}

impl LazyDocument {
    fn body(&self) -> axum::body::Bytes {
        self.body
            .get_or_init(|| {
                let doc = document(self.paths.clone(), &self.title);
                axum::body::Bytes::from(serde_json::to_vec(&doc).expect("an OpenAPI document serializes"))
            })
            .clone()
    }
}

/// Documents the document's own route.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi_document", tag = "meta",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document.", body = Object)))]
#[allow(dead_code)]
fn openapi_document() {}

#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_document))]
struct OwnRoute;

/// The document's own route, to merge with a function's routes before `document`.
pub fn own_route() -> OpenApi {
    <OwnRoute as utoipa::OpenApi>::openapi()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// Security by default (a bearer token; in a workspace also an API key) unless the handler said
/// `security(())`; and every error status the operation can answer, as a reference to the shared
/// problem+json response of that status.
fn complete_operation(path: &str, operation: &mut Operation) {
    let workspace_scoped = path.starts_with(WORKSPACE_SCOPE);
    let public = match &operation.security {
        // `security(())` in the attribute: no token at all.
        Some(requirements) => requirements.iter().all(|r| *r == SecurityRequirement::default()),
        None => false,
    };
    operation.security = Some(if public {
        Vec::new()
    } else if workspace_scoped {
        vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(API_KEY, Vec::<String>::new()),
        ]
    } else {
        vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]
    });

    let params = operation.parameters.as_deref().unwrap_or_default();
    let has_path_params = path.contains('{');
    let has_query =
        params.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query));
    let has_body = operation.request_body.is_some();
    // A header the handler validates (an `Idempotency-Key`) is refused as a field error.
    let has_header =
        params.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Header));

    let mut statuses: Vec<u16> = vec![500, 503];
    if !public {
        statuses.extend([401, 403, 429]);
    }
    if workspace_scoped {
        // An API key of a workspace whose plan lost API access is refused with 402.
        statuses.push(402);
    }
    if has_path_params {
        statuses.extend([400, 404]);
    }
    if has_query {
        statuses.extend([400, 422]);
    }
    if has_body {
        statuses.extend([400, 413, 415, 422]);
    }
    if has_header {
        statuses.push(422);
    }
    // The statuses the handler declared itself (without content) take the shared response too.
    let declared: Vec<u16> = operation
        .responses
        .responses
        .keys()
        .filter_map(|status| status.parse::<u16>().ok())
        .filter(|status| *status >= 400)
        .collect();
    statuses.extend(declared);
    // OpenAPI requires a description on every response; a handler's own may be left out.
    for (status, response) in operation.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            let reason = status.parse::<u16>().ok().and_then(|s| axum::http::StatusCode::from_u16(s).ok());
            response.description = reason.and_then(|s| s.canonical_reason()).unwrap_or("Success").to_owned();
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let name = problems::response_name(status);
        operation.responses.responses.insert(status.to_string(), RefOr::Ref(Ref::from_response_name(name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_with_a_code_has_a_shared_response() {
        let responses = problems::responses();
        for (status, code, _) in PROBLEMS {
            let name = problems::response_name(*status);
            assert!(responses.iter().any(|(n, _)| n == name), "{code}: no response for {status}");
        }
    }
}

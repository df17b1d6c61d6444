//! Every problem `code` the API answers, by status: the source of the document's `Problem`
//! schema (its `code` enumeration) and of one shared response per error status.

use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};

/// `(status, code, when)`: every code a route can answer. docs/api.md's error table says the same
/// for people; tests/tests/suite/openapi.rs checks that each `code` the source answers is here.
pub const PROBLEMS: &[(u16, &str, &str)] = &[
    (400, "malformed_json", "the body is not JSON (or has trailing data)"),
    (400, "invalid_path", "a malformed id in the path"),
    (400, "invalid_query", "a malformed query parameter"),
    (400, "invalid_cursor", "a cursor this API did not return"),
    (400, "unreadable_body", "the body could not be read"),
    (400, "invalid_text", "text with a character that cannot be stored (NUL) in a query parameter"),
    (400, "invalid_signature", "webhook: the `Stripe-Signature` does not verify"),
    (400, "invalid_event", "webhook: the verified body is not an event"),
    (
        401,
        "unauthenticated",
        "missing, malformed, forged, expired or not-yet-valid token, or a wrong issuer or audience",
    ),
    (401, "api_key_malformed", "the API key is not one this API issues"),
    (401, "api_key_unknown", "no such API key"),
    (401, "api_key_revoked", "the API key was revoked"),
    (401, "api_key_expired", "the API key has expired"),
    (401, "api_key_creator_lacks_role", "the key's creator left the workspace or no longer holds the key's role"),
    (402, "plan_limit_reached", "the plan's limit is reached; upgrading lifts it"),
    (402, "feature_not_in_plan", "the plan does not include the feature"),
    (403, "forbidden", "your role does not allow this"),
    (403, "workspace_suspended", "the platform's operators suspended the workspace: it can be read, not changed"),
    (403, "not_an_operator", "the admin API is for platform operators"),
    (403, "invitation_email_mismatch", "the invitation is for another address"),
    (403, "api_key_cannot_create_keys", "API keys are issued by people, not by other keys"),
    (404, "not_found", "no such resource, or you cannot see it"),
    (404, "route_not_found", "no such route"),
    (405, "method_not_allowed", "the route exists, not with this method"),
    (409, "already_member", "the user is already a member"),
    (409, "already_contact", "the user is already a contact of the client"),
    (409, "last_owner", "the change would leave a workspace without an owner"),
    (409, "invitation_used", "the invitation was accepted by someone else"),
    (409, "invitation_pending", "that address already has a pending invitation here"),
    (409, "export_in_progress", "an export of the workspace is being written"),
    (409, "webhook_delivery_succeeded", "a delivery that succeeded is not retried"),
    (409, "webhook_endpoint_disabled", "re-enable the endpoint before retrying"),
    (409, "subscription_exists", "the workspace's subscription is alive: use the portal"),
    (409, "no_billing_account", "the workspace never checked out"),
    (409, "no_subscription", "the workspace has no live subscription"),
    (409, "already_on_plan", "the workspace is on that plan"),
    (409, "preview_stale", "what the plan change's preview was computed from changed, or it expired: preview again"),
    (409, "downgrade_blocked", "the workspace uses more than the smaller plan allows; `errors` lists what to remove"),
    (409, "not_trialing", "the subscription is not in a trial"),
    (409, "upload_not_found", "nothing was uploaded for the file yet: post it through its form, then confirm"),
    (409, "upload_mismatch", "the upload's size or content type is not what was declared; the file was discarded"),
    (409, "file_not_ready", "the file's upload is not confirmed yet"),
    (409, "run_in_progress", "a run with this `Idempotency-Key` has not finished yet"),
    (410, "invitation_expired", "the invitation expired; ask for a new one"),
    (410, "upload_expired", "the upload form expired before the file was uploaded; the file was discarded"),
    (410, "invitation_revoked", "the invitation was revoked; ask for a new one"),
    (413, "payload_too_large", "the body is larger than this API accepts"),
    (415, "unsupported_media_type", "the body is not sent as JSON"),
    (422, "validation_failed", "invalid fields; `errors` lists every one"),
    (429, "rate_limited", "a rate limit is spent; `Retry-After` says when to retry; nothing was written"),
    (429, "quota_exceeded", "the month's AI runs are used up"),
    (
        429,
        "spending_cap_reached",
        "AI runs past the quota would pass the workspace's spending cap: raise it, or wait for the quota to renew",
    ),
    (500, "internal_error", "a bug or an unexpected failure (logged with its cause)"),
    (502, "billing_provider_error", "Stripe refused the request"),
    (502, "billing_not_configured", "no active Stripe price has the plan's lookup key"),
    (502, "provider_error", "the AI provider failed or answered nonsense; nothing billed"),
    (503, "service_unavailable", "the database is busy or unreachable, or a concurrent change conflicted: retry"),
    (504, "upstream_timeout", "the AI provider did not answer in time; nothing billed"),
];

const STATUSES: &[(u16, &str, &str)] = &[
    (400, "BadRequest", "The request is malformed."),
    (401, "Unauthorized", "No valid token or API key."),
    (402, "PaymentRequired", "The workspace's plan does not allow this."),
    (403, "Forbidden", "Not allowed for this caller."),
    (404, "NotFound", "No such resource, or the caller cannot see it."),
    (405, "MethodNotAllowed", "The route does not support that method."),
    (409, "Conflict", "The request conflicts with the current state."),
    (410, "Gone", "It existed and is no longer usable."),
    (413, "PayloadTooLarge", "The body is too large."),
    (415, "UnsupportedMediaType", "The body is not JSON."),
    (422, "UnprocessableEntity", "Invalid fields; `errors` lists every one."),
    (429, "TooManyRequests", "A rate limit or quota is spent."),
    (500, "InternalServerError", "An unexpected failure, logged with its cause."),
    (502, "BadGateway", "An outside service (Stripe, the AI provider) failed."),
    (503, "ServiceUnavailable", "Temporarily unavailable; retry."),
    (504, "GatewayTimeout", "An outside service did not answer in time."),
];

/// The component name of the shared response for an error status.
pub fn response_name(status: u16) -> &'static str {
    STATUSES
        .iter()
        .find(|(s, _, _)| *s == status)
        .map(|(_, name, _)| *name)
        .unwrap_or_else(|| panic!("no shared response for status {status}"))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

pub fn problem_schema() -> RefOr<Schema> {
    let codes = PROBLEMS.iter().map(|(_, code, _)| *code);
    ObjectBuilder::new()
        .description(Some("RFC 9457 problem details. `code` is stable; `detail` is for people."))
        .property("type", string().description(Some("`/problems/<code>`")))
        .required("type")
        .property("title", string().description(Some("The status's reason phrase.")))
        .required("title")
        .property("status", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(400)).maximum(Some(599)))
        .required("status")
        .property("detail", string())
        .required("detail")
        .property("code", string().enum_values(Some(codes)))
        .required("code")
        .property("request_id", string().description(Some("The request's id, as in `x-request-id` and the logs.")))
        .property(
            "errors",
            ArrayBuilder::new().items(Ref::from_schema_name("FieldError")).description(Some(
                "Every invalid field (`validation_failed`), or what to change first (`downgrade_blocked`).",
            )),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

pub fn field_error_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("field", string())
        .required("field")
        .property("message", string())
        .required("message")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// One response per error status, each listing the codes it can carry.
pub fn responses() -> Vec<(String, Response)> {
    STATUSES
        .iter()
        .map(|(status, name, summary)| {
            let codes: Vec<String> = PROBLEMS
                .iter()
                .filter(|(s, _, _)| s == status)
                .map(|(_, code, when)| format!("- `{code}`: {when}"))
                .collect();
            let description = format!("{summary}\n\n{}", codes.join("\n"));
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
            let mut response =
                ResponseBuilder::new().description(description).content(crate::error::PROBLEM_JSON, content);
            if *status == 429 {
                response = response.header(
                    "Retry-After",
                    utoipa::openapi::HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                        .description(Some("Seconds until the limit allows the request."))
                        .build(),
                );
            }
            ((*name).to_owned(), response.build())
        })
        .collect()
}

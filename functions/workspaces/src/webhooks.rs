//! A workspace's outgoing webhook endpoints (owners and admins; a plan feature): register,
//! change, rotate the signing secret, send a test event, read the delivery log and retry a
//! delivery. Events themselves are written by the database, in the transaction of the change
//! that caused them; the `webhook-dispatcher` function sends them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::access::require_feature;
use shared::auth::Caller;
use shared::db::TenantTx;
use shared::error::FieldError;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageRequest};
use shared::openapi::OpenApiRouter;
use shared::plans::Feature;
use shared::validate::Validator;
use shared::webhooks::catalog::{self, Format};
use shared::webhooks::signature::SigningSecret;
use shared::{ApiError, AppState};
use time::{Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

/// How long the previous secret is still signed with after a rotation, unless asked otherwise.
const DEFAULT_OVERLAP_HOURS: u32 = 24;
const MAX_OVERLAP_HOURS: u32 = 168;
const MAX_DESCRIPTION: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(deliveries))
        .routes(routes!(delivery))
        .routes(routes!(retry))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    #[schema(schema_with = shared::validate::HttpUrl::schema)]
    url: String,
    #[schema(schema_with = shared::webhooks::catalog::events_schema)]
    events: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    description: String,
    #[serde(default = "standard")]
    format: Format,
}

fn standard() -> Format {
    Format::Standard
}

/// A partial change; `enabled: true` re-enables an endpoint the dispatcher disabled.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointChange {
    #[schema(schema_with = shared::validate::HttpUrl::optional_schema)]
    url: Option<String>,
    #[schema(schema_with = shared::webhooks::catalog::events_schema)]
    events: Option<Vec<String>>,
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    description: Option<String>,
    format: Option<Format>,
    enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// Hours the previous secret is still signed with (default 24).
    #[schema(maximum = 168)]
    overlap_hours: Option<u32>,
}

#[derive(Deserialize)]
struct EndpointPath {
    workspace_id: Uuid,
    endpoint_id: Uuid,
}

#[derive(Deserialize)]
struct DeliveryPath {
    workspace_id: Uuid,
    endpoint_id: Uuid,
    delivery_id: Uuid,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<DeliveryStatus>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Serialize, ToSchema)]
struct EndpointView {
    id: Uuid,
    url: String,
    description: String,
    events: Vec<String>,
    format: Format,
    enabled: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    disabled_at: Option<OffsetDateTime>,
    disabled_reason: Option<String>,
    /// Since when every attempt has failed (the endpoint is disabled after a while of this).
    #[serde(with = "time::serde::rfc3339::option")]
    failing_since: Option<OffsetDateTime>,
    /// Until when the secret before the last rotation is still signed with.
    #[serde(with = "time::serde::rfc3339::option")]
    previous_secret_expires_at: Option<OffsetDateTime>,
    created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// A checked `query_as!` of `EndpointView`s: the statement's text before and after its columns.
macro_rules! endpoint_query {
    ($head:tt, $tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            EndpointView,
            $head
                + r#" id, url, description, events, format AS "format: Format", disabled_at IS NULL AS "enabled!",
                      disabled_at, disabled_reason, failing_since, previous_secret_expires_at, created_by, created_at,
                      updated_at "#
                + $tail,
            $($arg),*
        )
    };
}

#[derive(Serialize, ToSchema)]
struct WithSecret {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The signing secret (`whsec_...`). Shown this once; store it now.
    secret: String,
}

#[derive(Serialize, ToSchema)]
struct DeliveryView {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: DeliveryStatus,
    attempts: i32,
    max_attempts: i32,
    /// When the next attempt is due (pending deliveries).
    #[serde(with = "time::serde::rfc3339::option")]
    next_attempt_at: Option<OffsetDateTime>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
}

/// A checked `query_as!` of `DeliveryView`s (`d` the delivery, `e` its event).
macro_rules! delivery_query {
    ($head:tt, $tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            DeliveryView,
            $head
                + r#" d.id, d.event_id, e.type AS event_type, d.status AS "status: DeliveryStatus", d.attempts,
                      d.max_attempts, CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                      d.last_status_code, d.last_error, d.created_at, d.finished_at "#
                + $tail,
            $($arg),*
        )
    };
}

#[derive(Serialize, ToSchema)]
struct AttemptView {
    #[serde(with = "time::serde::rfc3339")]
    attempted_at: OffsetDateTime,
    status_code: Option<i32>,
    latency_ms: i32,
    /// The first 4 KiB of the receiver's answer.
    response_body: String,
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DeliveryDetail {
    #[serde(flatten)]
    delivery: DeliveryView,
    /// The body sent (for the `standard` format; chat formats send a message made from it).
    payload: Value,
    attempts_log: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
struct Queued {
    delivery_id: Uuid,
    event_id: Uuid,
}

/// Checks the fields an endpoint has; `None` fields were not given.
fn check_fields(
    v: &mut Validator,
    allow_loopback_http: bool,
    url: Option<&str>,
    events: Option<&[String]>,
    description: Option<&str>,
) -> (Option<Option<String>>, Option<Vec<String>>) {
    let url = url.map(|raw| {
        v.check(
            catalog::endpoint_url(raw, allow_loopback_http)
                .map(String::from)
                .map_err(|e| FieldError::new("url", e.to_string())),
        )
    });
    let events = events.map(|events| {
        let mut unique: Vec<String> = Vec::with_capacity(events.len());
        for event in events {
            if !unique.contains(event) {
                unique.push(event.clone());
            }
        }
        let unknown = catalog::unknown_events(&unique);
        if unique.is_empty() {
            v.refuse("events", "must name at least one event type");
        } else if !unknown.is_empty() {
            v.refuse(
                "events",
                format!("unknown event types: {}; known: {}", unknown.join(", "), catalog::EVENT_TYPES.join(", ")),
            );
        }
        unique
    });
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        v.refuse("description", format!("must be at most {MAX_DESCRIPTION} characters"));
    }
    (url, events)
}

async fn open(state: &AppState, caller: &Caller, workspace_id: Uuid) -> Result<TenantTx, ApiError> {
    let (mut tx, access) = state.open_workspace(caller, workspace_id).await?;
    access.require_manager()?;
    require_feature(&mut tx, workspace_id, Feature::Webhooks).await?;
    Ok(tx)
}

async fn find(tx: &mut TenantTx, path: &EndpointPath) -> Result<EndpointView, ApiError> {
    endpoint_query!(
        "SELECT",
        "FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2",
        path.workspace_id,
        path.endpoint_id,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound("webhook endpoint"))
}

/// Registers an endpoint (owners and admins; Pro and Studio); its signing secret is shown this once.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhooks", operation_id = "webhooks_create", tag = "webhooks", params(("workspace_id" = Uuid, Path)), request_body = NewEndpoint, responses((status = 201, body = WithSecret)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<NewEndpoint>,
) -> Result<(StatusCode, Json<WithSecret>), ApiError> {
    let mut v = Validator::default();
    let allow_loopback = state.config.webhooks_allow_loopback_http;
    let (url, events) =
        check_fields(&mut v, allow_loopback, Some(&input.url), Some(&input.events), Some(&input.description));
    // A given URL that did not parse is `Some(None)`, and an error `finish` answers.
    let (url, events) = v.finish(|| Some((url.map_or(Some(None), |u| u.map(Some))?, events)))?;
    let mut tx = open(&state, &caller, workspace_id).await?;
    let secret = SigningSecret::generate().map_err(ApiError::internal)?.to_text();
    let endpoint = endpoint_query!(
        "INSERT INTO webhook_endpoints (id, workspace_id, url, description, events, format, secret, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING",
        "",
        Uuid::now_v7(),
        workspace_id,
        url,
        input.description.trim(),
        events.as_deref(),
        input.format as Format,
        &secret,
        caller.user_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(WithSecret { endpoint, secret })))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhooks", operation_id = "webhooks_list", tag = "webhooks", params(("workspace_id" = Uuid, Path), shared::http::pagination::PageQuery), responses((status = 200, body = Page<EndpointView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<shared::http::pagination::PageQuery>,
) -> Result<Json<Page<EndpointView>>, ApiError> {
    let page = query.page()?;
    let mut tx = open(&state, &caller, workspace_id).await?;
    let rows = endpoint_query!(
        "SELECT",
        "FROM webhook_endpoints
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        workspace_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |e| e.id)))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}", operation_id = "webhooks_read", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path)), responses((status = 200, body = EndpointView)))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<EndpointPath>,
) -> Result<Json<EndpointView>, ApiError> {
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    let endpoint = find(&mut tx, &path).await?;
    tx.commit().await?;
    Ok(Json(endpoint))
}

/// Changes the fields given; `enabled: true` re-enables a disabled endpoint.
#[utoipa::path(patch, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}", operation_id = "webhooks_update", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path)), request_body = EndpointChange, responses((status = 200, body = EndpointView)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<EndpointPath>,
    extract::Json(change): extract::Json<EndpointChange>,
) -> Result<Json<EndpointView>, ApiError> {
    let mut v = Validator::default();
    let allow_loopback = state.config.webhooks_allow_loopback_http;
    let (url, events) = check_fields(
        &mut v,
        allow_loopback,
        change.url.as_deref(),
        change.events.as_deref(),
        change.description.as_deref(),
    );
    let (url, events) = v.finish(|| Some((url.map_or(Some(None), |u| u.map(Some))?, events)))?;
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    // Re-enabling starts the failure clock afresh; disabling by hand is said so.
    let endpoint = endpoint_query!(
        "UPDATE webhook_endpoints SET
            url = coalesce($3, url),
            events = coalesce($4, events),
            description = coalesce($5, description),
            format = coalesce($6, format),
            disabled_at = CASE WHEN $7::boolean IS NULL THEN disabled_at WHEN $7 THEN NULL ELSE coalesce(disabled_at, now()) END,
            disabled_reason = CASE WHEN $7 IS NULL THEN disabled_reason WHEN $7 THEN NULL
                                   ELSE coalesce(disabled_reason, 'disabled by a workspace manager') END,
            failing_since = CASE WHEN $7 THEN NULL ELSE failing_since END,
            updated_at = now()
         WHERE workspace_id = $1 AND id = $2
         RETURNING",
        "",
        path.workspace_id,
        path.endpoint_id,
        url,
        events.as_deref(),
        change.description.as_deref().map(str::trim),
        change.format as Option<Format>,
        change.enabled,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("webhook endpoint"))?;
    tx.commit().await?;
    Ok(Json(endpoint))
}

/// Deletes the endpoint with its deliveries and their log.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}", operation_id = "webhooks_delete", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path)), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<EndpointPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    let deleted = sqlx::query!(
        "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2",
        path.workspace_id,
        path.endpoint_id,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, answered once; deliveries carry signatures by both secrets until the overlap
/// ends, so receivers can switch without missing an event. Rotating again during an overlap
/// ends the older one (only the secret being replaced stays valid).
/// A new signing secret; the previous one is still signed with for `overlap_hours` (default 24).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/rotate-secret", operation_id = "webhooks_rotate_secret", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path)), request_body = Rotation, responses((status = 200, body = WithSecret)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<EndpointPath>,
    extract::Json(rotation): extract::Json<Rotation>,
) -> Result<Json<WithSecret>, ApiError> {
    let overlap = rotation.overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS);
    if overlap > MAX_OVERLAP_HOURS {
        return Err(ApiError::validation("overlap_hours", format!("must be between 0 and {MAX_OVERLAP_HOURS}")));
    }
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    let secret = SigningSecret::generate().map_err(ApiError::internal)?.to_text();
    let expires = OffsetDateTime::now_utc() + Duration::hours(i64::from(overlap));
    // The database keeps the replaced secret for the overlap (the API role cannot read it).
    let endpoint = endpoint_query!(
        "UPDATE webhook_endpoints SET secret = $3, previous_secret_expires_at = $4, updated_at = now()
         WHERE workspace_id = $1 AND id = $2
         RETURNING",
        "",
        path.workspace_id,
        path.endpoint_id,
        &secret,
        expires,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("webhook endpoint"))?;
    tx.commit().await?;
    Ok(Json(WithSecret { endpoint, secret }))
}

/// Queues a `webhook.test` event to this endpoint alone (whatever it subscribes to, disabled or
/// not: testing is how a fixed receiver is checked before re-enabling it).
/// Sends a `webhook.test` event to the endpoint.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/test", operation_id = "webhooks_test", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path)), responses((status = 202, body = Queued)))]
async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<EndpointPath>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    let endpoint = find(&mut tx, &path).await?;
    let (event_id, delivery_id) = (Uuid::now_v7(), Uuid::now_v7());
    let payload = serde_json::json!({
        "type": catalog::TEST_EVENT,
        "timestamp": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).map_err(ApiError::internal)?,
        "data": {"endpoint_id": endpoint.id, "url": endpoint.url, "message": "A test event: your endpoint is receiving webhooks."},
    });
    sqlx::query!(
        "INSERT INTO webhook_events (id, workspace_id, type, payload) VALUES ($1, $2, $3, $4)",
        event_id,
        path.workspace_id,
        catalog::TEST_EVENT,
        &payload,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id, max_attempts) VALUES ($1, $2, $3, $4, 1)",
        delivery_id,
        path.workspace_id,
        path.endpoint_id,
        event_id,
    )
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { delivery_id, event_id })))
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/deliveries", operation_id = "webhooks_deliveries_list", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path), DeliveryQuery), responses((status = 200, body = Page<DeliveryView>)))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<EndpointPath>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    find(&mut tx, &path).await?;
    let rows = delivery_query!(
        "SELECT",
        "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
         WHERE d.endpoint_id = $1 AND ($2::uuid IS NULL OR d.id < $2) AND ($3::text IS NULL OR d.status = $3)
         ORDER BY d.id DESC LIMIT $4",
        path.endpoint_id,
        page.before,
        query.status as Option<DeliveryStatus>,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |d| d.id)))
}

/// One delivery, its payload and every attempt.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}", operation_id = "webhooks_deliveries_read", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path), ("delivery_id" = Uuid, Path)), responses((status = 200, body = DeliveryDetail)))]
async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<DeliveryPath>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    let payload = sqlx::query_scalar!(
        "SELECT e.payload FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
         WHERE d.workspace_id = $1 AND d.endpoint_id = $2 AND d.id = $3",
        path.workspace_id,
        path.endpoint_id,
        path.delivery_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("webhook delivery"))?;
    let delivery = delivery_query!(
        "SELECT",
        "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1",
        path.delivery_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let attempts_log = sqlx::query_as!(
        AttemptView,
        "SELECT attempted_at, status_code, latency_ms, response_body, error FROM webhook_attempts
         WHERE delivery_id = $1 ORDER BY id",
        path.delivery_id,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(DeliveryDetail { delivery, payload, attempts_log }))
}

/// Sends a delivery once more, now: a failed one (or a pending one, sooner). A delivery that
/// succeeded is not sent again (409): receivers deduplicate on the event id anyway, but a
/// retry that reports success twice would be a lie in the log.
/// Sends a failed delivery again.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry", operation_id = "webhooks_deliveries_retry", tag = "webhooks", params(("workspace_id" = Uuid, Path), ("endpoint_id" = Uuid, Path), ("delivery_id" = Uuid, Path)), responses((status = 202, body = Queued), (status = 409)))]
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<DeliveryPath>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let mut tx = open(&state, &caller, path.workspace_id).await?;
    let endpoint =
        find(&mut tx, &EndpointPath { workspace_id: path.workspace_id, endpoint_id: path.endpoint_id }).await?;
    let delivery = sqlx::query!(
        r#"SELECT event_id, status AS "status: DeliveryStatus" FROM webhook_deliveries
           WHERE workspace_id = $1 AND endpoint_id = $2 AND id = $3 FOR UPDATE"#,
        path.workspace_id,
        path.endpoint_id,
        path.delivery_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("webhook delivery"))?;
    let event_id = delivery.event_id;
    if matches!(delivery.status, DeliveryStatus::Succeeded) {
        return Err(ApiError::Conflict {
            code: "webhook_delivery_succeeded",
            detail: "This delivery succeeded; it is not sent again.".into(),
        });
    }
    if !endpoint.enabled {
        return Err(ApiError::Conflict {
            code: "webhook_endpoint_disabled",
            detail: "The endpoint is disabled; re-enable it (PATCH with enabled: true) before retrying.".into(),
        });
    }
    sqlx::query!(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(),
                max_attempts = CASE WHEN status = 'failed' THEN attempts + 1 ELSE max_attempts END,
                enqueued_at = NULL, finished_at = NULL
         WHERE id = $1",
        path.delivery_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { delivery_id: path.delivery_id, event_id })))
}

//! `POST /v1/workspaces/{id}/ai/runs` and reading runs.
//!
//! A run is recorded (pending) and one unit of the quota's window reserved (a month of the
//! subscription's billing period, `app.ai_quota_period`), in one transaction,
//! before the provider is called. Success stores the output and, in the same transaction, a
//! usage record (the billing outbox), which is then sent to the usage queue. Failure marks the
//! run failed and gives the reservation back; nothing is billed. A run left pending by a
//! function that died is failed and released by the sweeper.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::ApiError;
use shared::ai::ProviderError;
use shared::auth::Caller;
use shared::db::Cost;
use shared::error::FieldError;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::validate::Validator;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AiState;
use crate::tools::{self, Tool};
use shared::openapi::OpenApiRouter;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AiState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(read))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RunInput {
    #[schema(schema_with = crate::tools::tool_schema)]
    tool: String,
    project_id: Option<Uuid>,
    #[serde(default)]
    input: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    id: Uuid,
    tool: String,
    project_id: Option<Uuid>,
    status: String,
    output: Option<String>,
    error: Option<String>,
    model: Option<String>,
    input_tokens: Option<i32>,
    output_tokens: Option<i32>,
    created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    #[serde(skip)]
    request_hash: String,
}

#[derive(Deserialize)]
struct RunPath {
    workspace_id: Uuid,
    run_id: Uuid,
}

/// Runs an AI tool (owners, admins and members; plans with AI tools), within the month's quota.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/ai/runs", operation_id = "ai_runs_create", tag = "ai", params(("workspace_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "A repeated key answers the first run (200, `idempotent-replayed: true`) instead of running again.")), request_body = RunInput, responses((status = 201, body = RunView), (status = 200, body = RunView, description = "The first run for this `Idempotency-Key`.", headers(("idempotent-replayed" = String))), (status = 409), (status = 502), (status = 504)))]
async fn create(
    State(state): State<AiState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    headers: HeaderMap,
    extract::Json(body): extract::Json<RunInput>,
) -> Result<Response, ApiError> {
    let mut v = Validator::default();
    let tool = v.check(Tool::parse(&body.tool));
    let key = v.check(extract::idempotency_key(&headers));
    let (tool, key) = v.finish(|| Some((tool?, key?)))?;
    tools::validate(tool, body.project_id, &body.input)?;
    let request_hash = hash(tool, body.project_id, &body.input);

    let (mut tx, access) = state.app.open_workspace_costing(&caller, workspace_id, Cost::Expensive).await?;
    access.require_writer()?;
    let plan = shared::access::require_feature(&mut tx, workspace_id, shared::plans::Feature::AiTools).await?;
    if let Some(key) = &key
        && let Some(previous) = run_by_key(&mut tx, workspace_id, key).await?
    {
        return replay(previous, &request_hash);
    }
    let prompt = tools::prompt(&mut tx, tool, workspace_id, body.project_id, &body.input).await?;
    let reserved = sqlx::query!(r#"SELECT window_start, overage FROM app.reserve_ai_run($1)"#, workspace_id)
        .fetch_one(&mut *tx)
        .await?;
    let (Some(period), Some(overage)) = (reserved.window_start, reserved.overage) else {
        return Err(refusal(&mut tx, workspace_id, &plan).await?);
    };
    let run_id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO ai_runs (id, workspace_id, project_id, tool, input, status, idempotency_key, request_hash, quota_period,
                              overage, created_by)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, app.current_user_id())",
        run_id,
        workspace_id,
        body.project_id,
        tool.id(),
        &body.input,
        key.as_deref(),
        &request_hash,
        period,
        overage,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let asked = std::time::Instant::now();
    let result = state.ai.complete(&prompt.system, &prompt.user).await;
    shared::metrics::milliseconds("AiProviderLatency", asked.elapsed().as_secs_f64() * 1000.0, None);
    shared::metrics::count("AiRuns", Some(("outcome", if result.is_ok() { "succeeded" } else { "failed" })));
    let mut tx = state.app.begin(&caller).await?;
    match result {
        Ok(completion) => {
            let usage_id = Uuid::now_v7();
            let (input_tokens, output_tokens) = (completion.input_tokens as i32, completion.output_tokens as i32);
            let finished = sqlx::query!(
        "UPDATE ai_runs SET status = 'succeeded', output = $2, model = $3, input_tokens = $4, output_tokens = $5,
                        finished_at = now()
                 WHERE id = $1 AND status = 'pending'",
        run_id,
        &completion.text,
        &completion.model,
        input_tokens,
        output_tokens,
    )
            .execute(&mut *tx)
            .await?;
            if finished.rows_affected() == 0 {
                // The sweeper already failed this run as abandoned (and released its quota): it stays
                // failed and unbilled rather than being billed outside the quota.
                return Err(ApiError::UpstreamTimeout(format!(
                    "Run {run_id} took too long and was abandoned. Nothing was billed."
                )));
            }
            sqlx::query!(
                "INSERT INTO usage_records (id, workspace_id, run_id, quantity, occurred_at, overage)
                 SELECT $1, workspace_id, id, 1, created_at, overage FROM ai_runs WHERE id = $2",
                usage_id,
                run_id,
            )
            .execute(&mut *tx)
            .await?;
            let run = find(&mut tx, workspace_id, run_id).await?.ok_or(ApiError::NotFound("run"))?;
            tx.commit().await?;
            enqueue_usage(&state, &caller, usage_id).await;
            tracing::info!(%run_id, tool = tool.id(), "AI run succeeded");
            Ok((StatusCode::CREATED, Json(run)).into_response())
        }
        Err(error) => {
            sqlx::query!(
                "UPDATE ai_runs SET status = 'failed', error = $2, finished_at = now()
         WHERE id = $1 AND status = 'pending'",
                run_id,
                error.reason(),
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!("SELECT app.release_ai_run($1, $2, $3)", workspace_id, period, overage)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::warn!(%run_id, %error, "AI run failed; quota released, nothing billed");
            Err(match error {
                ProviderError::Timeout => ApiError::UpstreamTimeout(format!(
                    "Run {run_id} failed: the AI provider did not answer in time. Nothing was billed."
                )),
                _ => ApiError::Upstream {
                    code: "provider_error",
                    detail: format!("Run {run_id} failed: the AI provider could not complete it. Nothing was billed."),
                },
            })
        }
    }
}

/// Why a run was refused: the quota used up (on a plan without overage, or one whose overage
/// cannot be billed), or overage up to the spending cap; with the day the quota renews.
async fn refusal(
    tx: &mut shared::db::TenantTx,
    workspace_id: Uuid,
    plan: &shared::plans::Plan,
) -> Result<ApiError, ApiError> {
    let window = sqlx::query!(
        r#"SELECT (app.ai_quota_period($1) + interval '1 month')::date AS "renews!",
                  coalesce(app.ai_overage_allowance($1), -1) AS "overage_allowance!""#,
        workspace_id
    )
    .fetch_one(&mut **tx)
    .await?;
    let renews = window.renews;
    if window.overage_allowance > 0 {
        return Ok(ApiError::SpendingCapReached(format!(
            "This workspace has used the {} AI runs of its {} plan and the {} more its spending cap allows for \
             this month of its billing period; an owner or admin can raise the cap, or the quota renews on {renews}.",
            plan.limits.ai_runs_per_month, plan.name, window.overage_allowance
        )));
    }
    Ok(ApiError::QuotaExceeded(format!(
        "This workspace has used the {} AI runs of its {} plan for this month of its billing period; \
         the quota renews on {renews}.",
        plan.limits.ai_runs_per_month, plan.name
    )))
}

/// Sends a usage record to the usage queue. A failure here loses nothing: the record stays
/// unreported in the database and the sweeper sends it again.
async fn enqueue_usage(state: &AiState, caller: &Caller, usage_id: Uuid) {
    let Some(queue) = &state.usage_queue else { return };
    match queue.send(&usage_id.to_string(), &[("kind", "usage_record")]).await {
        Ok(_) => {
            if let Ok(mut tx) = state.app.begin(caller).await {
                let marked = sqlx::query!("UPDATE usage_records SET enqueued_at = now() WHERE id = $1", usage_id,)
                    .execute(&mut *tx)
                    .await;
                if marked.is_ok() {
                    let _ = tx.commit().await;
                }
            }
        }
        Err(error) => tracing::warn!(%usage_id, %error, "usage record not enqueued; the sweeper will resend it"),
    }
}

/// The same key with the same request returns the first run; with another request it is refused.
fn replay(previous: RunView, request_hash: &str) -> Result<Response, ApiError> {
    if previous.request_hash != request_hash {
        return Err(ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "was already used with a different request",
        )]));
    }
    if previous.status == "pending" {
        return Err(ApiError::Conflict {
            code: "run_in_progress",
            detail: "A run with this Idempotency-Key is still in progress; retry shortly to get its result.".into(),
        });
    }
    let mut response = (StatusCode::OK, Json(previous)).into_response();
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// A checked `query_as!` of `RunView`s: the `ai_runs` columns a view is read from, then the
/// caller's literal clauses.
macro_rules! select_run {
    ($rest:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            RunView,
            "SELECT id, tool, project_id, status, output, error, model, input_tokens, output_tokens,
                    created_by, created_at, finished_at, request_hash
             FROM ai_runs " + $rest,
            $($arg),*
        )
    };
}

async fn run_by_key(tx: &mut shared::db::TenantTx, workspace_id: Uuid, key: &str) -> Result<Option<RunView>, ApiError> {
    Ok(select_run!("WHERE workspace_id = $1 AND idempotency_key = $2", workspace_id, key,)
        .fetch_optional(&mut **tx)
        .await?)
}

async fn find(tx: &mut shared::db::TenantTx, workspace_id: Uuid, run_id: Uuid) -> Result<Option<RunView>, ApiError> {
    Ok(select_run!("WHERE workspace_id = $1 AND id = $2", workspace_id, run_id,).fetch_optional(&mut **tx).await?)
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/ai/runs/{run_id}", operation_id = "ai_runs_read", tag = "ai", params(("workspace_id" = Uuid, Path), ("run_id" = Uuid, Path)), responses((status = 200, body = RunView)))]
async fn read(
    State(state): State<AiState>,
    caller: Caller,
    Path(path): Path<RunPath>,
) -> Result<Json<RunView>, ApiError> {
    let (mut tx, access) = state.app.open_workspace(&caller, path.workspace_id).await?;
    access.require_member()?;
    let run = find(&mut tx, path.workspace_id, path.run_id).await?.ok_or(ApiError::NotFound("run"))?;
    tx.commit().await?;
    Ok(Json(run))
}

#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/ai/runs", operation_id = "ai_runs_list", tag = "ai", params(("workspace_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<RunView>)))]
async fn list(
    State(state): State<AiState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<RunView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.app.open_workspace(&caller, workspace_id).await?;
    access.require_member()?;
    let rows = select_run!(
        "WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        workspace_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |r| r.id)))
}

/// A stable hash of what was asked (serde_json sorts object keys, so field order is irrelevant).
fn hash(tool: Tool, project_id: Option<Uuid>, input: &Value) -> String {
    let canonical = serde_json::json!({ "tool": tool.id(), "project_id": project_id, "input": input }).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

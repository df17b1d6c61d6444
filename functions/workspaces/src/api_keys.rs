//! A workspace's API keys: owners and admins create, list and revoke them. A key's text is
//! answered once, at creation; only its hash is stored. A key works only while the person who
//! created it is still a member with at least the key's role (the database checks it on every
//! request), and keys cannot create keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::access::{Role, require_feature};
use shared::auth::{Caller, api_key};
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::openapi::OpenApiRouter;
use shared::plans::Feature;
use shared::validate::{Name, Validator};
use shared::{ApiError, AppState};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(revoke))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKeyInput {
    #[schema(schema_with = Name::schema)]
    name: String,
    role: Role,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// The key's own limit; at most (and by default) its plan's.
    #[schema(minimum = 1)]
    requests_per_minute: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct KeyView {
    id: Uuid,
    name: String,
    role: Role,
    display_prefix: String,
    requests_per_minute: Option<i32>,
    created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[derive(Serialize, ToSchema)]
struct CreatedKey {
    #[serde(flatten)]
    view: KeyView,
    /// The key itself. Shown this once; store it now.
    key: String,
}

#[derive(Deserialize)]
struct KeyPath {
    workspace_id: Uuid,
    key_id: Uuid,
}

/// Creates an API key (owners and admins, plans with API access); the key is shown this once.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/api-keys", operation_id = "api_keys_create", tag = "api-keys", params(("workspace_id" = Uuid, Path)), request_body = NewKeyInput, responses((status = 201, body = CreatedKey)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<NewKeyInput>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let mut v = Validator::default();
    let name = v.check(Name::parse("name", &input.name));
    if input.role == Role::Owner {
        v.refuse("role", "must be admin, member or viewer");
    }
    if input.expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
        v.refuse("expires_at", "must be in the future");
    }
    let name = v.finish(|| name)?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    // A key minted by a key would outlive the authority of the one that made it.
    if caller.api_key.is_some() {
        return Err(ApiError::Denied {
            code: "api_key_cannot_create_keys",
            detail: "API keys are issued by people; sign in to create one.".into(),
        });
    }
    let plan = require_feature(&mut tx, workspace_id, Feature::ApiAccess).await?;
    let plan_limit = plan.limits.requests_per_minute;
    if input.requests_per_minute.is_some_and(|n| n == 0 || n > plan_limit) {
        return Err(ApiError::validation("requests_per_minute", format!("must be between 1 and {plan_limit}")));
    }
    let key = api_key::generate().map_err(ApiError::internal)?;
    sqlx::query!(
        "SELECT app.create_api_key($1, $2, $3, $4, $5, $6, $7, $8)",
        key.id,
        workspace_id,
        name.as_str(),
        input.role as Role,
        &key.display_prefix,
        &key.secret_hash[..],
        input.expires_at,
        input.requests_per_minute.map(|n| n as i32),
    )
    .execute(&mut *tx)
    .await?;
    let view = sqlx::query_as!(
        KeyView,
        r#"SELECT id, name, role AS "role: Role", display_prefix, requests_per_minute, created_by, created_at,
                  last_used_at, expires_at
           FROM api_keys WHERE id = $1"#,
        key.id,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { view, key: key.text })))
}

/// The workspace's keys that still work or have yet to expire; revoked keys are gone.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/api-keys", operation_id = "api_keys_list", tag = "api-keys", params(("workspace_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<KeyView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<KeyView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let rows = sqlx::query_as!(
        KeyView,
        r#"SELECT id, name, role AS "role: Role", display_prefix, requests_per_minute, created_by, created_at,
                  last_used_at, expires_at
           FROM api_keys WHERE workspace_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3"#,
        workspace_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |k| k.id)))
}

/// Revokes at once: the key's next request is refused. Revoking twice is harmless.
/// Revokes the key now.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/api-keys/{key_id}", operation_id = "api_keys_revoke", tag = "api-keys", params(("workspace_id" = Uuid, Path), ("key_id" = Uuid, Path)), responses((status = 204)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    sqlx::query!(
        "UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL",
        path.workspace_id,
        path.key_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

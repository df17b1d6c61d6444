//! The activity feed of a workspace: what happened, newest first, for members; the
//! client-visible part of their clients' projects for client contacts (row-level security
//! decides, the queries only say it to the planner). `after` resumes a live feed: the events
//! after the last one a client saw, oldest first.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use shared::access::Access;
use shared::activity::ActivityView;
use shared::auth::Caller;
use shared::http::extract::{Path, Query};
use shared::http::pagination::{Page, PageRequest};
use shared::openapi::OpenApiRouter;
use shared::{ApiError, AppState};
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feed))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    project_id: Option<Uuid>,
    /// Only events at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
    /// Only events after this one, oldest first (a reconnecting client's last event id).
    after: Option<Uuid>,
}

/// The activity feed, newest first (or, with `after`, the events after it, oldest first).
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/activity", operation_id = "activity_list", tag = "activity", params(("workspace_id" = Uuid, Path), FeedQuery), responses((status = 200, body = Page<ActivityView>)))]
async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<FeedQuery>,
) -> Result<Json<Page<ActivityView>>, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    if query.after.is_some() && page.before.is_some() {
        return Err(ApiError::validation("after", "use either after (to resume) or cursor (to page back)"));
    }
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    // The filters every variant shares, then the position, scope and order as literal clauses.
    macro_rules! feed {
        ($rest:tt) => {
            shared::select_activity!(
                "WHERE workspace_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
                   AND ($3::timestamptz IS NULL OR created_at >= $3) "
                    + $rest,
                workspace_id,
                query.project_id,
                query.since,
                query.after.or(page.before),
                page.fetch_limit(),
            )
            .fetch_all(&mut *tx)
            .await?
        };
    }
    // A contact's rows are found through their clients' projects (the visible-rows index), a
    // member's through the workspace's; the policy allows exactly these.
    let contact = access == Access::ClientContact;
    let rows = match (contact, query.after.is_some()) {
        (false, false) => feed!("AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"),
        (false, true) => feed!("AND ($4::uuid IS NULL OR id > $4) ORDER BY id ASC LIMIT $5"),
        (true, false) => feed!(
            "AND ($4::uuid IS NULL OR id < $4) AND client_visible AND project_id IN (SELECT p.id FROM projects p
                WHERE p.workspace_id = $1 AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[]))
             ORDER BY id DESC LIMIT $5"
        ),
        (true, true) => feed!(
            "AND ($4::uuid IS NULL OR id > $4) AND client_visible AND project_id IN (SELECT p.id FROM projects p
                WHERE p.workspace_id = $1 AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[]))
             ORDER BY id ASC LIMIT $5"
        ),
    };
    tx.commit().await?;
    // Resuming pages forward: `next_cursor` is then the `after` of the next page.
    Ok(Json(Page::from_rows(rows, &page, |a| a.id)))
}

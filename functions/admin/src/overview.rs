//! One workspace, as an operator supporting it needs to see it: why its plan is what it is (the
//! synced subscription), usage against the plan's limits, members, recent audit entries and
//! Stripe events, AI usage not yet reported to Stripe. One statement.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use shared::ApiError;
use shared::http::extract::Path;
use uuid::Uuid;

use crate::{AdminState, Operator};

/// Everything an operator needs to support one workspace.
#[utoipa::path(get, path = "/v1/admin/workspaces/{workspace_id}", operation_id = "admin_workspace_overview", tag = "admin", params(("workspace_id" = Uuid, Path)), responses((status = 200, body = Object, description = "The workspace, its members, subscription, effective entitlements, overrides, usage and recent activity.")))]
pub async fn overview(
    State(state): State<AdminState>,
    _operator: Operator,
    Path(workspace_id): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let found: Option<Value> = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
             'workspace', (SELECT jsonb_build_object('id', w.id, 'name', w.name, 'created_at', w.created_at,
                                                     'stripe_customer_id', w.stripe_customer_id)
                           FROM workspaces w WHERE w.id = $1),
             'plan', app.effective_plan($1),
             'subscription', (SELECT to_jsonb(s) - 'workspace_id' FROM subscriptions s WHERE s.workspace_id = $1),
             'usage', jsonb_build_object(
                 'projects', (SELECT count(*) FROM projects WHERE workspace_id = $1),
                 'members', (SELECT count(*) FROM workspace_members WHERE workspace_id = $1),
                 'pending_team_invitations', (SELECT count(*) FROM invitations
                     WHERE workspace_id = $1 AND role IS NOT NULL AND accepted_at IS NULL AND revoked_at IS NULL
                       AND expires_at > now()),
                 'ai_runs_this_period', (SELECT coalesce(sum(reserved), 0) FROM ai_quota_usage
                     WHERE workspace_id = $1 AND period = app.ai_quota_period($1)),
                 'ai_overage_runs_this_period', (SELECT coalesce(sum(overage), 0) FROM ai_quota_usage
                     WHERE workspace_id = $1 AND period = app.ai_quota_period($1)),
                 'ai_overage_cap', (SELECT ai_overage_cap FROM workspaces WHERE id = $1),
                 'ai_quota_period', app.ai_quota_period($1)),
             'members', (SELECT coalesce(jsonb_agg(jsonb_build_object('user_id', u.id, 'email', u.email, 'role', m.role)
                                                   ORDER BY m.created_at), '[]')
                         FROM workspace_members m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1),
             'recent_audit', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.seq DESC), '[]') FROM
                                (SELECT seq, actor, action, table_name, row_id, created_at FROM audit_log
                                 WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 20) a),
             'recent_stripe_events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.created DESC), '[]') FROM
                                (SELECT id, type, outcome, created, received_at FROM stripe_events
                                 WHERE workspace_id = $1 ORDER BY created DESC LIMIT 20) e),
             'overrides', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', o.id, 'entitlement', o.entitlement,
                                                 'value', o.value, 'expires_at', o.expires_at, 'reason', o.reason,
                                                 'granted_by', o.granted_by) ORDER BY o.created_at DESC), '[]')
                           FROM entitlement_overrides o
                           WHERE o.workspace_id = $1 AND o.revoked_at IS NULL AND o.expires_at > now()),
             'active_overrides', app.active_overrides($1),
             'unreported_ai_usage', (SELECT jsonb_build_object('records', count(*), 'quantity', coalesce(sum(quantity), 0))
                                     FROM usage_records WHERE workspace_id = $1 AND reported_at IS NULL))
         AS "overview!" FROM workspaces WHERE id = $1"#,
        workspace_id,
    )
    .fetch_optional(&state.pool)
    .await?;
    let mut overview = found.ok_or(ApiError::NotFound("workspace"))?;
    let plan = shared::plans::by_id(overview["plan"].as_str().unwrap_or("free"));
    overview["limits"] = serde_json::to_value(plan.limits).map_err(ApiError::internal)?;
    overview["features"] = serde_json::to_value(plan.features).map_err(ApiError::internal)?;
    // What the workspace actually has: the plan as the overrides in force change it.
    let effective = plan.with_overrides(&overview["active_overrides"]);
    overview["effective_limits"] = serde_json::to_value(effective.limits).map_err(ApiError::internal)?;
    overview["effective_features"] = serde_json::to_value(effective.features).map_err(ApiError::internal)?;
    Ok(Json(overview))
}

//! What a workspace must remove before it fits a smaller plan.

use shared::ApiError;
use shared::db::TenantTx;
use shared::error::FieldError;
use shared::plans::Plan;
use uuid::Uuid;

/// What the workspace uses beyond what `target` (with the workspace's overrides) allows, as
/// what to remove first; empty when the downgrade fits.
pub async fn downgrade_blockers(
    tx: &mut TenantTx,
    workspace_id: Uuid,
    target: Plan,
) -> Result<Vec<FieldError>, ApiError> {
    let usage = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM projects WHERE workspace_id = $1) AS "projects!",
                (SELECT count(*) FROM workspace_members WHERE workspace_id = $1)
                  + (SELECT count(*) FROM invitations WHERE workspace_id = $1 AND role IS NOT NULL
                     AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()) AS "members!",
                (SELECT count(*) FROM api_keys WHERE workspace_id = $1 AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > now())) AS "keys!",
                (SELECT count(*) FROM webhook_endpoints WHERE workspace_id = $1) AS "endpoints!",
                (SELECT count(*) FROM client_contacts WHERE workspace_id = $1) AS "contacts!",
                app.active_overrides($1) AS "overrides!""#,
        workspace_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    let (projects, members, keys, endpoints, contacts, overrides) =
        (usage.projects, usage.members, usage.keys, usage.endpoints, usage.contacts, usage.overrides);
    let target = target.with_overrides(&overrides);
    let name = target.name;
    let mut blockers = Vec::new();
    let mut over = |field: &str, used: i64, allowed: Option<u32>, what: &str| {
        if let Some(allowed) = allowed.map(i64::from).filter(|allowed| used > *allowed) {
            blockers.push(FieldError::new(
                field,
                format!("remove {} {what}: {used} in use, the {name} plan allows {allowed}", used - allowed),
            ));
        }
    };
    over("projects", projects, target.limits.projects, "projects");
    over("members", members, target.limits.members, "members or pending invitations");
    let features = target.features;
    let mut without = |field: &str, used: i64, has: bool, what: &str| {
        if !has && used > 0 {
            blockers.push(FieldError::new(
                field,
                format!("remove the {used} {what}: the {name} plan does not include them"),
            ));
        }
    };
    without("api_keys", keys, features.api_access, "API keys");
    without("webhooks", endpoints, features.webhooks, "webhook endpoints");
    without("client_contacts", contacts, features.client_portal, "client contacts");
    Ok(blockers)
}

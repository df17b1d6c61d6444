//! What the caller may do in a workspace: a member with a role, a client contact, or nothing.
//!
//! Row-level security is what actually guards the rows; this check exists so a caller gets the
//! right answer: 404 for a workspace they cannot see, 403 for an action their role does not allow.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::TenantTx;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "member_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    /// Owners and admins manage members, clients and billing.
    pub fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Everyone but viewers creates and edits project work.
    pub fn writes(self) -> bool {
        !matches!(self, Role::Viewer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Member(Role),
    /// A portal user tied to one or more of the workspace's clients.
    ClientContact,
}

impl Access {
    /// The caller's access to a workspace; a workspace they cannot see is 404.
    pub async fn load(tx: &mut TenantTx, workspace_id: Uuid) -> Result<Self, ApiError> {
        Ok(Self::load_with_project(tx, workspace_id, None).await?.0)
    }

    /// As `load`, and in the same statement (one round trip) whether the caller can see the
    /// workspace's `project` (always true without one). A contact's plan is read there too.
    pub async fn load_with_project(
        tx: &mut TenantTx,
        workspace_id: Uuid,
        project: Option<Uuid>,
    ) -> Result<(Self, bool), ApiError> {
        tracing::Span::current().record("workspace_id", tracing::field::display(workspace_id));
        let (role, contact, contact_plan, project_visible): (Option<Role>, bool, Option<String>, bool) = sqlx::query_as(
            "WITH caller AS (
                 SELECT (SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = app.current_user_id()) AS role,
                        EXISTS (SELECT 1 FROM client_contacts WHERE workspace_id = $1 AND user_id = app.current_user_id()) AS contact)
             SELECT role, contact,
                    CASE WHEN role IS NULL AND contact THEN app.effective_plan($1) END,
                    $2::uuid IS NULL OR EXISTS (SELECT 1 FROM projects WHERE workspace_id = $1 AND id = $2)
             FROM caller",
        )
        .bind(workspace_id)
        .bind(project)
        .fetch_one(&mut **tx)
        .await?;
        let access = match (role, contact) {
            (Some(role), _) => Access::Member(role),
            (None, true) => {
                let plan = crate::plans::by_id(contact_plan.as_deref().unwrap_or("free"));
                if !plan.features.client_portal {
                    return Err(feature_not_in_plan("The client portal", plan));
                }
                Access::ClientContact
            }
            (None, false) => return Err(ApiError::NotFound("workspace")),
        };
        Ok((access, project_visible))
    }

    pub fn role(self) -> Option<Role> {
        match self {
            Access::Member(role) => Some(role),
            Access::ClientContact => None,
        }
    }

    /// Members of any role; client contacts are refused.
    pub fn require_member(self) -> Result<Role, ApiError> {
        self.role().ok_or_else(|| ApiError::Forbidden("Client contacts cannot do this.".into()))
    }

    pub fn require_writer(self) -> Result<Role, ApiError> {
        let role = self.require_member()?;
        if role.writes() { Ok(role) } else { Err(ApiError::Forbidden("Viewers have read-only access.".into())) }
    }

    pub fn require_manager(self) -> Result<Role, ApiError> {
        let role = self.require_member()?;
        if role.manages() { Ok(role) } else { Err(ApiError::Forbidden("Only owners and admins can do this.".into())) }
    }
}

/// The workspace's current plan, or 402 `feature_not_in_plan` if it lacks the feature.
pub async fn require_feature(
    tx: &mut TenantTx,
    workspace_id: Uuid,
    has: impl Fn(&crate::plans::Features) -> bool,
    feature: &str,
) -> Result<crate::plans::Plan, ApiError> {
    let plan: String =
        sqlx::query_scalar("SELECT app.effective_plan($1)").bind(workspace_id).fetch_one(&mut **tx).await?;
    let plan = crate::plans::by_id(&plan);
    if has(&plan.features) { Ok(plan) } else { Err(feature_not_in_plan(feature, plan)) }
}

fn feature_not_in_plan(feature: &str, plan: crate::plans::Plan) -> ApiError {
    ApiError::FeatureNotInPlan(format!(
        "{feature} is not part of the {} plan; the workspace owner can upgrade.",
        plan.name
    ))
}

//! What the caller may do in a workspace: a member with a role, a client contact, or nothing.
//!
//! Row-level security is what actually guards the rows; this check exists so a caller gets the
//! right answer: 404 for a workspace they cannot see, 403 for an action their role does not allow.

use uuid::Uuid;

pub use crate::role::Role;

use crate::db::{Entry, TenantTx};
use crate::error::ApiError;
use crate::plans::{Feature, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Member(Role),
    /// A portal user tied to one or more of the workspace's clients.
    ClientContact,
}

impl Access {
    /// The caller's access to the workspace their transaction entered (`TenantTx::enter`): a
    /// workspace they cannot see is 404, the portal on a plan without it 402. Also answers
    /// whether they can see the project asked about.
    pub fn from_entry(entry: &Entry) -> Result<(Self, bool), ApiError> {
        let access = match (entry.member_role, entry.is_contact) {
            (Some(role), _) => Access::Member(role),
            (None, true) => {
                // Said without the plan: a contact learns nothing of the team's subscription.
                if !entry.portal_open {
                    return Err(ApiError::FeatureNotInPlan(
                        "This workspace's client portal is not open on its current plan; ask the team that invited you."
                            .into(),
                    ));
                }
                Access::ClientContact
            }
            (None, false) => return Err(ApiError::NotFound("workspace")),
        };
        Ok((access, entry.project_visible))
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

    pub fn require_owner(self, action: &str) -> Result<Role, ApiError> {
        let role = self.require_member()?;
        if role == Role::Owner { Ok(role) } else { Err(ApiError::Forbidden(format!("Only owners can {action}."))) }
    }

    pub fn require_manager(self) -> Result<Role, ApiError> {
        let role = self.require_member()?;
        if role.manages() { Ok(role) } else { Err(ApiError::Forbidden("Only owners and admins can do this.".into())) }
    }
}

/// The workspace's current plan as its overrides change it (for its limits), or 402
/// `feature_not_in_plan` if the database says the workspace lacks the feature now.
pub async fn require_feature(tx: &mut TenantTx, workspace_id: Uuid, feature: Feature) -> Result<Plan, ApiError> {
    let effective = sqlx::query!(
        r#"SELECT app.effective_plan($1) AS "plan!", app.active_overrides($1) AS "overrides!",
                  app.workspace_has_feature($1, $2) AS enabled"#,
        workspace_id,
        feature.entitlement(),
    )
    .fetch_one(&mut **tx)
    .await?;
    let plan = crate::plans::by_id(&effective.plan).with_overrides(&effective.overrides);
    if effective.enabled == Some(true) { Ok(plan) } else { Err(feature.not_in_plan(plan.name)) }
}

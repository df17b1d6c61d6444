//! What the caller may do in a workspace: a member with a role, a client contact, or nothing.
//!
//! Row-level security is what actually guards the rows; this check exists so a caller gets the
//! right answer: 404 for a workspace they cannot see, 403 for an action their role does not allow.

use uuid::Uuid;

pub use crate::role::Role;

use crate::db::{Entry, TenantTx};
use crate::error::ApiError;

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
                let plan = crate::plans::by_id(entry.contact_plan.as_deref().unwrap_or("free"))
                    .with_overrides(entry.contact_overrides.as_ref().unwrap_or(&serde_json::Value::Null));
                // Said without the plan: a contact learns nothing of the team's subscription.
                if !plan.features.client_portal {
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

/// The workspace's current plan as its overrides change it, or 402 `feature_not_in_plan` if it
/// lacks the feature.
pub async fn require_feature(
    tx: &mut TenantTx,
    workspace_id: Uuid,
    has: impl Fn(&crate::plans::Features) -> bool,
    feature: &str,
) -> Result<crate::plans::Plan, ApiError> {
    let effective = sqlx::query!(
        r#"SELECT app.effective_plan($1) AS "plan!", app.active_overrides($1) AS "overrides!""#,
        workspace_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    let plan = crate::plans::by_id(&effective.plan).with_overrides(&effective.overrides);
    if has(&plan.features) { Ok(plan) } else { Err(feature_not_in_plan(feature, plan)) }
}

fn feature_not_in_plan(feature: &str, plan: crate::plans::Plan) -> ApiError {
    ApiError::FeatureNotInPlan(format!(
        "{feature} is not part of the {} plan; the workspace owner can upgrade.",
        plan.name
    ))
}

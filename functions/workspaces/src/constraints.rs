//! The constraints of the tables this function's routes write, and what breaking each means
//! for the caller (installed for its requests by `shared::http::constrained`).

use shared::ApiError;
use shared::error::Constraint;

pub const CONSTRAINTS: &[Constraint] = &[
    ("workspace_members_pkey", || ApiError::Conflict {
        code: "already_member",
        detail: "That user is already a member of this workspace.".into(),
    }),
    ("workspace_members_keep_an_owner", || ApiError::Conflict {
        code: "last_owner",
        detail: "A workspace must keep at least one owner; make someone else owner first.".into(),
    }),
    ("client_contacts_pkey", || ApiError::Conflict {
        code: "already_contact",
        detail: "That user is already a contact of this client.".into(),
    }),
    ("client_contacts_client_fkey", || ApiError::NotFound("client")),
    ("invitations_pending_key", || ApiError::Conflict {
        code: "invitation_pending",
        detail: "That address already has a pending invitation here; resend or revoke it.".into(),
    }),
    ("invitations_client_fkey", || ApiError::NotFound("client")),
    ("workspace_exports_one_open", || ApiError::Conflict {
        code: "export_in_progress",
        detail: "An export of this workspace is being written; follow it, then ask again if you need another.".into(),
    }),
    ("plan_limit_members", || {
        ApiError::PlanLimitReached("Your plan's member limit is reached; upgrade the plan to add more.".into())
    }),
];

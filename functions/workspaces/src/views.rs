//! Response bodies of this function.

use serde::Serialize;
use shared::access::Role;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: Uuid,
    pub name: String,
    /// The caller's role, or `client` for a client contact.
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

/// A client as the team sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    /// Internal: never shown to the client's contacts.
    pub notes: String,
    /// Shown to the client's contacts in the portal.
    pub portal_note: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A client as its own contacts see it in the portal (read from the `client_portal` view).
#[derive(Debug, Serialize, ToSchema)]
// Closed (`additionalProperties: false` in the document), so it is told apart from the team's
// view: `ClientBody` is exactly one of the two.
#[serde(deny_unknown_fields)]
pub struct ClientPortalView {
    pub id: Uuid,
    pub name: String,
    pub portal_note: String,
}

/// What a client route answers: the team's view, or the portal's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ClientBody {
    Team(ClientView),
    Portal(ClientPortalView),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    pub user_id: Uuid,
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub linked_at: OffsetDateTime,
}

//! Invitations by e-mail: owners and admins invite people, with or without an account, to the
//! team (with a role, counted against the plan's member limit while pending) or to a client's
//! portal. The invitation mail is written to the outbox in the same transaction; only the
//! token's hash is kept on the invitation. The invited person accepts with the token while
//! signed in with the invited (verified) address.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::access::Role;
use shared::auth::{Caller, api_key};
use shared::db::TenantTx;
use shared::http::extract::{self, Path, Query};
use shared::http::pagination::{Page, PageQuery};
use shared::openapi::OpenApiRouter;
use shared::validate::{Email, Validator};
use shared::{ApiError, AppState};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// How long an invitation can be accepted.
const VALID_FOR: Duration = Duration::days(7);
/// Invitation tokens: `inv_` and 43 base62 characters (256 random bits).
const TOKEN_PREFIX: &str = "inv_";
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, invite_member))
        .routes(routes!(revoke))
        .routes(routes!(resend))
        .routes(routes!(invite_contact))
        .routes(routes!(accept))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberInvitation {
    #[schema(schema_with = Email::schema)]
    email: String,
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ContactInvitation {
    #[schema(schema_with = Email::schema)]
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Acceptance {
    token: String,
}

#[derive(Deserialize)]
struct InvitationPath {
    workspace_id: Uuid,
    invitation_id: Uuid,
}

#[derive(Deserialize)]
struct ClientPath {
    workspace_id: Uuid,
    client_id: Uuid,
}

#[derive(Serialize, ToSchema)]
struct InvitationView {
    id: Uuid,
    email: String,
    /// The team role, for a team invitation.
    role: Option<Role>,
    /// The client, for a portal invitation.
    client_id: Option<Uuid>,
    invited_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
struct Accepted {
    workspace_id: Uuid,
    role: Option<String>,
    client_id: Option<Uuid>,
}

fn parse_email(raw: &str) -> Result<Email, ApiError> {
    let mut v = Validator::default();
    let email = v.check(Email::parse("email", raw));
    v.finish(|| email)
}

/// Invites an address to the team (owners and admins; only owners invite owners).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/invitations", operation_id = "invitations_create", tag = "invitations", params(("workspace_id" = Uuid, Path)), request_body = MemberInvitation, responses((status = 201, body = InvitationView), (status = 409)))]
async fn invite_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    extract::Json(input): extract::Json<MemberInvitation>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let email = parse_email(&input.email)?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    let role = access.require_manager()?;
    if input.role == Role::Owner && role != Role::Owner {
        return Err(ApiError::Forbidden("Only owners can invite owners.".into()));
    }
    refuse_if_already_in(&mut tx, workspace_id, &email, None).await?;
    let view = create(&mut tx, &caller, workspace_id, email.as_str(), Some(input.role), None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Invites an address to the client's portal (a paid feature).
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/clients/{client_id}/invitations", operation_id = "invitations_create_contact", tag = "invitations", params(("workspace_id" = Uuid, Path), ("client_id" = Uuid, Path)), request_body = ContactInvitation, responses((status = 201, body = InvitationView), (status = 409)))]
async fn invite_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<ClientPath>,
    extract::Json(input): extract::Json<ContactInvitation>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let email = parse_email(&input.email)?;
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    shared::access::require_feature(&mut tx, path.workspace_id, shared::plans::Feature::ClientPortal).await?;
    refuse_if_already_in(&mut tx, path.workspace_id, &email, Some(path.client_id)).await?;
    let view = create(&mut tx, &caller, path.workspace_id, email.as_str(), None, Some(path.client_id)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Refuses an invitation that could only duplicate access the address already has: a member of
/// the workspace (members see every project), or, for a portal invitation, a contact of that
/// client. Only the workspace's own people are matched, whom its managers already see listed.
async fn refuse_if_already_in(
    tx: &mut TenantTx,
    workspace_id: Uuid,
    email: &Email,
    client_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let found = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM workspace_members m JOIN users u ON u.id = m.user_id
                          WHERE m.workspace_id = $1 AND lower(u.email) = lower($2)) AS "member!",
                  EXISTS (SELECT 1 FROM client_contacts c JOIN users u ON u.id = c.user_id
                          WHERE c.workspace_id = $1 AND c.client_id = $3 AND lower(u.email) = lower($2)) AS "contact!""#,
        workspace_id,
        email.as_str(),
        client_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    if found.member {
        return Err(ApiError::Conflict {
            code: "already_member",
            detail: "Someone with that address is already a member of this workspace.".into(),
        });
    }
    if found.contact {
        return Err(ApiError::Conflict {
            code: "already_contact",
            detail: "Someone with that address is already a contact of this client.".into(),
        });
    }
    Ok(())
}

/// Writes the invitation and its mail. An expired pending invitation to the same address and
/// target is revoked first, so it does not block a new one.
async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    workspace_id: Uuid,
    email: &str,
    role: Option<Role>,
    client_id: Option<Uuid>,
) -> Result<InvitationView, ApiError> {
    sqlx::query!(
        "UPDATE invitations SET revoked_at = now()
         WHERE workspace_id = $1 AND lower(email) = lower($2) AND client_id IS NOT DISTINCT FROM $3
           AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= now()",
        workspace_id,
        email,
        client_id,
    )
    .execute(&mut **tx)
    .await?;
    let token = new_token()?;
    let id = Uuid::now_v7();
    let view = sqlx::query_as!(
        InvitationView,
        r#"INSERT INTO invitations (id, workspace_id, email, role, client_id, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, email, role AS "role: Role", client_id, invited_by, created_at, expires_at"#,
        id,
        workspace_id,
        email,
        role as Option<Role>,
        client_id,
        &api_key::hash_token(&token)[..],
        caller.user_id,
        OffsetDateTime::now_utc() + VALID_FOR,
    )
    .fetch_one(&mut **tx)
    .await?;
    write_mail(tx, caller, &view, workspace_id, &token).await?;
    Ok(view)
}

/// The invitation mail, into the outbox with the token it carries (erased once sent).
async fn write_mail(
    tx: &mut TenantTx,
    caller: &Caller,
    invitation: &InvitationView,
    workspace_id: Uuid,
    token: &str,
) -> Result<(), ApiError> {
    let template = if invitation.client_id.is_some() { "portal_invitation" } else { "team_invitation" };
    sqlx::query!(
        "INSERT INTO emails (id, workspace_id, to_address, template, params)
         SELECT $1, w.id, $3, $4,
                jsonb_build_object('workspace', w.name, 'inviter', $5::text, 'role', $6::text,
                                   'client', (SELECT c.name FROM clients c WHERE c.id = $7),
                                   'token', $8::text, 'expires_at', $9::timestamptz)
         FROM workspaces w WHERE w.id = $2",
        Uuid::now_v7(),
        workspace_id,
        &invitation.email,
        template,
        caller.email.as_deref(),
        invitation.role.map(Role::as_str),
        invitation.client_id,
        token,
        invitation.expires_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn new_token() -> Result<String, ApiError> {
    Ok(format!("{TOKEN_PREFIX}{}", api_key::random_base62(TOKEN_LEN - TOKEN_PREFIX.len()).map_err(ApiError::internal)?))
}

/// Pending invitations (not accepted, revoked or expired), newest first.
/// Pending invitations.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/invitations", operation_id = "invitations_list", tag = "invitations", params(("workspace_id" = Uuid, Path), PageQuery), responses((status = 200, body = Page<InvitationView>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace_id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<InvitationView>>, ApiError> {
    let page = query.page()?;
    let (mut tx, access) = state.open_workspace(&caller, workspace_id).await?;
    access.require_manager()?;
    let rows = sqlx::query_as!(
        InvitationView,
        r#"SELECT id, email, role AS "role: Role", client_id, invited_by, created_at, expires_at
           FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
           AND expires_at > now() AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"#,
        workspace_id,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, &page, |i| i.id)))
}

/// A new token and a new mail; the old token stops working, and the invitation runs for a full
/// period again.
/// A new token and mail; the old token stops working.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/invitations/{invitation_id}/resend", operation_id = "invitations_resend", tag = "invitations", params(("workspace_id" = Uuid, Path), ("invitation_id" = Uuid, Path)), responses((status = 200, body = InvitationView), (status = 410)))]
async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<InvitationPath>,
) -> Result<Json<InvitationView>, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    let token = new_token()?;
    let view = sqlx::query_as!(
        InvitationView,
        r#"UPDATE invitations SET token_hash = $3, expires_at = $4
         WHERE workspace_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
         RETURNING id, email, role AS "role: Role", client_id, invited_by, created_at, expires_at"#,
        path.workspace_id,
        path.invitation_id,
        &api_key::hash_token(&token)[..],
        OffsetDateTime::now_utc() + VALID_FOR,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound("invitation"))?;
    write_mail(&mut tx, &caller, &view, path.workspace_id, &token).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Revokes at once; revoking twice (or a used one) is harmless.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace_id}/invitations/{invitation_id}", operation_id = "invitations_revoke", tag = "invitations", params(("workspace_id" = Uuid, Path), ("invitation_id" = Uuid, Path)), responses((status = 204)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<InvitationPath>,
) -> Result<StatusCode, ApiError> {
    let (mut tx, access) = state.open_workspace(&caller, path.workspace_id).await?;
    access.require_manager()?;
    sqlx::query!(
        "UPDATE invitations SET revoked_at = now()
         WHERE workspace_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        path.workspace_id,
        path.invitation_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in person with the invited (verified) address joins; accepting twice is harmless.
#[utoipa::path(post, path = "/v1/invitations/accept", operation_id = "invitations_accept", tag = "invitations", request_body = Acceptance, responses((status = 200, body = Accepted), (status = 409), (status = 410)))]
async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    extract::Json(input): extract::Json<Acceptance>,
) -> Result<Json<Accepted>, ApiError> {
    let token = input.token.trim();
    if token.len() != TOKEN_LEN
        || !token.starts_with(TOKEN_PREFIX)
        || !token.bytes().skip(4).all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ApiError::validation("token", "is not an invitation token"));
    }
    if caller.api_key.is_some() {
        return Err(ApiError::Forbidden("An invitation is accepted by a person, not an API key.".into()));
    }
    if caller.email.is_none() {
        return Err(ApiError::Forbidden(
            "Your sign-in carries no verified e-mail address to match the invitation.".into(),
        ));
    }
    let mut tx = state.open_personal(&caller).await?;
    let accepted = sqlx::query!(
        r#"SELECT outcome AS "outcome!", workspace_id, client_id, role FROM app.accept_invitation($1)"#,
        &api_key::hash_token(token)[..],
    )
    .fetch_one(&mut *tx)
    .await?;
    let (outcome, workspace_id, client_id, role) =
        (accepted.outcome, accepted.workspace_id, accepted.client_id, accepted.role);
    let gone = |code: &'static str, detail: &str| ApiError::Gone { code, detail: detail.to_owned() };
    match outcome.as_str() {
        "accepted" | "already" => {}
        "unknown" => return Err(ApiError::NotFound("invitation")),
        "revoked" => return Err(gone("invitation_revoked", "This invitation was revoked; ask for a new one.")),
        "expired" => return Err(gone("invitation_expired", "This invitation has expired; ask for a new one.")),
        "used" => {
            return Err(ApiError::Conflict {
                code: "invitation_used",
                detail: "This invitation was already accepted by someone else.".into(),
            });
        }
        _ => {
            return Err(ApiError::Denied {
                code: "invitation_email_mismatch",
                detail: "This invitation is for another e-mail address; sign in with the invited one.".into(),
            });
        }
    }
    tx.commit().await?;
    let workspace_id = workspace_id.ok_or_else(|| ApiError::internal("an accepted invitation without a workspace"))?;
    Ok(Json(Accepted { workspace_id, role, client_id }))
}

//! The statements that open a request's transaction (one simple-protocol batch, one round trip)
//! and what their answers mean.
//!
//! When the instance holds no token of the caller's rate limits ([`super::rate_limiter`]), the
//! batch first leases some in a short transaction of its own (`app.lease_rate_limit`), so a
//! bucket's row lock lasts microseconds, not the request; then BEGIN and the first statement of
//! the request's transaction:
//! `app.begin_request` for a person, `app.begin_key_request` for an API key. The simple protocol
//! takes no bind parameters, so every value is written as a literal that cannot carry SQL: ids as
//! UUIDs (hex digits and dashes), bytes and the strings from a token as hex.
//!
//! The two calls are statements prepared once per connection ([`PREPARE`], run when the pool
//! opens it) and run with `EXECUTE`: a simple-protocol statement is parsed, analysed and planned
//! every time it is sent, which cost about a quarter of the batch's database time (pgbench, the
//! same batch as prepared statements against as text).

use sqlx::Row as _;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::caller::Caller;
use crate::context::Quota;
use crate::error::ApiError;
use crate::plans::Feature;
use crate::role::Role;

/// What a route costs against the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    Standard,
    /// Also counted against the plan's smaller budget for expensive routes (AI runs, checkout).
    Expensive,
    /// A second transaction of a request that was counted when it opened its first.
    AlreadyCounted,
}

/// The workspace (and project) a route names.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub workspace: Uuid,
    pub project: Option<Uuid>,
    pub cost: Cost,
}

/// What the request's first statement learned about the caller in the workspace it entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A member's role (an API key's role for a key).
    pub member_role: Option<Role>,
    pub is_contact: bool,
    /// For a contact who is not also a member: whether the workspace's plan, as its overrides
    /// change it, opens the portal to them (the database's `app.feature_in_force`).
    pub portal_open: bool,
    /// Whether the caller can see the project asked about (true when none was).
    pub project_visible: bool,
}

/// The opening's statements, prepared on every connection of a pool that opens requests
/// (`shared::db::connect`). Their columns are what [`interpret`] reads.
pub const PREPARE: &str = "\
    PREPARE open_rate_lease(uuid, uuid, bytea, uuid, boolean, integer, integer) AS \
        SELECT rate_policy, quota, remaining, reset_seconds, allowed, retry_after, granted \
        FROM app.lease_rate_limit($1, $2, $3, $4, $5, $6, $7); \
    PREPARE open_request(uuid, text, text, text, text, uuid, uuid) AS \
        SELECT member_role, is_contact, portal_open, project_visible \
        FROM app.begin_request($1, $2, $3, $4, $5, $6, $7); \
    PREPARE open_key_request(uuid, bytea, text, uuid, uuid) AS \
        SELECT key_state, key_workspace, member_role, key_plan, api_access, project_visible \
        FROM app.begin_key_request($1, $2, $3, $4, $5)";

/// A lease the batch asks for: tokens handed back, and the most to take.
#[derive(Debug, Clone, Copy)]
pub struct LeaseAsked {
    pub returned: u32,
    pub most: u32,
}

pub fn batch(caller: &Caller, scope: Option<&Scope>, lease: Option<LeaseAsked>, request_id: Option<&str>) -> String {
    let text = |value: &str| format!("convert_from(decode('{}', 'hex'), 'UTF8')", hex::encode(value.as_bytes()));
    let uuid = |id: Option<Uuid>| id.map_or_else(|| "NULL".to_owned(), |id| format!("'{}'::uuid", id.hyphenated()));
    let workspace = uuid(scope.map(|s| s.workspace));
    let project = uuid(scope.and_then(|s| s.project));
    let request = request_id.map_or_else(|| "NULL".to_owned(), text);
    let (key, secret) = match &caller.api_key {
        Some(key) => (uuid(Some(key.id)), format!("decode('{}', 'hex')", hex::encode(key.secret_hash))),
        None => ("NULL".to_owned(), "NULL".to_owned()),
    };
    let mut batch = String::new();
    if let Some(LeaseAsked { returned, most }) = lease {
        let expensive = scope.is_some_and(|scope| scope.cost == Cost::Expensive);
        batch.push_str(&format!(
            "BEGIN; EXECUTE open_rate_lease({user}, {key}, {secret}, {workspace}, {expensive}, {returned}, {most}); COMMIT; ",
            user = uuid(Some(caller.user_id)),
        ));
    }
    if caller.api_key.is_some() {
        batch.push_str(&format!("BEGIN; EXECUTE open_key_request({key}, {secret}, {request}, {workspace}, {project})"));
    } else {
        let email = caller.email.as_deref().map_or_else(|| "NULL".to_owned(), text);
        batch.push_str(&format!(
            "BEGIN; EXECUTE open_request({user}, {issuer}, {subject}, {email}, {request}, {workspace}, {project})",
            user = uuid(Some(caller.user_id)),
            issuer = text(&caller.issuer),
            subject = text(&caller.subject),
        ));
    }
    batch
}

/// What the batch answered: the lease, when one was asked for, and the caller's entry, or why
/// the caller is refused (a key that no longer works). A lease granted to a request refused
/// for its key is still the instance's to spend, so the two are read apart.
#[derive(Debug)]
pub struct Opened {
    pub lease: Option<LeaseAnswer>,
    pub entry: Result<Option<Entry>, ApiError>,
}

/// The database's answer to a lease: every limit that applied as the lease left it, the tokens
/// granted, and when to retry if none was. No answer at all: the caller is not counted (a
/// stranger, a contact refused for the plan, a key that no longer works), and the opening's own
/// answer refuses them.
#[derive(Debug)]
pub struct LeaseAnswer {
    pub quotas: Vec<Quota>,
    pub granted: u32,
    pub retry_after: Option<u32>,
}

/// Reads the batch's answers; the entry refuses a request made with a key that is no longer
/// good (401, or 404 for another workspace's route, or 402 on a plan without API access).
pub fn interpret(rows: &[PgRow]) -> Result<Opened, ApiError> {
    let mut opened = Opened { lease: None, entry: Ok(None) };
    for row in rows {
        if row.try_column("rate_policy").is_ok() {
            let number = |name: &str| row.try_get::<i32, _>(name).map(|n| u32::try_from(n).unwrap_or(0));
            let lease = opened.lease.get_or_insert(LeaseAnswer {
                quotas: Vec::new(),
                granted: number("granted")?,
                retry_after: None,
            });
            lease.quotas.push(Quota {
                policy: row.try_get("rate_policy")?,
                quota: number("quota")?,
                remaining: number("remaining")?,
                reset: number("reset_seconds")?,
            });
            if !row.try_get::<bool, _>("allowed")? {
                lease.retry_after = Some(number("retry_after")?);
            }
        } else if row.try_column("key_state").is_ok() {
            opened.entry = key_entry(row).map(Some);
        } else {
            opened.entry = Ok(Some(Entry {
                member_role: role(row)?,
                is_contact: row.try_get("is_contact")?,
                portal_open: row.try_get::<Option<bool>, _>("portal_open")?.unwrap_or(false),
                project_visible: row.try_get("project_visible")?,
            }));
        }
    }
    Ok(opened)
}

/// The refusal of a request whose limit is spent: nothing was written.
pub fn rate_limited(retry_after: u32) -> ApiError {
    crate::metrics::count("RateLimited", None);
    ApiError::RateLimited { retry_after, detail: format!("Too many requests; retry in {retry_after} seconds.") }
}

/// The answer's `member_role`, as the enum (the database answers it as text).
fn role(row: &PgRow) -> Result<Option<Role>, ApiError> {
    match row.try_get::<Option<String>, _>("member_role")? {
        Some(name) => Role::parse(&name)
            .map(Some)
            .ok_or_else(|| ApiError::Internal(format!("unknown member role {name:?}").into())),
        None => Ok(None),
    }
}

fn key_entry(row: &PgRow) -> Result<Entry, ApiError> {
    let rejected = |code: &'static str, detail: &str| ApiError::ApiKeyRejected { code, detail: detail.to_owned() };
    match row.try_get::<String, _>("key_state")?.as_str() {
        "active" => {}
        "unknown" => return Err(rejected("api_key_unknown", "No such API key.")),
        "revoked" => return Err(rejected("api_key_revoked", "This API key was revoked.")),
        "expired" => return Err(rejected("api_key_expired", "This API key has expired.")),
        "creator_lacks_role" => {
            return Err(rejected(
                "api_key_creator_lacks_role",
                "This API key's creator is no longer a member with the key's role; an owner or admin can issue a new key.",
            ));
        }
        "suspended" => return Err(crate::error::suspended()),
        // A key acts inside its own workspace only; another one does not exist for it.
        _ => return Err(ApiError::NotFound("workspace")),
    }
    if row.try_get::<Option<bool>, _>("api_access")? != Some(true) {
        let plan = crate::plans::by_id(row.try_get::<Option<String>, _>("key_plan")?.as_deref().unwrap_or("free"));
        return Err(Feature::ApiAccess.not_in_plan(plan.name));
    }
    Ok(Entry {
        member_role: role(row)?,
        is_contact: false,
        portal_open: false,
        project_visible: row.try_get("project_visible")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything between quotes is a UUID or hex digits (or one of the fixed words).
    fn assert_only_safe_literals(sql: &str) {
        for (i, literal) in sql.split('\'').enumerate().filter(|(i, _)| i % 2 == 1) {
            assert!(
                literal.chars().all(|c| c.is_ascii_hexdigit() || c == '-') || ["hex", "UTF8"].contains(&literal),
                "literal {i}: {literal}"
            );
        }
    }

    #[test]
    fn the_opening_batch_carries_only_uuids_and_hex() {
        let caller = Caller::new("https://issuer.example/".into(), "sub'); DROP TABLE users; --".into(), None);
        let sql = batch(&caller, None, None, Some("req'; --"));
        assert!(!sql.contains("DROP TABLE") && !sql.contains("req'"), "{sql}");
        assert!(sql.contains(&caller.user_id.hyphenated().to_string()));
        assert!(sql.ends_with("NULL, NULL)"), "no workspace or project is NULL: {sql}");
        assert!(!sql.contains("open_rate_lease"), "a request spending a lease it holds asks for none");
        let leasing = batch(&caller, None, Some(LeaseAsked { returned: 3, most: 32 }), None);
        assert!(
            leasing.starts_with("BEGIN; EXECUTE open_rate_lease(") && leasing.contains(", false, 3, 32); COMMIT; ")
        );
        assert_only_safe_literals(&sql);

        let scope = Scope { workspace: Uuid::now_v7(), project: Some(Uuid::now_v7()), cost: Cost::Expensive };
        let key = crate::auth::api_key::generate().unwrap();
        let key_caller = Caller::for_api_key(crate::auth::api_key::parse(&key.text).unwrap());
        let sql = batch(&key_caller, Some(&scope), Some(LeaseAsked { returned: 0, most: 1 }), None);
        assert!(
            sql.starts_with("BEGIN; EXECUTE open_rate_lease(")
                && sql.contains("; COMMIT; BEGIN; EXECUTE open_key_request(")
        );
        assert!(sql.contains(", true, 0, 1); COMMIT;"), "expensive: {sql}");
        assert!(!sql.contains(&key.text[4..]), "the key's text never reaches SQL, only its hash");
        assert_only_safe_literals(&sql);
    }
}

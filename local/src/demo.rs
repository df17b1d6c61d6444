//! A demo workspace with fixed ids, so `events/` and the curl examples in docs/ work against it.
//! Seeding runs through the same RLS-scoped transactions as the API, as each demo user.

use shared::auth::Caller;
use shared::db::TenantTx;
use sqlx::PgPool;
use uuid::{Uuid, uuid};

pub const ISSUER: &str = shared::config::DEFAULT_HS256_ISSUER;
pub const WORKSPACE_ID: Uuid = uuid!("01935c00-0000-7000-8000-000000000001");
pub const CLIENT_ID: Uuid = uuid!("01935c00-0000-7000-8000-000000000002");
pub const PROJECT_ID: Uuid = uuid!("01935c00-0000-7000-8000-000000000003");
pub const MILESTONE_ID: Uuid = uuid!("01935c00-0000-7000-8000-000000000004");
pub const DELIVERABLE_ID: Uuid = uuid!("01935c00-0000-7000-8000-000000000005");
pub const COMMENT_ID: Uuid = uuid!("01935c00-0000-7000-8000-000000000006");
/// The demo's Studio subscription and its customer, in the database and in the local Stripe.
pub const SUBSCRIPTION_ID: &str = "sub_demo";
pub const CUSTOMER_ID: &str = "cus_demo";

/// (subject, e-mail, role in the demo workspace; None for the client contact)
pub const USERS: [(&str, &str, Option<&str>); 5] = [
    ("demo-owner", "owner@demo.test", Some("owner")),
    ("demo-admin", "admin@demo.test", Some("admin")),
    ("demo-member", "member@demo.test", Some("member")),
    ("demo-viewer", "viewer@demo.test", Some("viewer")),
    ("demo-client", "client@acme.test", None),
];

pub fn caller(subject: &str, email: &str) -> Caller {
    Caller::new(ISSUER.to_owned(), subject.to_owned(), Some(email.to_owned()))
}

/// Creates the demo data once; running it again changes nothing. `pool` is the API role's;
/// `service` (the worker role) records the demo's Studio subscription, as the billing worker
/// would after a checkout.
pub async fn seed(pool: &PgPool, service: &PgPool) -> Result<bool, sqlx::Error> {
    // Every demo user signs in once, which creates their user row.
    for (subject, email, _) in USERS {
        TenantTx::begin(pool, &caller(subject, email)).await.map_err(into_sqlx)?.commit().await.map_err(into_sqlx)?;
    }
    let (owner_sub, owner_email, _) = USERS[0];
    let mut tx = TenantTx::begin(pool, &caller(owner_sub, owner_email)).await.map_err(into_sqlx)?;
    let exists: bool =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1) AS "exists!""#, WORKSPACE_ID)
            .fetch_one(&mut *tx)
            .await?;
    if exists {
        return Ok(false);
    }
    sqlx::query!("SELECT app.create_workspace($1, 'Demo Studio')", WORKSPACE_ID).execute(&mut *tx).await?;
    tx.commit().await.map_err(into_sqlx)?;
    sqlx::query!(
        "INSERT INTO subscriptions (workspace_id, stripe_subscription_id, stripe_customer_id, plan_id, status,
                                    current_period_end, last_event_created, last_event_id, monthly_amount, currency)
         VALUES ($1, $2, $3, 'studio', 'active', now() + interval '30 days', now(), 'evt_demo_seed', 9900, 'usd')
         ON CONFLICT (workspace_id) DO NOTHING",
        WORKSPACE_ID,
        SUBSCRIPTION_ID,
        CUSTOMER_ID,
    )
    .execute(service)
    .await?;
    sqlx::query!(
        "UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL",
        WORKSPACE_ID,
        CUSTOMER_ID,
    )
    .execute(service)
    .await?;
    let mut tx = TenantTx::begin(pool, &caller(owner_sub, owner_email)).await.map_err(into_sqlx)?;
    for (subject, email, role) in USERS {
        let user_id = caller(subject, email).user_id;
        match role {
            Some("owner") => {}
            Some(role) => {
                sqlx::query!(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, $3::text::member_role)",
                    WORKSPACE_ID,
                    user_id,
                    role,
                )
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query!(
                    "INSERT INTO clients (id, workspace_id, name, email) VALUES ($1, $2, 'Acme Corp', 'hello@acme.test')",
                    CLIENT_ID,
                    WORKSPACE_ID,
                )
                    .execute(&mut *tx)
                    .await?;
                sqlx::query!(
                    "INSERT INTO client_contacts (workspace_id, client_id, user_id) VALUES ($1, $2, $3)",
                    WORKSPACE_ID,
                    CLIENT_ID,
                    user_id,
                )
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    sqlx::query!(
        "INSERT INTO projects (id, workspace_id, client_id, name, description, status, due_date, created_by)
         VALUES ($1, $2, $3, 'Website redesign', 'New marketing site for Acme.', 'active', current_date + 30,
                 app.current_user_id())",
        PROJECT_ID,
        WORKSPACE_ID,
        CLIENT_ID,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO milestones (id, workspace_id, project_id, title, due_date)
         VALUES ($1, $2, $3, 'Wireframes approved', current_date + 10)",
        MILESTONE_ID,
        WORKSPACE_ID,
        PROJECT_ID,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO deliverables (id, workspace_id, project_id, milestone_id, title, url, status, client_visible)
         VALUES ($1, $2, $3, $4, 'Homepage wireframe', 'https://files.demo.test/home.pdf', 'in_review', true)",
        DELIVERABLE_ID,
        WORKSPACE_ID,
        PROJECT_ID,
        MILESTONE_ID,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible)
         VALUES ($1, $2, $3, app.current_user_id(), 'First draft is up for review.', true)",
        COMMENT_ID,
        WORKSPACE_ID,
        PROJECT_ID,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await.map_err(into_sqlx)?;
    Ok(true)
}

fn into_sqlx(error: shared::ApiError) -> sqlx::Error {
    match error {
        shared::ApiError::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

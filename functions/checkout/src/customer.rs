//! Exactly one Stripe customer per workspace, even under concurrent checkouts: the workspace row
//! is locked while the customer is looked up and, if missing, created with an idempotency key
//! derived from the workspace id (so a crash between Stripe's answer and our commit, retried,
//! gets the same customer back from Stripe).

use shared::ApiError;
use shared::auth::Caller;
use shared::billing::stripe_failure;
use shared::db::TenantTx;
use shared::stripe::{StripeClient, text};
use stripe_core::customer::CreateCustomer;
use uuid::Uuid;

pub async fn ensure(
    tx: &mut TenantTx,
    stripe: &StripeClient,
    workspace_id: Uuid,
    caller: &Caller,
) -> Result<String, ApiError> {
    let workspace =
        sqlx::query!("SELECT stripe_customer_id, name FROM workspaces WHERE id = $1 FOR NO KEY UPDATE", workspace_id)
            .fetch_one(&mut **tx)
            .await?;
    let name = workspace.name;
    if let Some(customer) = workspace.stripe_customer_id {
        return Ok(customer);
    }
    let mut request = CreateCustomer::new()
        .name(name)
        .metadata(std::collections::HashMap::from([("workspace_id".to_owned(), workspace_id.to_string())]));
    if let Some(email) = &caller.email {
        request = request.email(email.clone());
    }
    let customer = stripe.post(request, &format!("customer:{workspace_id}")).await.map_err(stripe_failure)?;
    let customer = text(&customer, "id").map_err(stripe_failure)?;
    sqlx::query!("UPDATE workspaces SET stripe_customer_id = $2 WHERE id = $1", workspace_id, &customer,)
        .execute(&mut **tx)
        .await?;
    tracing::info!(%customer, "Stripe customer created");
    Ok(customer)
}

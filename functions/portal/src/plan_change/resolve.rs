//! A plan change resolved against the workspace and Stripe: what the subscription is now, what
//! it becomes, and when. Both the preview and the confirmation resolve, so the confirmation
//! sees whatever changed in between.

use shared::ApiError;
use shared::billing::{BillingState, stripe_failure};
use shared::db::TenantTx;
use shared::plans::{self, Interval, Plan};
use shared::stripe::{StripeError, id_of, text};
use stripe_billing::subscription::RetrieveSubscription;
use uuid::Uuid;

use super::Effective;
use super::blockers::downgrade_blockers;
use crate::subscription::LIVE;

pub struct Change {
    pub subscription: String,
    pub customer: String,
    /// The subscription's plan item, and what it is now.
    pub item: String,
    pub from_price: String,
    pub from_quantity: u64,
    pub period_start: i64,
    pub period_end: i64,
    /// A schedule already managing the subscription (a downgrade waiting for the period's end).
    pub schedule: Option<String>,
    /// The prices of the subscription's other items (the metered AI overage price): a schedule's
    /// phases list every item, so they are carried into both.
    pub other_prices: Vec<String>,
    /// Whether Stripe Tax computes the subscription's tax: a scheduled phase keeps it.
    pub automatic_tax: bool,
    /// The subscription is in Stripe's classic billing mode and the change would leave its items
    /// at different intervals (a yearly plan beside the monthly metered overage), which only
    /// the flexible mode allows: it is migrated first (and previewed as migrated).
    pub needs_flexible_billing: bool,
    pub interval: Interval,
    pub price: String,
    pub quantity: u64,
    pub effective: Effective,
}

impl Change {
    /// The subscription already renews at the target's price: nothing to change (seats follow
    /// the workspace's members on their own).
    pub fn is_current(&self) -> bool {
        self.price == self.from_price
    }

    /// When the change takes effect: `proration_date` for one applied now, the period's end for
    /// one scheduled.
    pub fn takes_effect(&self, proration_date: Option<i64>) -> i64 {
        match self.effective {
            Effective::Now => proration_date.unwrap_or(self.period_start),
            Effective::PeriodEnd => self.period_end,
        }
    }
}

/// A place in the catalog: later is bigger.
fn rank(plan: &Plan) -> usize {
    plans::CATALOG.iter().position(|p| p.id == plan.id).unwrap_or(0)
}

/// A bigger plan applies now (prorated, invoiced at once), a smaller one at the period's end;
/// on the same plan, moving to yearly applies now (Stripe restarts the period and credits what
/// is left of the month), moving to monthly at the end of the paid year.
fn when(current: &Plan, target: &Plan, from: Option<Interval>, to: Interval) -> Effective {
    match rank(target).cmp(&rank(current)) {
        std::cmp::Ordering::Greater => Effective::Now,
        std::cmp::Ordering::Less => Effective::PeriodEnd,
        std::cmp::Ordering::Equal if to == Interval::Year && from != Some(Interval::Year) => Effective::Now,
        std::cmp::Ordering::Equal => Effective::PeriodEnd,
    }
}

/// Resolves a change of the workspace's live subscription to `target` (at `interval`, or the
/// subscription's own): refused while the workspace uses more than a smaller plan allows.
/// `tx` is the caller's, already checked for a manager; it is committed before Stripe is asked.
pub async fn resolve(
    state: &BillingState,
    mut tx: TenantTx,
    workspace_id: Uuid,
    target: Plan,
    interval: Option<Interval>,
) -> Result<Change, ApiError> {
    let current = sqlx::query!(
        "SELECT stripe_subscription_id, plan_id FROM subscriptions WHERE workspace_id = $1 AND status = ANY($2)",
        workspace_id,
        &LIVE[..] as &[&str],
    )
    .fetch_optional(&mut *tx)
    .await?;
    let current = current.ok_or_else(|| ApiError::Conflict {
        code: "no_subscription",
        detail: "The workspace has no live subscription; start one with checkout.".into(),
    })?;
    let current_plan = plans::by_id(&current.plan_id);
    if rank(&target) < rank(&current_plan) {
        let blockers = downgrade_blockers(&mut tx, workspace_id, target).await?;
        if !blockers.is_empty() {
            return Err(ApiError::Blocked {
                code: "downgrade_blocked",
                detail: format!(
                    "The workspace uses more than the {} plan allows; see `errors` for what to remove first.",
                    target.name
                ),
                errors: blockers,
            });
        }
    }
    let quantity = shared::billing::quantity_to_buy(&mut tx, workspace_id, &target).await?;
    tx.commit().await?;

    let subscription = current.stripe_subscription_id;
    let held = state.stripe.get(RetrieveSubscription::new(subscription.as_str())).await.map_err(missing_or_failure)?;
    let unexpected = |what: &str| stripe_failure(StripeError::Unexpected(format!("a subscription without its {what}")));
    let item = shared::stripe::plan_item(&held).ok_or_else(|| unexpected("item"))?;
    let (Ok(item_id), Some(from_price)) = (text(item, "id"), item["price"]["id"].as_str()) else {
        return Err(unexpected("item"));
    };
    let (Some(period_start), Some(period_end)) = (
        item["current_period_start"].as_i64().or_else(|| held["current_period_start"].as_i64()),
        item["current_period_end"].as_i64().or_else(|| held["current_period_end"].as_i64()),
    ) else {
        return Err(unexpected("period"));
    };
    let customer = held.get("customer").and_then(id_of).ok_or_else(|| unexpected("customer"))?;
    let from_interval = item["price"]["recurring"]["interval"].as_str().and_then(Interval::from_stripe);
    let interval = interval.or(from_interval).unwrap_or(Interval::Month);
    let price = shared::billing::price_id(&state.stripe, &target, interval).await?;
    // The subscription's items beside the plan's (the metered overage price).
    let others: Vec<&serde_json::Value> =
        held["items"]["data"].as_array().into_iter().flatten().filter(|other| other["id"] != item["id"]).collect();
    Ok(Change {
        subscription,
        customer,
        item: item_id,
        from_price: from_price.to_owned(),
        from_quantity: item["quantity"].as_u64().unwrap_or(1),
        period_start,
        period_end,
        schedule: held.get("schedule").and_then(id_of),
        other_prices: others.iter().filter_map(|other| other["price"]["id"].as_str().map(str::to_owned)).collect(),
        automatic_tax: held["automatic_tax"]["enabled"] == true,
        needs_flexible_billing: held["billing_mode"]["type"] != "flexible"
            && others.iter().any(|other| other["price"]["recurring"]["interval"].as_str() != Some(interval.as_str())),
        effective: when(&current_plan, &target, from_interval, interval),
        interval,
        price,
        quantity,
    })
}

fn missing_or_failure(error: StripeError) -> ApiError {
    if error.is_missing() {
        return ApiError::Conflict {
            code: "no_subscription",
            detail: "Stripe no longer has this subscription; the workspace's billing will catch up.".into(),
        };
    }
    stripe_failure(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::plans::{PRO, STUDIO, TEAM};

    #[test]
    fn bigger_plans_and_yearly_billing_apply_now_the_rest_at_the_period_end() {
        let (month, year) = (Interval::Month, Interval::Year);
        assert_eq!(when(&PRO, &STUDIO, Some(month), month), Effective::Now);
        assert_eq!(when(&PRO, &TEAM, Some(year), month), Effective::Now);
        assert_eq!(when(&STUDIO, &PRO, Some(month), year), Effective::PeriodEnd);
        assert_eq!(when(&PRO, &PRO, Some(month), year), Effective::Now);
        assert_eq!(when(&PRO, &PRO, Some(year), month), Effective::PeriodEnd);
    }
}

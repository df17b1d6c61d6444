//! What a plan change asks of Stripe: the invoice preview of exactly that change, and the
//! change itself (an update now, prorated at the preview's pinned date; or a schedule whose
//! next phase starts at the period's end).

use serde_json::Value;
use shared::ApiError;
use shared::billing::{BillingState, stripe_failure};
use shared::stripe::text;
use stripe_billing::SubscriptionScheduleEndBehavior;
use stripe_billing::invoice::{
    CreatePreviewInvoice, CreatePreviewInvoiceSubscriptionDetails, CreatePreviewInvoiceSubscriptionDetailsBillingMode,
    CreatePreviewInvoiceSubscriptionDetailsBillingModeType, CreatePreviewInvoiceSubscriptionDetailsItems,
    CreatePreviewInvoiceSubscriptionDetailsProrationBehavior,
};
use stripe_billing::subscription::{
    MigrateSubscription, MigrateSubscriptionBillingMode, MigrateSubscriptionBillingModeType, UpdateSubscription,
    UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};
use stripe_billing::subscription_schedule::{
    CreateSubscriptionSchedule, ReleaseSubscriptionSchedule, UpdateSubscriptionSchedule,
    UpdateSubscriptionSchedulePhases, UpdateSubscriptionSchedulePhasesAutomaticTax,
    UpdateSubscriptionSchedulePhasesEndDate, UpdateSubscriptionSchedulePhasesItems,
    UpdateSubscriptionSchedulePhasesStartDate,
};
use uuid::Uuid;

use super::Effective;
use super::resolve::Change;

/// Stripe's invoice for the change: for one applied now, the invoice it creates at once (the
/// prorations at `proration_date`); for one at the period's end, the first invoice at the new
/// price. Tax is computed as the subscription computes it (its own automatic tax).
pub async fn preview(state: &BillingState, change: &Change, proration_date: Option<i64>) -> Result<Value, ApiError> {
    let mut item = CreatePreviewInvoiceSubscriptionDetailsItems::new();
    item.id = Some(change.item.clone());
    item.price = Some(change.price.clone());
    item.quantity = Some(change.quantity);
    let mut details = CreatePreviewInvoiceSubscriptionDetails::new();
    details.items = Some(vec![item]);
    details.proration_behavior = Some(match change.effective {
        Effective::Now => CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::AlwaysInvoice,
        Effective::PeriodEnd => CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::None,
    });
    details.proration_date = proration_date.filter(|_| change.effective == Effective::Now);
    if change.needs_flexible_billing {
        details.billing_mode = Some(CreatePreviewInvoiceSubscriptionDetailsBillingMode::new(
            CreatePreviewInvoiceSubscriptionDetailsBillingModeType::Flexible,
        ));
    }
    let request = CreatePreviewInvoice::new()
        .customer(change.customer.as_str())
        .subscription(change.subscription.as_str())
        .subscription_details(details);
    // A preview creates nothing: each asks anew.
    let key = format!("change-preview:{}:{}", change.subscription, Uuid::new_v4());
    state.stripe.post(request, &key).await.map_err(stripe_failure)
}

/// Moves a classic-mode subscription to flexible billing when the change needs it (one-way, as
/// Stripe recommends for every subscription).
async fn migrate_if_needed(
    state: &BillingState,
    change: &Change,
    key: &impl Fn(&str) -> String,
) -> Result<(), ApiError> {
    if !change.needs_flexible_billing {
        return Ok(());
    }
    let mode = MigrateSubscriptionBillingMode::new(MigrateSubscriptionBillingModeType::Flexible);
    let request = MigrateSubscription::new(change.subscription.as_str(), mode);
    state.stripe.post(request, &key("migrate")).await.map_err(stripe_failure)?;
    Ok(())
}

/// Applies the change now: the plan item's price and quantity, prorated as of `proration_date`
/// (the preview's) and invoiced at once. A downgrade waiting for the period's end gives way.
pub async fn apply_now(
    state: &BillingState,
    change: &Change,
    proration_date: i64,
    key: &impl Fn(&str) -> String,
) -> Result<(), ApiError> {
    migrate_if_needed(state, change, key).await?;
    if let Some(schedule) = &change.schedule {
        state
            .stripe
            .post(ReleaseSubscriptionSchedule::new(schedule.as_str()), &key("release"))
            .await
            .map_err(stripe_failure)?;
    }
    let mut item = UpdateSubscriptionItems::new();
    item.id = Some(change.item.clone());
    item.price = Some(change.price.clone());
    item.quantity = Some(change.quantity);
    let request = UpdateSubscription::new(change.subscription.as_str())
        .items(vec![item])
        .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice)
        .proration_date(proration_date);
    state.stripe.post(request, &key("upgrade")).await.map_err(stripe_failure)?;
    Ok(())
}

/// Schedules the change for the period's end: the current phase kept until then, the new price
/// after it (with the subscription's other items and automatic tax), then the schedule released.
pub async fn schedule_at_period_end(
    state: &BillingState,
    change: &Change,
    key: &impl Fn(&str) -> String,
) -> Result<String, ApiError> {
    migrate_if_needed(state, change, key).await?;
    let schedule = match &change.schedule {
        Some(schedule) => schedule.clone(),
        None => {
            let created = CreateSubscriptionSchedule::new().from_subscription(change.subscription.as_str());
            let created = state.stripe.post(created, &key("schedule")).await.map_err(stripe_failure)?;
            text(&created, "id").map_err(stripe_failure)?
        }
    };
    // A phase's items replace the subscription's: the other items (the metered overage price,
    // which takes no quantity) are listed in both phases, or Stripe would drop them.
    let phase = |price: &str, quantity: u64| {
        let mut item = UpdateSubscriptionSchedulePhasesItems::new();
        item.price = Some(price.to_owned());
        item.quantity = Some(quantity);
        let others = change.other_prices.iter().map(|price| {
            let mut other = UpdateSubscriptionSchedulePhasesItems::new();
            other.price = Some(price.clone());
            other
        });
        let mut phase = UpdateSubscriptionSchedulePhases::new(std::iter::once(item).chain(others).collect::<Vec<_>>());
        phase.automatic_tax = Some(UpdateSubscriptionSchedulePhasesAutomaticTax::new(change.automatic_tax));
        phase
    };
    let mut now = phase(&change.from_price, change.from_quantity);
    now.start_date = Some(UpdateSubscriptionSchedulePhasesStartDate::Timestamp(change.period_start));
    now.end_date = Some(UpdateSubscriptionSchedulePhasesEndDate::Timestamp(change.period_end));
    let request = UpdateSubscriptionSchedule::new(schedule.as_str())
        .end_behavior(SubscriptionScheduleEndBehavior::Release)
        .phases(vec![now, phase(&change.price, change.quantity)]);
    state.stripe.post(request, &key("downgrade")).await.map_err(stripe_failure)?;
    Ok(schedule)
}

//! The parts of a Stripe event the worker reads, read tolerantly from JSON: an event from a
//! newer API version that adds or moves fields must still be applied, not dropped.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Value,
}

impl StripeEvent {
    pub fn created_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.created).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

pub use crate::stripe::{id_of, plan_item};

pub fn workspace_id_in_metadata(object: &Value) -> Option<Uuid> {
    object.pointer("/metadata/workspace_id").and_then(Value::as_str).and_then(|id| id.parse().ok())
}

/// A subscription object, as far as entitlements need it.
#[derive(Debug)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: String,
    pub workspace_id: Option<Uuid>,
    pub lookup_key: Option<String>,
    pub current_period_start: Option<OffsetDateTime>,
    pub current_period_end: Option<OffsetDateTime>,
    /// The plan price's recurring interval (`None` for one the catalog does not sell).
    pub interval: Option<crate::plans::Interval>,
    pub cancel_at_period_end: bool,
    /// When Stripe created the subscription.
    pub created: Option<OffsetDateTime>,
    pub trial_end: Option<OffsetDateTime>,
    /// What its items cost per month, in the currency's smallest unit, if every item says.
    pub monthly_amount: Option<i64>,
    /// What each renewal charges (its items per period), if every item says and all renew at
    /// the same interval.
    pub period_amount: Option<i64>,
    pub currency: Option<String>,
    /// The plan's item (the first one not billed by metered usage) and its quantity: the
    /// seats bought, on a per-seat plan.
    pub item_id: Option<String>,
    pub quantity: Option<i32>,
    /// What one AI run beyond the quota costs (the metered overage item's price, a decimal in
    /// the currency's smallest unit), when the subscription has that item.
    pub overage_unit_amount: Option<String>,
}

impl Subscription {
    pub fn from_object(object: &Value) -> Option<Self> {
        let first_item = plan_item(object);
        // Newer API versions moved the period from the subscription to its items.
        let period = |field: &str| {
            object
                .get(field)
                .and_then(Value::as_i64)
                .or_else(|| first_item.and_then(|item| item.get(field)).and_then(Value::as_i64))
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        };
        Some(Self {
            id: object.get("id")?.as_str()?.to_owned(),
            customer: id_of(object.get("customer")?)?,
            status: object.get("status")?.as_str()?.to_owned(),
            workspace_id: workspace_id_in_metadata(object),
            lookup_key: first_item
                .and_then(|item| item.pointer("/price/lookup_key"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            current_period_start: period("current_period_start"),
            current_period_end: period("current_period_end"),
            interval: first_item
                .and_then(|item| item.pointer("/price/recurring/interval"))
                .and_then(Value::as_str)
                .and_then(crate::plans::Interval::from_stripe),
            cancel_at_period_end: object.get("cancel_at_period_end").and_then(Value::as_bool).unwrap_or(false),
            created: timestamp(object.get("created")),
            trial_end: timestamp(object.get("trial_end")),
            monthly_amount: monthly_amount(object),
            period_amount: period_amount(object),
            currency: first_item
                .and_then(|item| item.pointer("/price/currency"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            item_id: first_item.and_then(|item| item.get("id")).and_then(Value::as_str).map(str::to_owned),
            overage_unit_amount: overage_unit_amount(object),
            quantity: first_item
                .and_then(|item| item.get("quantity"))
                .and_then(Value::as_i64)
                .and_then(|q| i32::try_from(q).ok()),
        })
    }

    /// Canceled and expired subscriptions never come back; every other status may still change.
    pub fn has_ended(status: &str) -> bool {
        matches!(status, "canceled" | "incomplete_expired")
    }
}

fn timestamp(value: Option<&Value>) -> Option<OffsetDateTime> {
    value.and_then(crate::stripe::timestamp)
}

/// The items' recurring prices times their quantities, per month (rounded to the unit). `None`
/// if an item has no amount (metered or tiered prices) or an interval not known here.
fn monthly_amount(object: &Value) -> Option<i64> {
    let items = object.pointer("/items/data")?.as_array()?;
    let mut total = 0f64;
    for item in items {
        let price = item.get("price")?;
        // Metered prices bill usage, not a recurring amount.
        if price.pointer("/recurring/usage_type").and_then(Value::as_str) == Some("metered") {
            continue;
        }
        let amount = price.get("unit_amount")?.as_i64()? as f64;
        let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1) as f64;
        let every = price.pointer("/recurring/interval_count").and_then(Value::as_i64).unwrap_or(1).max(1) as f64;
        let months = match price.pointer("/recurring/interval").and_then(Value::as_str)? {
            "day" => every * 12.0 / 365.0,
            "week" => every * 12.0 / 52.0,
            "month" => every,
            "year" => every * 12.0,
            _ => return None,
        };
        total += amount * quantity / months;
    }
    Some(total.round() as i64)
}

/// The unit amount of the item billing AI runs beyond the quota (its price's lookup key), as a
/// decimal string; `None` without such an item or amount.
fn overage_unit_amount(object: &Value) -> Option<String> {
    let items = object.pointer("/items/data")?.as_array()?;
    let price = items
        .iter()
        .map(|item| &item["price"])
        .find(|price| price["lookup_key"].as_str() == Some(crate::plans::AI_OVERAGE_LOOKUP_KEY))?;
    let amount = price["unit_amount_decimal"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| price["unit_amount"].as_i64().map(|a| a.to_string()))?;
    // A decimal Postgres can read, nothing else.
    let plain = !amount.is_empty()
        && amount.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && amount.matches('.').count() <= 1;
    plain.then_some(amount)
}

/// The licensed items' prices times their quantities, per period: what a renewal charges before
/// prorations, discounts and tax. `None` if an amount is missing or the items renew at different
/// intervals.
fn period_amount(object: &Value) -> Option<i64> {
    let items = object.pointer("/items/data")?.as_array()?;
    let mut interval = None;
    let mut total = 0i64;
    for item in items {
        let price = item.get("price")?;
        if price.pointer("/recurring/usage_type").and_then(Value::as_str) == Some("metered") {
            continue;
        }
        let every = (price.pointer("/recurring/interval")?.as_str()?, price.pointer("/recurring/interval_count"));
        let every = (every.0, every.1.and_then(Value::as_i64).unwrap_or(1));
        if interval.replace(every).is_some_and(|seen| seen != every) {
            return None;
        }
        let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1);
        total = total.checked_add(price.get("unit_amount")?.as_i64()?.checked_mul(quantity)?)?;
    }
    Some(total)
}

/// The customer an event is about: the object's `customer`, or the customer object itself.
pub fn customer_of(kind: &str, object: &Value) -> Option<String> {
    if kind.starts_with("customer.") && !kind.starts_with("customer.subscription.") {
        return object.get("id").and_then(id_of);
    }
    object.get("customer").and_then(id_of)
}

/// The subscription an invoice belongs to, where older and newer API versions put it.
pub fn invoice_subscription(object: &Value) -> Option<String> {
    object
        .get("subscription")
        .and_then(id_of)
        .or_else(|| object.pointer("/parent/subscription_details/subscription").and_then(id_of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_period_where_either_api_version_puts_it() {
        let old = json!({"id": "sub_1", "customer": "cus_1", "status": "active", "current_period_end": 1_800_000_000});
        let new = json!({"id": "sub_1", "customer": {"id": "cus_1"}, "status": "active",
                         "items": {"data": [{"current_period_end": 1_800_000_000, "price": {"lookup_key": "pro_monthly"}}]}});
        assert_eq!(
            Subscription::from_object(&old).unwrap().current_period_end,
            Subscription::from_object(&new).unwrap().current_period_end
        );
        let new = Subscription::from_object(&new).unwrap();
        assert_eq!((new.customer.as_str(), new.lookup_key.as_deref()), ("cus_1", Some("pro_monthly")));
    }

    #[test]
    fn the_plan_is_the_item_not_billed_by_usage() {
        let sub = json!({"id": "sub_1", "customer": "cus_1", "status": "active", "items": {"data": [
            {"id": "si_meter", "price": {"lookup_key": "ai_usage", "recurring": {"usage_type": "metered"}}},
            {"id": "si_seats", "quantity": 7, "price": {"lookup_key": "team_seat_monthly",
                                                        "recurring": {"usage_type": "licensed"}}}]}});
        let read = Subscription::from_object(&sub).unwrap();
        assert_eq!(read.lookup_key.as_deref(), Some("team_seat_monthly"));
        assert_eq!((read.item_id.as_deref(), read.quantity), (Some("si_seats"), Some(7)));
        assert_eq!(read.overage_unit_amount, None, "a meter without the overage price's key");
        let with_overage = json!({"id": "sub_1", "customer": "cus_1", "status": "active", "items": {"data": [
            {"id": "si_plan", "price": {"lookup_key": "pro_monthly", "unit_amount": 2900}},
            {"id": "si_over", "price": {"lookup_key": "ai_overage_run", "unit_amount_decimal": "12.5",
                                        "recurring": {"usage_type": "metered"}}}]}});
        let read = Subscription::from_object(&with_overage).unwrap();
        assert_eq!((read.item_id.as_deref(), read.overage_unit_amount.as_deref()), (Some("si_plan"), Some("12.5")));
    }

    #[test]
    fn the_monthly_amount_sums_the_items_per_month() {
        let item = |amount: i64, quantity: i64, interval: &str, count: i64| {
            json!({"quantity": quantity, "price": {"unit_amount": amount, "currency": "eur",
                   "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"}}})
        };
        let sub = |items: Vec<Value>| {
            json!({"id": "sub_1", "customer": "cus_1", "status": "active",
                                           "trial_end": 1_800_000_000, "items": {"data": items}})
        };
        let read = |items| Subscription::from_object(&sub(items)).unwrap();
        assert_eq!(read(vec![item(2900, 1, "month", 1)]).monthly_amount, Some(2900));
        assert_eq!(read(vec![item(1000, 3, "month", 1), item(12000, 1, "year", 1)]).monthly_amount, Some(4000));
        assert_eq!(read(vec![item(6000, 1, "month", 3)]).monthly_amount, Some(2000));
        let metered =
            json!({"price": {"unit_amount": null, "recurring": {"interval": "month", "usage_type": "metered"}}});
        assert_eq!(read(vec![item(2900, 1, "month", 1), metered]).monthly_amount, Some(2900));
        assert_eq!(
            read(vec![json!({"price": {"unit_amount": null, "recurring": {"interval": "month"}}})]).monthly_amount,
            None
        );
        let yearly = read(vec![item(29000, 2, "year", 1)]);
        assert_eq!((yearly.period_amount, yearly.monthly_amount), (Some(58000), Some(4833)));
        assert_eq!(yearly.interval, Some(crate::plans::Interval::Year));
        assert_eq!(read(vec![item(1000, 3, "month", 1), item(12000, 1, "year", 1)]).period_amount, None);
        let read = read(vec![item(2900, 1, "month", 1)]);
        assert_eq!(read.period_amount, Some(2900));
        assert_eq!(read.currency.as_deref(), Some("eur"));
        assert_eq!(read.trial_end.map(|t| t.unix_timestamp()), Some(1_800_000_000));
    }

    #[test]
    fn a_subscription_without_its_essentials_is_not_one() {
        assert!(Subscription::from_object(&json!({"id": "sub_1", "status": "active"})).is_none());
    }

    #[test]
    fn invoices_name_their_subscription_in_either_place() {
        assert_eq!(invoice_subscription(&json!({"subscription": "sub_1"})).as_deref(), Some("sub_1"));
        let new = json!({"parent": {"subscription_details": {"subscription": "sub_2"}}});
        assert_eq!(invoice_subscription(&new).as_deref(), Some("sub_2"));
    }
}

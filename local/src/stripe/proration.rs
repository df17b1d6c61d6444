//! What the local Stripe charges when a subscription's plan item changes mid-period, computed
//! the way Stripe documents it (Billing → Prorations): a credit for the unused time on the old
//! price and a charge for the same time on the new one, both to the second, as of the proration
//! date. A change of interval (monthly to yearly) restarts the billing cycle at that date: the
//! credit for the unused time, and the new price for a whole new period.

use serde_json::{Value, json};
use uuid::Uuid;

pub const MONTH_SECS: i64 = 30 * 86_400;
pub const YEAR_SECS: i64 = 365 * 86_400;

/// A price's period, in seconds.
pub fn period_secs(price: &Value) -> i64 {
    match price["recurring"]["interval"].as_str() {
        Some("year") => YEAR_SECS,
        _ => MONTH_SECS,
    }
}

/// The invoice lines of moving `subscription`'s plan item to `price` × `quantity` at `at`, and
/// the item's period after the change.
pub fn change_lines(subscription: &Value, price: &Value, quantity: i64, at: i64) -> (Vec<Value>, (i64, i64)) {
    let item = &subscription["items"]["data"][0];
    let (start, end) =
        (item["current_period_start"].as_i64().unwrap_or(at), item["current_period_end"].as_i64().unwrap_or(at));
    let at = at.clamp(start, end);
    let old_price = &item["price"];
    let old_quantity = item["quantity"].as_i64().unwrap_or(1);
    let unused = |amount: i64| prorate(amount, end - at, end - start);
    let old_amount = old_price["unit_amount"].as_i64().unwrap_or(0) * old_quantity;
    let new_amount = price["unit_amount"].as_i64().unwrap_or(0) * quantity;
    let name = |p: &Value| p["nickname"].as_str().unwrap_or("plan").to_owned();
    let line = |description: String, amount: i64, price: &Value, quantity: i64, period: (i64, i64), proration: bool| {
        line(subscription, description, amount, price, quantity, period, proration)
    };
    // A trial's time is free: nothing to credit or charge until it ends.
    let trialing = subscription["status"] == "trialing";
    let credit = if trialing { 0 } else { -unused(old_amount) };
    let mut lines = vec![line(
        format!("Unused time on {quantity_old} × {} after the change", name(old_price), quantity_old = old_quantity),
        credit,
        old_price,
        old_quantity,
        (at, end),
        true,
    )];
    if period_secs(price) != period_secs(old_price) {
        let period = (at, at + period_secs(price));
        lines.push(line(format!("{quantity} × {}", name(price)), new_amount, price, quantity, period, false));
        return (lines, period);
    }
    let charge = if trialing { 0 } else { unused(new_amount) };
    lines.push(line(
        format!("Remaining time on {quantity} × {} after the change", name(price)),
        charge,
        price,
        quantity,
        (at, end),
        true,
    ));
    (lines, (start, end))
}

/// `amount` × `part` / `whole`, rounded to the unit as Stripe rounds (half away from zero).
fn prorate(amount: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    let (amount, part, whole) = (i128::from(amount), i128::from(part), i128::from(whole));
    ((2 * amount * part + whole) / (2 * whole)) as i64
}

/// One invoice line of a subscription item, in Stripe's current shape (async-stripe's typed
/// `InvoiceLineItem` parses it).
pub fn line(
    subscription: &Value,
    description: String,
    amount: i64,
    price: &Value,
    quantity: i64,
    (start, end): (i64, i64),
    proration: bool,
) -> Value {
    json!({
        "id": format!("il_{}", Uuid::new_v4().simple()), "object": "line_item", "amount": amount,
        "currency": price["currency"].as_str().unwrap_or("usd"), "description": description,
        "discount_amounts": [], "discountable": true, "discounts": [], "invoice": null, "livemode": false,
        "metadata": {}, "period": {"start": start, "end": end}, "pretax_credit_amounts": [],
        "parent": {"type": "subscription_item_details", "invoice_item_details": null,
                   "subscription_item_details": {"invoice_item": null, "proration": proration,
                                                 "proration_details": {"credited_items": null},
                                                 "subscription": subscription["id"],
                                                 "subscription_item": subscription["items"]["data"][0]["id"]}},
        "pricing": {"type": "price_details", "unit_amount_decimal": price["unit_amount_decimal"],
                    "price_details": {"price": price["id"], "product": price["product"]}},
        "quantity": quantity, "quantity_decimal": quantity.to_string(), "subtotal": amount, "taxes": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(amount: i64, interval: &str) -> Value {
        json!({"id": format!("price_{amount}"), "unit_amount": amount, "nickname": "P", "currency": "usd",
               "recurring": {"interval": interval}})
    }

    fn subscription(amount: i64, start: i64, end: i64) -> Value {
        json!({"id": "sub_1", "status": "active", "items": {"data": [{"id": "si_1", "quantity": 1,
               "current_period_start": start, "current_period_end": end, "price": price(amount, "month")}]}})
    }

    #[test]
    fn a_change_halfway_credits_half_the_old_price_and_charges_half_the_new() {
        let (lines, period) = change_lines(&subscription(2900, 0, 1000), &price(9900, "month"), 1, 500);
        let amounts: Vec<i64> = lines.iter().map(|l| l["amount"].as_i64().unwrap()).collect();
        assert_eq!((amounts, period), (vec![-1450, 4950], (0, 1000)));
    }

    #[test]
    fn a_move_to_yearly_restarts_the_period_with_the_whole_year() {
        let (lines, period) = change_lines(&subscription(2900, 0, 1000), &price(29000, "year"), 1, 250);
        let amounts: Vec<i64> = lines.iter().map(|l| l["amount"].as_i64().unwrap()).collect();
        assert_eq!((amounts, period), (vec![-2175, 29000], (250, 250 + YEAR_SECS)));
    }

    #[test]
    fn proration_rounds_half_away_from_zero() {
        assert_eq!((prorate(1, 1, 2), prorate(2900, 1, 3), prorate(2900, 0, 3)), (1, 967, 0));
    }
}

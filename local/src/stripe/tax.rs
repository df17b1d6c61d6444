//! The tax the local Stripe adds to an invoice: a small stand-in for Stripe Tax, so buying with a
//! billing address and a VAT ID shows the tax on the invoice without an account. The local
//! account sells from Germany and is registered for VAT in the EU and the UK:
//!
//! - a subscription without automatic tax, or a customer without an address: no tax;
//! - a business (an `eu_vat` or `gb_vat` ID) in another country than the seller's: reverse
//!   charge, a tax line of 0;
//! - anyone else in the EU or the UK: that country's standard VAT rate;
//! - elsewhere: not collecting, a tax line of 0.
//!
//! Each tax is in Stripe's `total_taxes` shape (async-stripe's typed `Invoice` parses it).

use serde_json::{Value, json};

pub const SELLER_COUNTRY: &str = "DE";

/// Standard VAT rates in percent (2026), by ISO country code.
fn standard_rate(country: &str) -> Option<f64> {
    Some(match country {
        "AT" | "BG" | "EE" | "FR" | "GB" | "SK" => 20.0,
        "BE" | "CZ" | "ES" | "LT" | "LV" | "NL" => 21.0,
        "CY" | "DE" => 19.0,
        "DK" | "HR" | "SE" => 25.0,
        "FI" => 25.5,
        "GR" => 24.0,
        "HU" => 27.0,
        "IE" | "PL" | "PT" => 23.0,
        "IT" | "SI" => 22.0,
        "LU" => 17.0,
        "MT" => 18.0,
        "RO" => 21.0,
        _ => return None,
    })
}

/// The taxes of an invoice whose lines come to `subtotal`, for `subscription`'s customer.
pub fn taxes(subscription: &Value, customer: Option<&Value>, subtotal: i64) -> Vec<Value> {
    if subscription["automatic_tax"]["enabled"] != true {
        return Vec::new();
    }
    let Some(country) = customer.and_then(|c| c["address"]["country"].as_str()) else {
        return Vec::new();
    };
    let business = customer
        .and_then(|c| c["_tax_ids"].as_array())
        .into_iter()
        .flatten()
        .any(|id| matches!(id["type"].as_str(), Some("eu_vat" | "gb_vat")));
    let (amount, reason, rate) = match standard_rate(country) {
        Some(_) if business && country != SELLER_COUNTRY => (0, "reverse_charge", 0.0),
        Some(rate) => ((subtotal as f64 * rate / 100.0).round() as i64, "standard_rated", rate),
        None => (0, "not_collecting", 0.0),
    };
    vec![json!({
        "amount": amount, "tax_behavior": "exclusive", "taxability_reason": reason, "taxable_amount": subtotal,
        "type": "tax_rate_details",
        "tax_rate_details": {"tax_rate": format!("txr_local_{}_{}", country.to_lowercase(), rate)}
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(country: &str, vat: Option<&str>) -> Value {
        let ids: Vec<Value> = vat.map(|v| json!({"type": "eu_vat", "value": v})).into_iter().collect();
        json!({"address": {"country": country}, "_tax_ids": ids})
    }

    #[test]
    fn vat_by_where_the_customer_is_and_whether_it_is_a_business() {
        let taxed = json!({"automatic_tax": {"enabled": true}});
        let tax = |c: &Value| {
            let t = &taxes(&taxed, Some(c), 10_000)[0];
            (t["amount"].as_i64().unwrap(), t["taxability_reason"].as_str().unwrap().to_owned())
        };
        assert_eq!(tax(&customer("DE", None)), (1900, "standard_rated".into()));
        assert_eq!(tax(&customer("DE", Some("DE123456789"))), (1900, "standard_rated".into()));
        assert_eq!(tax(&customer("FR", Some("FRAB123456789"))), (0, "reverse_charge".into()));
        assert_eq!(tax(&customer("FR", None)), (2000, "standard_rated".into()));
        assert_eq!(tax(&customer("US", None)), (0, "not_collecting".into()));
        assert!(taxes(&json!({"automatic_tax": {"enabled": false}}), Some(&customer("DE", None)), 100).is_empty());
        assert!(taxes(&taxed, Some(&json!({"address": null})), 100).is_empty());
    }
}

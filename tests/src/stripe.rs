//! Stripe as the tests see it: events shaped like the real API's (API version 2026-09-30), and
//! signatures made exactly as Stripe makes them.

use serde_json::{Value, json};
use uuid::Uuid;

pub const WEBHOOK_SECRET: &str = "whsec_test_current";
pub const OLD_WEBHOOK_SECRET: &str = "whsec_test_previous";

/// The `Stripe-Signature` header for a payload signed at `timestamp` with `secret`.
pub fn signature_header(secret: &str, timestamp: i64, payload: &str) -> String {
    format!("t={timestamp},v1={}", stripe_webhook::signature::sign(secret, timestamp, payload.as_bytes()))
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind
    })
}

/// What a subscription event says about one subscription.
#[derive(Clone, Debug)]
pub struct SubscriptionState {
    pub subscription: String,
    pub customer: String,
    pub workspace_id: Uuid,
    pub status: &'static str,
    pub lookup_key: &'static str,
    pub period_end: i64,
    pub cancel_at_period_end: bool,
}

pub fn subscription_event(id: &str, kind: &str, created: i64, state: &SubscriptionState) -> Value {
    let price = json!({
        "id": format!("price_{}", state.lookup_key), "object": "price", "active": true, "currency": "usd",
        "lookup_key": state.lookup_key, "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring", "unit_amount": 2900
    });
    let object = json!({
        "id": state.subscription,
        "object": "subscription",
        "cancel_at_period_end": state.cancel_at_period_end,
        "collection_method": "charge_automatically",
        "created": created - 10,
        "currency": "usd",
        "customer": state.customer,
        "items": {
            "object": "list",
            "data": [{
                "id": format!("si_{}", state.subscription),
                "object": "subscription_item",
                "current_period_start": state.period_end - 2_592_000,
                "current_period_end": state.period_end,
                "price": price,
                "quantity": 1,
                "subscription": state.subscription
            }],
            "has_more": false
        },
        "livemode": false,
        "metadata": { "workspace_id": state.workspace_id.to_string() },
        "status": state.status
    });
    event(id, kind, created, object)
}

pub fn checkout_completed_event(
    id: &str,
    created: i64,
    workspace_id: Uuid,
    customer: &str,
    subscription: &str,
) -> Value {
    event(
        id,
        "checkout.session.completed",
        created,
        json!({
            "id": format!("cs_test_{id}"),
            "object": "checkout.session",
            "client_reference_id": workspace_id.to_string(),
            "customer": customer,
            "mode": "subscription",
            "payment_status": "paid",
            "status": "complete",
            "subscription": subscription
        }),
    )
}

pub fn invoice_event(id: &str, kind: &str, created: i64, customer: &str, subscription: &str) -> Value {
    event(
        id,
        kind,
        created,
        json!({
            "id": format!("in_{id}"),
            "object": "invoice",
            "customer": customer,
            "parent": { "type": "subscription_details", "subscription_details": { "subscription": subscription } },
            "status": if kind == "invoice.paid" { "paid" } else { "open" }
        }),
    )
}

//! Stripe as the tests see it: events shaped like the real API's (API version 2026-09-30), and
//! signatures made exactly as Stripe makes them.

use serde_json::{Value, json};
use uuid::Uuid;

pub const SECRET_KEY: &str = "sk_test_integration";
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

/// Answers with a Stripe object of the given prefix and a fresh id (e.g. `cus_...`), echoing
/// the URL Stripe would host for sessions.
pub struct Creates(pub &'static str);

impl wiremock::Respond for Creates {
    fn respond(&self, _request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let id = format!("{}_{}", self.0, Uuid::new_v4().simple());
        let body = match self.0 {
            "cus" => json!({"id": id, "object": "customer", "created": now(), "livemode": false, "metadata": {}}),
            "cs_test" => json!({"id": id, "object": "checkout.session", "mode": "subscription", "status": "open",
                                "url": format!("https://checkout.stripe.com/c/pay/{id}")}),
            _ => {
                json!({"id": id, "object": "billing_portal.session", "url": format!("https://billing.stripe.com/p/session/{id}")})
            }
        };
        wiremock::ResponseTemplate::new(200).set_body_json(body)
    }
}

pub fn price_list(lookup_key: &str) -> Value {
    json!({"object": "list", "url": "/v1/prices", "has_more": false, "data": [{
        "id": format!("price_{lookup_key}"), "object": "price", "active": true, "currency": "usd",
        "lookup_key": lookup_key, "type": "recurring", "unit_amount": 2900,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}]})
}

/// A local Stripe answering every call the billing functions make, as the API documents.
pub async fn start_default_server() -> wiremock::MockServer {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    for key in ["pro_monthly", "studio_monthly"] {
        Mock::given(method("GET"))
            .and(path("/v1/prices"))
            .and(query_param("lookup_keys[]", key))
            .respond_with(ResponseTemplate::new(200).set_body_json(price_list(key)))
            .mount(&server)
            .await;
    }
    Mock::given(method("POST")).and(path("/v1/customers")).respond_with(Creates("cus")).mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(Creates("cs_test"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(Creates("bps"))
        .mount(&server)
        .await;
    server
}

/// The form fields of a request the code sent to Stripe.
pub fn form_of(request: &wiremock::Request) -> std::collections::HashMap<String, String> {
    serde_urlencoded::from_bytes(&request.body).expect("Stripe requests are form-encoded")
}

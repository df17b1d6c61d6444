//! Stripe as the tests see it: events shaped like the real API's (API version 2026-09-30), and
//! signatures made exactly as Stripe makes them.

use serde_json::{Value, json};
use uuid::Uuid;

pub const SECRET_KEY: &str = "sk_test_integration";
pub const WEBHOOK_SECRET: &str = "whsec_test_current";
pub const OLD_WEBHOOK_SECRET: &str = "whsec_test_previous";

/// A Stripe reader (as the billing worker builds it) pointed at a local Stripe.
pub fn reader(base: &str) -> shared::billing_sync::StripeState {
    shared::billing_sync::StripeState::new(&secrecy::SecretString::from(SECRET_KEY), Some(base)).expect("Stripe client")
}

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

/// The subscription object as the API returns it (and as events carry it).
pub fn subscription_object(state: &SubscriptionState, created: i64) -> Value {
    let price = price_object(state.lookup_key);
    json!({
        "id": state.subscription,
        "object": "subscription",
        "billing_cycle_anchor": state.period_end - 2_592_000,
        "cancel_at": if state.cancel_at_period_end { json!(state.period_end) } else { Value::Null },
        "cancel_at_period_end": state.cancel_at_period_end,
        "canceled_at": if state.status == "canceled" { json!(created + 60) } else { Value::Null },
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "customer": state.customer,
        "items": {
            "object": "list",
            "data": [{
                "id": format!("si_{}", state.subscription),
                "object": "subscription_item",
                "created": created,
                "current_period_start": state.period_end - 2_592_000,
                "current_period_end": state.period_end,
                "metadata": {},
                "price": price,
                "quantity": 1,
                "subscription": state.subscription
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={}", state.subscription)
        },
        "latest_invoice": format!("in_{}", state.subscription),
        "livemode": false,
        "metadata": { "workspace_id": state.workspace_id.to_string() },
        "start_date": created,
        "status": state.status
    })
}

pub fn subscription_event(id: &str, kind: &str, created: i64, state: &SubscriptionState) -> Value {
    event(id, kind, created, subscription_object(state, created - 10))
}

/// Stripe's side of the account: the subscriptions as Stripe holds them now. The local Stripe
/// server answers subscription reads from it, so a test sets Stripe's truth and then delivers
/// events (in any order, with any snapshot) as signals.
#[derive(Clone, Default)]
pub struct StripeAccount {
    inner: std::sync::Arc<std::sync::Mutex<Account>>,
}

#[derive(Default)]
struct Account {
    subscriptions: std::collections::BTreeMap<String, Value>,
    /// Customers' billing details (name, address, tax IDs) as the API set them.
    customers: std::collections::BTreeMap<String, Value>,
    unavailable: bool,
    /// What a preview of a plan change comes to (as if tax or a discount changed it).
    change_preview_due: Option<i64>,
}

impl StripeAccount {
    /// Sets a subscription's current state; its creation time is kept from the first put.
    pub fn put(&self, state: &SubscriptionState) {
        let created = self.created_of(&state.subscription).unwrap_or_else(now);
        self.put_created(state, created);
    }

    pub fn put_created(&self, state: &SubscriptionState, created: i64) {
        let object = subscription_object(state, created);
        self.lock().subscriptions.insert(state.subscription.clone(), object);
    }

    /// Changes a stored subscription in place.
    pub fn update(&self, subscription: &str, change: impl FnOnce(&mut Value)) {
        if let Some(object) = self.lock().subscriptions.get_mut(subscription) {
            change(object);
        }
    }

    /// Removes a subscription, as if it had never existed in this account.
    pub fn remove(&self, subscription: &str) {
        self.lock().subscriptions.remove(subscription);
    }

    pub fn get(&self, subscription: &str) -> Option<Value> {
        self.lock().subscriptions.get(subscription).cloned()
    }

    /// Makes Stripe's previews of a plan change say `amount_due` from now on.
    pub fn set_change_preview_due(&self, amount_due: i64) {
        self.lock().change_preview_due = Some(amount_due);
    }

    /// While set, every read answers 503 as Stripe does during an outage.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    fn created_of(&self, subscription: &str) -> Option<i64> {
        self.lock().subscriptions.get(subscription).and_then(|s| s["created"].as_i64())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: String) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(status)
        .insert_header("request-id", format!("req_{}", Uuid::new_v4().simple()))
        .set_body_json(json!({"error": {"type": kind, "code": code, "message": message,
                                        "doc_url": code.map(|c| format!("https://stripe.com/docs/error-codes/{c}"))}}))
}

/// Stripe's answer for an id it does not have.
fn no_such(kind: &str, id: &str) -> wiremock::ResponseTemplate {
    stripe_error(404, "invalid_request_error", Some("resource_missing"), format!("No such {kind}: '{id}'"))
}

/// `GET /v1/subscriptions/{id}`, `GET /v1/subscriptions` (not canceled, newest first, with
/// `limit` and `starting_after`), `DELETE /v1/subscriptions/{id}` (cancels), `POST
/// /v1/subscriptions/{id}` (moves `trial_end`, sets `cancel_at_period_end`), `GET
/// /v1/invoices/{id}` (a subscription's paid first invoice, with its payments), `GET
/// /v1/invoices` (a customer's: each subscription's first invoice), `POST
/// /v1/invoices/create_preview` (a subscription's next invoice) and `POST /v1/refunds`,
/// answered from the account.
impl wiremock::Respond for StripeAccount {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let mut account = self.lock();
        if account.unavailable {
            return stripe_error(503, "api_error", None, "Stripe is temporarily unavailable.".into());
        }
        let path = request.url.path();
        let method = request.method.as_str();
        if method == "DELETE"
            && let Some(id) = path.strip_prefix("/v1/subscriptions/")
        {
            return match account.subscriptions.get_mut(id) {
                Some(object) => {
                    object["status"] = json!("canceled");
                    object["canceled_at"] = json!(now());
                    wiremock::ResponseTemplate::new(200).set_body_json(&*object)
                }
                None => no_such("subscription", id),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/customers/") {
            return customer_call(&mut account, method, rest, request);
        }
        if path == "/v1/invoices" {
            return invoice_list(&account, request);
        }
        if path == "/v1/invoices/create_preview" {
            return invoice_preview(&account, request);
        }
        if let Some(id) = path.strip_prefix("/v1/invoices/") {
            let subscription = id.strip_prefix("in_").unwrap_or(id);
            let Some(object) = account.subscriptions.get(subscription) else {
                return no_such("invoice", id);
            };
            return wiremock::ResponseTemplate::new(200).set_body_json(json!({
                "id": id, "object": "invoice", "amount_paid": 2900, "currency": "usd", "customer": object["customer"],
                "status": "paid", "livemode": false,
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}},
                "payments": {"object": "list", "has_more": false, "data": [{
                    "id": format!("inpay_{subscription}"), "object": "invoice_payment", "amount_paid": 2900,
                    "currency": "usd", "is_default": true, "status": "paid", "invoice": id,
                    "payment": {"type": "payment_intent", "payment_intent": format!("pi_{subscription}")}}]}
            }));
        }
        if path == "/v1/refunds" {
            let form: std::collections::HashMap<String, String> =
                serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
            return wiremock::ResponseTemplate::new(200).set_body_json(json!({
                "id": format!("re_{}", Uuid::new_v4().simple()), "object": "refund", "amount": 2900, "currency": "usd",
                "payment_intent": form.get("payment_intent"), "reason": form.get("reason"), "status": "succeeded"
            }));
        }
        if method == "POST"
            && let Some(id) = path.strip_prefix("/v1/subscriptions/")
        {
            let form: std::collections::HashMap<String, String> =
                serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
            return match account.subscriptions.get_mut(id) {
                Some(object) => {
                    if let Some(end) = form.get("trial_end").and_then(|t| t.parse::<i64>().ok()) {
                        object["trial_end"] = json!(end);
                    }
                    if let Some(price) = form.get("items[0][price]") {
                        let key = price.strip_prefix("price_").unwrap_or(price);
                        object["items"]["data"][0]["price"] = price_object(key);
                    }
                    if let Some(quantity) = form.get("items[0][quantity]").and_then(|q| q.parse::<i64>().ok()) {
                        object["items"]["data"][0]["quantity"] = json!(quantity);
                    }
                    if let Some(cancel) = form.get("cancel_at_period_end").map(|c| c == "true") {
                        object["cancel_at_period_end"] = json!(cancel);
                        let period_end = object.pointer("/items/data/0/current_period_end").cloned();
                        object["cancel_at"] = if cancel { period_end.unwrap_or(Value::Null) } else { Value::Null };
                    }
                    wiremock::ResponseTemplate::new(200).set_body_json(&*object)
                }
                None => no_such("subscription", id),
            };
        }
        if let Some(id) = path.strip_prefix("/v1/subscriptions/") {
            return match account.subscriptions.get(id) {
                Some(object) => wiremock::ResponseTemplate::new(200).set_body_json(object),
                None => no_such("subscription", id),
            };
        }
        let query: std::collections::HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
        let mut live: Vec<&Value> = account.subscriptions.values().filter(|s| s["status"] != "canceled").collect();
        live.sort_by_key(|s| (std::cmp::Reverse(s["created"].as_i64()), std::cmp::Reverse(s["id"].as_str())));
        let start = match query.get("starting_after") {
            Some(after) => live.iter().position(|s| s["id"] == after.as_str()).map_or(live.len(), |i| i + 1),
            None => 0,
        };
        let page: Vec<&Value> = live.iter().skip(start).take(limit).copied().collect();
        let has_more = start + page.len() < live.len();
        wiremock::ResponseTemplate::new(200)
            .set_body_json(json!({"object": "list", "url": "/v1/subscriptions", "has_more": has_more, "data": page}))
    }
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
                                "expires_at": now() + 86_400, "url": format!("https://checkout.stripe.com/c/pay/{id}")}),
            _ => {
                json!({"id": id, "object": "billing_portal.session", "url": format!("https://billing.stripe.com/p/session/{id}")})
            }
        };
        wiremock::ResponseTemplate::new(200).set_body_json(body)
    }
}

/// A price list request naming this lookup key, as Stripe reads arrays: `lookup_keys[]=` or
/// indexed, `lookup_keys[0]=`.
pub struct LookupKey(pub &'static str);

impl wiremock::Match for LookupKey {
    fn matches(&self, request: &wiremock::Request) -> bool {
        request.url.query_pairs().any(|(k, v)| k.starts_with("lookup_keys[") && k.ends_with(']') && v == self.0)
    }
}

/// `GET|POST /v1/customers/{id}` (read with its tax IDs; set `name` and `address[...]`),
/// `POST /v1/customers/{id}/tax_ids` (a value with fewer than four letters or digits is
/// Stripe's `tax_id_invalid`) and `DELETE /v1/customers/{id}/tax_ids/{tax_id}`; a customer
/// whose id starts with `cus_gone` was deleted in Stripe.
fn customer_call(
    account: &mut Account,
    method: &str,
    rest: &str,
    request: &wiremock::Request,
) -> wiremock::ResponseTemplate {
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
    let mut parts = rest.splitn(3, '/');
    let id = parts.next().unwrap_or_default().to_owned();
    if id.starts_with("cus_gone") {
        // A customer deleted in Stripe's dashboard.
        return no_such("customer", &id);
    }
    let customer = account.customers.entry(id.clone()).or_insert_with(|| {
        json!({"id": id, "object": "customer", "name": null, "email": null, "address": null,
               "tax_ids": {"object": "list", "has_more": false, "data": []}})
    });
    match (method, parts.next(), parts.next()) {
        ("GET", None, _) => wiremock::ResponseTemplate::new(200).set_body_json(&*customer),
        ("POST", None, _) => {
            if let Some(name) = form.get("name") {
                customer["name"] = json!(name);
            }
            let mut address = json!({"line1": null, "line2": null, "city": null, "state": null, "postal_code": null, "country": null});
            for (key, value) in &form {
                if let Some(field) = key.strip_prefix("address[").and_then(|k| k.strip_suffix(']')) {
                    address[field] = json!(value);
                }
            }
            if form.keys().any(|k| k.starts_with("address[")) {
                customer["address"] = address;
            }
            wiremock::ResponseTemplate::new(200).set_body_json(&*customer)
        }
        ("POST", Some("tax_ids"), None) => {
            let value = form.get("value").cloned().unwrap_or_default();
            if value.chars().filter(char::is_ascii_alphanumeric).count() < 4 {
                return stripe_error(
                    400,
                    "invalid_request_error",
                    Some("tax_id_invalid"),
                    format!("Invalid value for {}.", form.get("type").cloned().unwrap_or_default()),
                );
            }
            let tax_id = json!({"id": format!("txi_{}", Uuid::new_v4().simple()), "object": "tax_id", "type": form.get("type"),
                                "value": value, "customer": id, "verification": {"status": "pending"}});
            if let Some(list) = customer["tax_ids"]["data"].as_array_mut() {
                list.push(tax_id.clone());
            }
            wiremock::ResponseTemplate::new(200).set_body_json(tax_id)
        }
        ("DELETE", Some("tax_ids"), Some(tax_id)) => {
            let list = customer["tax_ids"]["data"].as_array_mut();
            let removed = list.is_some_and(|list| {
                let before = list.len();
                list.retain(|t| t["id"] != tax_id);
                before != list.len()
            });
            if removed {
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(json!({"id": tax_id, "object": "tax_id", "deleted": true}))
            } else {
                no_such("tax_id", tax_id)
            }
        }
        _ => no_such("customer", &id),
    }
}

/// A subscription's first invoice as `GET /v1/invoices` lists it: paid, $29 with $0 tax.
fn listed_invoice(subscription: &Value) -> Value {
    let id = format!("in_{}", subscription["id"].as_str().unwrap_or_default());
    let item = &subscription["items"]["data"][0];
    json!({"id": id, "object": "invoice", "number": format!("TEST-{}", &id[id.len().saturating_sub(6)..]),
           "status": "paid", "currency": "usd", "customer": subscription["customer"], "livemode": false,
           "subtotal": 2900, "total_taxes": [], "total": 2900, "amount_due": 2900, "amount_paid": 2900,
           "amount_remaining": 0, "created": subscription["created"],
           "period_start": item["current_period_start"], "period_end": item["current_period_start"],
           "hosted_invoice_url": format!("https://invoice.stripe.com/i/test/{id}"),
           "invoice_pdf": format!("https://pay.stripe.com/invoice/test/{id}/pdf")})
}

/// `GET /v1/invoices?customer=&limit=&starting_after=`: the customer's invoices, newest first.
fn invoice_list(account: &Account, request: &wiremock::Request) -> wiremock::ResponseTemplate {
    let query: std::collections::HashMap<String, String> = request.url.query_pairs().into_owned().collect();
    let mut invoices: Vec<Value> = account
        .subscriptions
        .values()
        .filter(|s| query.get("customer").is_none_or(|c| s["customer"] == c.as_str()))
        .map(listed_invoice)
        .collect();
    invoices.sort_by_key(|i| std::cmp::Reverse(i["created"].as_i64()));
    let start = match query.get("starting_after") {
        Some(after) => match invoices.iter().position(|i| i["id"] == after.as_str()) {
            Some(at) => at + 1,
            None => return no_such("invoice", after),
        },
        None => 0,
    };
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let page: Vec<Value> = invoices.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < invoices.len();
    wiremock::ResponseTemplate::new(200)
        .set_body_json(json!({"object": "list", "url": "/v1/invoices", "has_more": has_more, "data": page}))
}

/// `POST /v1/invoices/create_preview` with `customer` and `subscription`: the next period's
/// invoice of a renewing subscription, else Stripe's `invoice_upcoming_none`.
fn invoice_preview(account: &Account, request: &wiremock::Request) -> wiremock::ResponseTemplate {
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
    let renewing = form.get("subscription").and_then(|id| account.subscriptions.get(id)).filter(|s| {
        ["active", "trialing", "past_due"].contains(&s["status"].as_str().unwrap_or_default())
            && s["customer"] == form.get("customer").map(String::as_str).unwrap_or_default()
    });
    let Some(subscription) = renewing else {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("invoice_upcoming_none"),
            "No upcoming invoices for customer".into(),
        );
    };
    let end = subscription.pointer("/items/data/0/current_period_end").and_then(Value::as_i64).unwrap_or_else(now);
    if let Some(price) = form.get("subscription_details[items][0][price]") {
        // A plan change: its prorations now (a credit and a charge), or the next invoice at the new price.
        let prorated =
            form.get("subscription_details[proration_behavior]").map(String::as_str) == Some("always_invoice");
        let due = account.change_preview_due.unwrap_or(if prorated { 4100 } else { 2900 });
        let line = |amount: i64, proration: bool| {
            json!({"id": format!("il_{}", Uuid::new_v4().simple()), "object": "line_item", "amount": amount,
                   "currency": "usd", "description": format!("{price} ({amount})"),
                   "period": {"start": now(), "end": end},
                   "parent": {"type": "subscription_item_details",
                              "subscription_item_details": {"proration": proration, "subscription_item": "si"}}})
        };
        let lines = if prorated { vec![line(-1400, true), line(due + 1400, true)] } else { vec![line(due, false)] };
        return wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "id": null, "object": "invoice", "status": "draft", "currency": "usd", "customer": subscription["customer"],
            "subtotal": due, "total_taxes": [], "total": due, "amount_due": due, "created": now(),
            "lines": {"object": "list", "has_more": false, "data": lines}}));
    }
    wiremock::ResponseTemplate::new(200).set_body_json(json!({
        "id": null, "object": "invoice", "number": null, "status": "draft", "currency": "usd",
        "customer": subscription["customer"], "subtotal": 2900, "total_taxes": [], "total": 2900,
        "amount_due": 2900, "amount_paid": 0, "amount_remaining": 2900, "created": now(),
        "period_start": end, "period_end": end + 2_592_000, "next_payment_attempt": end,
        "hosted_invoice_url": null, "invoice_pdf": null}))
}

/// The price sold under a lookup key: 29.00 a month, or 290.00 a year for a `_yearly` key; the
/// AI overage price is metered, 10 cents a run.
pub fn price_object(lookup_key: &str) -> Value {
    if lookup_key == shared::plans::AI_OVERAGE_LOOKUP_KEY {
        return json!({
            "id": format!("price_{lookup_key}"), "object": "price", "active": true, "currency": "usd",
            "lookup_key": lookup_key, "type": "recurring", "unit_amount": 10, "unit_amount_decimal": "10",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "metered", "meter": "mtr_overage"},
            "livemode": false, "metadata": {}
        });
    }
    let (amount, interval) = if lookup_key.ends_with("_yearly") { (29000, "year") } else { (2900, "month") };
    json!({
        "id": format!("price_{lookup_key}"), "object": "price", "active": true, "currency": "usd",
        "lookup_key": lookup_key, "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring", "unit_amount": amount, "livemode": false, "metadata": {}
    })
}

pub fn price_list(lookup_key: &str) -> Value {
    json!({"object": "list", "url": "/v1/prices", "has_more": false, "data": [price_object(lookup_key)]})
}

/// A local Stripe answering every call the billing functions make, as the API documents, with
/// subscription reads answered from `account`.
pub async fn start_default_server(account: &StripeAccount) -> wiremock::MockServer {
    use wiremock::matchers::{method, path, path_regex};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/(subscriptions(/[^/]+)?|invoices(/[^/]+)?)$"))
        .respond_with(account.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/invoices/create_preview"))
        .respond_with(account.clone())
        .mount(&server)
        .await;
    Mock::given(path_regex(r"^/v1/customers/[^/]+(/tax_ids(/[^/]+)?)?$"))
        .respond_with(account.clone())
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/v1/subscriptions/[^/]+$"))
        .respond_with(account.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1/subscriptions/[^/]+$"))
        .respond_with(account.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path("/v1/refunds")).respond_with(account.clone()).mount(&server).await;
    for key in ["pro_monthly", "studio_monthly", "pro_yearly", "studio_yearly", shared::plans::AI_OVERAGE_LOOKUP_KEY] {
        Mock::given(method("GET"))
            .and(path("/v1/prices"))
            .and(LookupKey(key))
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

/// The requests the code sent to `path` (with `method`, or any), each as what it asked: its
/// query for a GET, its form otherwise.
pub async fn sent(
    server: &wiremock::MockServer,
    method: Option<&str>,
    path: &str,
) -> Vec<std::collections::HashMap<String, String>> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == path && method.is_none_or(|m| r.method.as_str() == m))
        .map(|r| if r.method.as_str() == "GET" { r.url.query_pairs().into_owned().collect() } else { form_of(r) })
        .collect()
}

/// A Stripe answering meter events as the API does (the usage worker's only call).
pub async fn meter_events_server() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "object": "billing.meter_event", "created": 1_795_000_000, "event_name": "ai_tool_runs",
            "identifier": "from-request", "livemode": false, "payload": {}, "timestamp": 1_795_000_000})))
        .mount(&server)
        .await;
    server
}

/// The form fields of a request the code sent to Stripe.
pub fn form_of(request: &wiremock::Request) -> std::collections::HashMap<String, String> {
    serde_urlencoded::from_bytes(&request.body).expect("Stripe requests are form-encoded")
}

/// Serves the local stack's local Stripe (no webhook: a test applies its event log itself) on a
/// free port; returns its base URL.
pub async fn start_local_stripe() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stripe = local_stack::stripe::LocalStripe::new(base.clone(), None, None);
    tokio::spawn(async move { axum::serve(listener, local_stack::stripe::router(stripe)).await });
    base
}

/// The local Stripe's events, newest first.
pub async fn local_stripe_events(base: &str) -> Vec<Value> {
    let list: Value = reqwest::get(format!("{base}/v1/events?limit=100")).await.unwrap().json().await.unwrap();
    list["data"].as_array().unwrap().clone()
}

/// A `customer.subscription.created` event of a fresh active Pro subscription of the workspace
/// (fresh event, subscription and customer ids), as Stripe would send it.
pub fn sample_subscription_event(workspace_id: Uuid) -> String {
    let state = SubscriptionState {
        subscription: format!("sub_{}", Uuid::new_v4().simple()),
        customer: format!("cus_{}", Uuid::new_v4().simple()),
        workspace_id,
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 1000,
        cancel_at_period_end: false,
    };
    subscription_event(&format!("evt_{}", Uuid::new_v4().simple()), "customer.subscription.created", now(), &state)
        .to_string()
}

/// An app whose billing functions and worker talk to a local Stripe, with a signed-in owner and
/// their workspace: the setup of the tests that walk a subscription from request to event to
/// entitlements.
pub struct LocalBilling {
    pub app: crate::TestApp,
    /// The local Stripe's base URL.
    pub base: String,
    pub worker: billing_worker::Worker,
    pub owner: crate::TestUser,
    pub ws: Uuid,
    /// How many of the local Stripe's events have been applied.
    applied: std::sync::atomic::AtomicUsize,
}

impl LocalBilling {
    pub async fn start(label: &str) -> Self {
        let base = start_local_stripe().await;
        let mut settings = crate::base_settings();
        settings.push(("STRIPE_API_BASE".into(), base.clone()));
        let app = crate::TestApp::with_settings(settings).await;
        let owner = app.user(label).await;
        let ws = app.workspace(&owner, label).await;
        let worker = billing_worker::Worker { stripe: reader(&base), ..app.billing_worker(7).await };
        Self { app, base, worker, owner, ws, applied: Default::default() }
    }

    /// Applies the local Stripe's events not applied yet, oldest first, as the webhook and the
    /// worker would.
    pub async fn apply_events(&self) {
        use std::sync::atomic::Ordering;
        let all = local_stripe_events(&self.base).await;
        for event in all[..all.len() - self.applied.load(Ordering::SeqCst)].iter().rev() {
            self.worker.apply(&event.to_string()).await.unwrap();
        }
        self.applied.store(all.len(), Ordering::SeqCst);
    }

    /// Starts a checkout of `plan` for the workspace and pays it on the hosted page; the
    /// checkout function's answer.
    pub async fn checkout(&self, plan: &str) -> Value {
        self.checkout_paying(plan, &[]).await
    }

    /// As `checkout`, paying with the hosted page's fields filled in (`country`, `vat_id`, ...).
    pub async fn checkout_paying(&self, plan: &str, fields: &[(&str, &str)]) -> Value {
        let session = self
            .app
            .post(
                &self.owner,
                &format!("/v1/workspaces/{}/billing/checkout", self.ws),
                json!({"plan": plan, "success_url": "http://127.0.0.1:3000/ok", "cancel_url": "http://127.0.0.1:3000/no"}),
            )
            .await
            .expect(axum::http::StatusCode::OK)
            .clone();
        let url = session["url"].as_str().unwrap();
        let body = serde_urlencoded::to_string(fields).expect("form fields encode");
        let paid = no_redirects()
            .post(format!("{url}/pay"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), 303);
        session
    }

    /// Changes the workspace's plan as its owner does: previews the change, then confirms it;
    /// the confirmation's answer.
    pub async fn change_plan(&self, change: Value) -> Value {
        let path = format!("/v1/workspaces/{}/billing/subscription", self.ws);
        let preview = self.app.post(&self.owner, &format!("{path}/preview"), change).await;
        let token = preview.expect(axum::http::StatusCode::OK)["token"].clone();
        let applied = self.app.post(&self.owner, &path, json!({"preview_token": token})).await;
        applied.expect(axum::http::StatusCode::ACCEPTED).clone()
    }

    /// A portal session's page URL for the workspace's owner.
    pub async fn portal_url(&self) -> String {
        let path = format!("/v1/workspaces/{}/billing/portal", self.ws);
        let portal = self.app.post(&self.owner, &path, json!({"return_url": "http://127.0.0.1:3000/"})).await;
        portal.expect(axum::http::StatusCode::OK)["url"].as_str().unwrap().to_owned()
    }

    /// Presses a button of the hosted portal page (`past-due`, `pay`, `renew`, `cancel`, ...).
    pub async fn portal_action(&self, portal_url: &str, action: &str) {
        let url = format!("{portal_url}/{}/{action}", self.subscription_id().await);
        assert_eq!(no_redirects().post(url).send().await.unwrap().status(), 303, "{action}");
    }

    pub async fn subscription_id(&self) -> String {
        sqlx::query_scalar("SELECT stripe_subscription_id FROM subscriptions WHERE workspace_id = $1")
            .bind(self.ws)
            .fetch_one(&crate::owner_pool().await)
            .await
            .unwrap()
    }

    /// The workspace's billing summary, as its owner reads it.
    pub async fn billing(&self) -> Value {
        let path = format!("/v1/workspaces/{}/billing", self.ws);
        self.app.get(&self.owner, &path).await.expect(axum::http::StatusCode::OK).clone()
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

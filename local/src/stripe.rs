//! A local Stripe for development, so checkout, the portal, the webhook, the billing worker,
//! reconciliation and metered usage all work with no Stripe account. Served by `local-stack`
//! under `/_stripe` on its own port; `STRIPE_API_BASE` points the functions at it. It is never
//! part of a Lambda binary.
//!
//! It speaks the parts of Stripe's API the product calls (prices by lookup key, customers,
//! Checkout Sessions, portal sessions, subscriptions, the event log, meter events), hosts a
//! checkout page and a portal page, and sends every change to the webhook as Stripe does:
//! signed events, several in one second, in no guaranteed order. Subscription changes are also
//! possible through the API (`POST /v1/subscriptions`, `POST`/`DELETE /v1/subscriptions/{id}`).
//! State is kept in a JSON file (`target/local-stripe.json` by default), so subscriptions
//! outlive a restart as they would in Stripe; `scripts/dev.sh --reset` deletes it with the
//! database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use uuid::Uuid;

mod proration;
mod tax;

use proration::period_secs;

/// How to walk the whole subscription lifecycle against the local Stripe with `curl` and a
/// browser, printed by `local-stack serve` (with `$TOKEN` from its output).
pub fn walkthrough(port: u16) -> String {
    let api = format!("http://127.0.0.1:{port}/v1");
    let auth = "-H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json'";
    [
        "Billing, end to end (no Stripe account needed):".to_owned(),
        format!("  WS=$(curl -s -X POST {auth} -d '{{\"name\":\"Billing tour\"}}' {api}/workspaces | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])')"),
        // Redirects go back to the web app, on an allowed origin (BILLING_REDIRECT_ORIGINS).
        format!("  curl -s -X POST {auth} -d '{{\"plan\":\"pro\",\"success_url\":\"http://localhost:3000/\",\"cancel_url\":\"http://localhost:3000/\"}}' {api}/workspaces/$WS/billing/checkout"),
        "      open its \"url\" in a browser and press \"Pay with a test card\" (a 14-day trial: the workspace's first subscription)".to_owned(),
        format!("  curl -s {auth} {api}/workspaces/$WS/billing                       # plan, status, next invoice, seats"),
        format!("  P=$(curl -s -X POST {auth} -d '{{\"plan\":\"team\"}}' {api}/workspaces/$WS/billing/subscription/preview); echo \"$P\"   # what the upgrade costs now"),
        format!("  curl -s -X POST {auth} -d \"{{\\\"preview_token\\\":$(echo \"$P\" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[\"token\"]))')}}\" {api}/workspaces/$WS/billing/subscription   # confirm it"),
        format!("  curl -s -X POST {auth} -d '{{\"email\":\"new@example.com\",\"role\":\"member\"}}' {api}/workspaces/$WS/invitations   # one more seat, synced within seconds"),
        format!("  curl -s -X POST {auth} -d '{{\"plan\":\"pro\",\"interval\":\"year\"}}' {api}/workspaces/$WS/billing/subscription/preview   # a downgrade to yearly Pro: at the period's end (confirm its token the same way)"),
        format!("  curl -s -X POST {auth} {api}/workspaces/$WS/billing/subscription/cancel   # then .../resume"),
        format!("  curl -s -X POST {auth} -d '{{\"return_url\":\"http://localhost:3000/\"}}' {api}/workspaces/$WS/billing/portal"),
        "      open its \"url\": fail the renewal's payment, pay it, advance to the period's end (the downgrade takes over)".to_owned(),
    ]
    .join("\n")
}

/// Where the local Stripe sends its events.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub signing_secret: String,
}

pub struct LocalStripe {
    account: Mutex<Account>,
    /// Where the account is saved after every change.
    state_file: Option<std::path::PathBuf>,
    /// The base of the hosted pages, e.g. `http://127.0.0.1:3000/_stripe`.
    public_base: String,
    webhook: Option<WebhookTarget>,
    http: reqwest::Client,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Account {
    customers: BTreeMap<String, Value>,
    checkout_sessions: BTreeMap<String, Value>,
    portal_sessions: BTreeMap<String, Value>,
    subscriptions: BTreeMap<String, Value>,
    /// Newest last.
    events: Vec<Value>,
    meter_events: Vec<Value>,
    refunds: Vec<Value>,
    #[serde(default)]
    schedules: BTreeMap<String, Value>,
    /// POST answers by `Idempotency-Key`, with the request they answered (Stripe replays them).
    #[serde(default)]
    idempotent: BTreeMap<String, Value>,
}

type Form = Vec<(String, String)>;

fn field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn metadata(form: &Form, prefix: &str) -> Value {
    let fields = form.iter().filter_map(|(k, v)| {
        k.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .map(|key| (key.to_owned(), json!(v)))
    });
    Value::Object(fields.collect())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

/// A Stripe-shaped error.
fn error(status: StatusCode, code: Option<&str>, message: String) -> Response {
    let kind = if status.is_server_error() { "api_error" } else { "invalid_request_error" };
    (status, axum::Json(json!({"error": {"type": kind, "code": code, "message": message}}))).into_response()
}

fn missing(what: &str, id: &str) -> Response {
    error(StatusCode::NOT_FOUND, Some("resource_missing"), format!("No such {what}: '{id}'"))
}

fn list(url: &str, data: Vec<Value>, has_more: bool) -> Response {
    axum::Json(json!({"object": "list", "url": url, "has_more": has_more, "data": data})).into_response()
}

/// What one AI run beyond the quota costs here, in cents.
const OVERAGE_UNIT_AMOUNT: i64 = 10;
/// The event name of the meter the overage price bills.
const OVERAGE_METER_EVENT: &str = "ai_overage_runs";

/// The metered price AI runs beyond the quota are billed at, on the overage meter.
fn overage_price() -> Value {
    let key = shared::plans::AI_OVERAGE_LOOKUP_KEY;
    json!({
        "id": format!("price_local_{key}"), "object": "price", "active": true, "currency": "usd",
        "billing_scheme": "per_unit", "created": 1_790_000_000, "tax_behavior": "unspecified",
        "unit_amount_decimal": OVERAGE_UNIT_AMOUNT.to_string(), "unit_amount": OVERAGE_UNIT_AMOUNT,
        "livemode": false, "lookup_key": key, "metadata": {}, "nickname": "AI runs beyond the quota",
        "product": "prod_local_ai_overage", "type": "recurring",
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "metered",
                      "meter": format!("mtr_local_{OVERAGE_METER_EVENT}")}
    })
}

/// The price sold under a lookup key of the plan catalog; a yearly price is ten months'.
fn price(lookup_key: &str) -> Option<Value> {
    if lookup_key == shared::plans::AI_OVERAGE_LOOKUP_KEY {
        return Some(overage_price());
    }
    let (plan, interval) = shared::plans::price_by_lookup_key(lookup_key)?;
    let monthly = match plan.id {
        "studio" => 9900,
        // Per seat.
        "team" => 1200,
        _ => 2900,
    };
    let (unit_amount, interval) = match interval {
        shared::plans::Interval::Month => (monthly, "month"),
        shared::plans::Interval::Year => (monthly * 10, "year"),
    };
    Some(json!({
        "id": format!("price_local_{lookup_key}"), "object": "price", "active": true, "currency": "usd",
        "billing_scheme": "per_unit", "created": 1_790_000_000, "tax_behavior": "unspecified",
        "unit_amount_decimal": unit_amount.to_string(),
        "livemode": false, "lookup_key": lookup_key, "metadata": {},
        "nickname": format!("{} ({interval}ly)", plan.name),
        "product": format!("prod_local_{}", plan.id), "type": "recurring", "unit_amount": unit_amount,
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}
    }))
}

/// A price id (`price_local_<lookup key>`) or a lookup key, as a price.
fn price_of(reference: &str) -> Option<Value> {
    price(reference.strip_prefix("price_local_").unwrap_or(reference))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto}}button{{margin:.2rem}}</style>\
         </head><body><p><em>Local Stripe (development stand-in)</em></p><h1>{0}</h1>{1}</body></html>",
        escape(title),
        body
    ))
}

impl LocalStripe {
    /// `state_file`: load the account from it if it exists, and save every change to it.
    pub fn new(
        public_base: String,
        webhook: Option<WebhookTarget>,
        state_file: Option<std::path::PathBuf>,
    ) -> Arc<Self> {
        let account = state_file
            .as_deref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Arc::new(Self { account: Mutex::new(account), state_file, public_base, webhook, http: reqwest::Client::new() })
    }

    /// Writes the account to the state file (best effort: a development convenience).
    fn save(&self) {
        let Some(path) = &self.state_file else { return };
        let json = match serde_json::to_vec(&*self.account()) {
            Ok(json) => json,
            Err(_) => return,
        };
        if let Err(error) = std::fs::write(path, json) {
            tracing::warn!(%error, path = %path.display(), "local Stripe: cannot save its state");
        }
    }

    /// Puts an active subscription into the account, unless it is there already, without
    /// sending events: what the demo workspace's seeded subscription is in Stripe.
    pub fn insert_active_subscription(&self, id: &str, customer: &str, lookup_key: &str, workspace_id: Uuid) {
        let mut subscription = self.new_subscription(
            customer,
            price(lookup_key).unwrap_or_default(),
            json!({"workspace_id": workspace_id.to_string()}),
            "active",
        );
        subscription["id"] = json!(id);
        subscription["items"]["data"][0]["subscription"] = json!(id);
        subscription["latest_invoice"] = json!(format!("in_{id}"));
        // Kept as it is when the account already has it (a restart keeps its state).
        let mut account = self.account();
        account.subscriptions.entry(id.to_owned()).or_insert(subscription);
        account.customers.entry(customer.to_owned()).or_insert_with(|| {
            json!({"id": customer, "object": "customer", "created": now(), "livemode": false, "email": null,
                   "name": null, "metadata": {"workspace_id": workspace_id.to_string()}})
        });
        drop(account);
        self.save();
    }

    fn account(&self) -> MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records events (one second, in the order given) and sends them to the webhook, signed.
    fn emit(self: &Arc<Self>, events: Vec<(&str, Value)>) {
        let created = now();
        let events: Vec<Value> = events
            .into_iter()
            .map(|(kind, object)| {
                json!({"id": new_id("evt"), "object": "event", "api_version": shared::stripe::API_VERSION,
                       "created": created, "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
                       "request": {"id": null, "idempotency_key": null}, "type": kind})
            })
            .collect();
        self.account().events.extend(events.iter().cloned());
        self.save();
        let Some(target) = self.webhook.clone() else { return };
        let http = self.http.clone();
        tokio::spawn(async move {
            for event in events {
                let payload = event.to_string();
                let timestamp = now();
                let signature = stripe_webhook::signature::sign(&target.signing_secret, timestamp, payload.as_bytes());
                let sent = http
                    .post(&target.url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", format!("t={timestamp},v1={signature}"))
                    .body(payload)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => {
                        tracing::warn!(status = %response.status(), event = %event["id"], "local Stripe: webhook refused an event")
                    }
                    Err(e) => tracing::warn!(error = %e, event = %event["id"], "local Stripe: webhook unreachable"),
                }
            }
        });
    }

    fn new_subscription(&self, customer: &str, price: Value, metadata: Value, status: &str) -> Value {
        let created = now();
        let period_end = created + period_secs(&price);
        let id = new_id("sub");
        json!({
            "id": id, "object": "subscription", "billing_cycle_anchor": created, "cancel_at": null,
            "cancel_at_period_end": false, "canceled_at": null, "collection_method": "charge_automatically",
            "created": created, "currency": "usd", "customer": customer, "livemode": false,
            "latest_invoice": format!("in_{id}"),
            "metadata": metadata, "start_date": created, "status": status, "schedule": null,
            "automatic_tax": {"enabled": false, "disabled_reason": null, "liability": null},
            "billing_mode": {"type": "flexible"}, "billing_schedules": [], "discounts": [],
            "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
            "items": {"object": "list", "has_more": false, "total_count": 1,
                      "url": format!("/v1/subscription_items?subscription={id}"),
                      "data": [{"id": new_id("si"), "object": "subscription_item", "created": created,
                                "current_period_start": created, "current_period_end": period_end,
                                "discounts": [], "metadata": {}, "plan": plan_of(&price), "price": price,
                                "quantity": 1, "subscription": id}]}
        })
    }

    /// Starts a subscription the way a paid checkout does: created `incomplete`, then `active`
    /// once its first invoice is paid (or `trialing`, its first period being the trial, when it
    /// has trial days). Returns the events to emit (all in one second) and the subscription;
    /// `around` adds the caller's own events given the new subscription's id.
    fn start_subscription(
        self: &Arc<Self>,
        customer: &str,
        (price, quantity, metered): (Value, i64, Option<Value>),
        (metadata, automatic_tax): (Value, bool),
        trial_days: Option<i64>,
        around: impl FnOnce(&str) -> Vec<(&'static str, Value)>,
    ) -> Value {
        let mut incomplete = self.new_subscription(customer, price, metadata, "incomplete");
        incomplete["items"]["data"][0]["quantity"] = json!(quantity.max(1));
        if let Some(metered) = metered {
            let item = metered_item(&incomplete["items"]["data"][0], metered);
            if let Some(items) = incomplete["items"]["data"].as_array_mut() {
                items.push(item);
            }
            incomplete["items"]["total_count"] = json!(2);
        }
        incomplete["automatic_tax"]["enabled"] = json!(automatic_tax);
        let id = incomplete["id"].as_str().unwrap_or_default().to_owned();
        let mut active = incomplete.clone();
        active["status"] = json!("active");
        if let Some(days) = trial_days.filter(|d| *d > 0) {
            let start = active["created"].as_i64().unwrap_or_else(now);
            let end = start + days * 86_400;
            active["status"] = json!("trialing");
            active["trial_start"] = json!(start);
            active["trial_end"] = json!(end);
            active["items"]["data"][0]["current_period_end"] = json!(end);
        }
        self.account().subscriptions.insert(id.clone(), active.clone());
        let mut line = plan_line(&active);
        if active["status"] == "trialing" {
            line["amount"] = json!(0);
            line["subtotal"] = json!(0);
        }
        let customer = self.account().customers.get(customer).cloned();
        let invoice =
            invoice_with_lines(&new_id("in"), &active, vec![line], customer.as_ref(), true, "subscription_create");
        let mut events = vec![("customer.subscription.created", incomplete)];
        events.extend(around(&id));
        events.extend([("invoice.paid", invoice), ("customer.subscription.updated", active.clone())]);
        self.emit(events);
        active
    }

    /// A renewal invoice paid or failed: `invoice.paid` or `invoice.payment_failed`, then the
    /// subscription back to `active` or `past_due`, as Stripe sends them. `None` if there is no
    /// such subscription.
    fn invoice_outcome(self: &Arc<Self>, id: &str, paid: bool) -> Option<Value> {
        let invoice = {
            let mut account = self.account();
            let subscription = account.subscriptions.get(id)?.clone();
            let mut lines = vec![plan_line(&subscription)];
            // The period's usage beyond the quota is billed with it, once.
            lines.extend(overage_line(&mut account, &subscription, true));
            let customer = subscription["customer"].as_str().and_then(|c| account.customers.get(c));
            invoice_with_lines(&new_id("in"), &subscription, lines, customer, paid, "subscription_cycle")
        };
        let updated = {
            let mut account = self.account();
            let subscription = account.subscriptions.get_mut(id)?;
            subscription["status"] = json!(if paid { "active" } else { "past_due" });
            subscription.clone()
        };
        let kind = if paid { "invoice.paid" } else { "invoice.payment_failed" };
        self.emit(vec![(kind, invoice), ("customer.subscription.updated", updated.clone())]);
        Some(updated)
    }

    /// The period ends: a scheduled next phase takes over (and the schedule is released), or a
    /// subscription cancelling at the period's end ends; otherwise it renews. Emits what Stripe
    /// sends (the renewal's `invoice.paid`, then the subscription's event).
    fn renew(self: &Arc<Self>, id: &str) -> Option<Value> {
        let next_phase = {
            let mut account = self.account();
            let schedule_id = account.subscriptions.get(id)?["schedule"].as_str().map(str::to_owned);
            match schedule_id.and_then(|s| account.schedules.remove(&s)) {
                Some(schedule) => {
                    let items = schedule["phases"][1]["items"].as_array().cloned().unwrap_or_default();
                    let item = items.first().cloned().unwrap_or_default();
                    let others: Vec<Value> =
                        items.iter().skip(1).filter_map(|i| i["price"].as_str().and_then(price_of)).collect();
                    item["price"].as_str().and_then(price_of).map(|price| (price, item["quantity"].as_i64(), others))
                }
                None => None,
            }
        };
        if self.account().subscriptions.get(id)?["cancel_at_period_end"] == true {
            return self.change(id, cancel_now);
        }
        {
            let mut account = self.account();
            let subscription = account.subscriptions.get_mut(id)?;
            let end = subscription["items"]["data"][0]["current_period_end"].as_i64().unwrap_or_else(now);
            subscription["schedule"] = Value::Null;
            if let Some((price, quantity, others)) = next_phase {
                set_price(subscription, price);
                if let Some(quantity) = quantity {
                    subscription["items"]["data"][0]["quantity"] = json!(quantity);
                }
                // The phase's items replace the subscription's: other items it does not list end.
                if let Some(items) = subscription["items"]["data"].as_array_mut() {
                    items.truncate(1);
                    let plan_item = items[0].clone();
                    items.extend(others.into_iter().map(|price| metered_item(&plan_item, price)));
                }
            }
            let length = period_secs(&subscription["items"]["data"][0]["price"]);
            subscription["items"]["data"][0]["current_period_start"] = json!(end);
            subscription["items"]["data"][0]["current_period_end"] = json!(end + length);
        }
        // The new period's invoice, paid: the subscription active (a trial's end included).
        self.invoice_outcome(id, true)
    }

    /// Moves the plan item to `price` × `quantity` as of `at`, invoicing the prorations at once
    /// (`proration_behavior=always_invoice`): the invoice, paid, then the subscription's event.
    fn change_prorated(
        self: &Arc<Self>,
        id: &str,
        price: Option<Value>,
        quantity: Option<i64>,
        at: i64,
    ) -> Option<Value> {
        let (invoice, updated) = {
            let mut account = self.account();
            let customer_tax = {
                let customer = account.subscriptions.get(id)?["customer"].as_str().unwrap_or_default().to_owned();
                account.customers.get(&customer).cloned()
            };
            let subscription = account.subscriptions.get_mut(id)?;
            let item = &subscription["items"]["data"][0];
            let price = price.unwrap_or_else(|| item["price"].clone());
            let quantity = quantity.unwrap_or_else(|| item["quantity"].as_i64().unwrap_or(1));
            let (lines, (start, end)) = proration::change_lines(subscription, &price, quantity, at);
            let invoice = invoice_with_lines(
                &new_id("in"),
                subscription,
                lines,
                customer_tax.as_ref(),
                true,
                "subscription_update",
            );
            set_price(subscription, price);
            let item = &mut subscription["items"]["data"][0];
            item["quantity"] = json!(quantity);
            item["current_period_start"] = json!(start);
            item["current_period_end"] = json!(end);
            if start == at {
                subscription["billing_cycle_anchor"] = json!(at);
            }
            (invoice, subscription.clone())
        };
        self.emit(vec![("invoice.paid", invoice), ("customer.subscription.updated", updated.clone())]);
        Some(updated)
    }

    /// Applies a change to a subscription and emits its event; `None` if there is no such one.
    fn change(self: &Arc<Self>, id: &str, change: impl FnOnce(&mut Value)) -> Option<Value> {
        let updated = {
            let mut account = self.account();
            let subscription = account.subscriptions.get_mut(id)?;
            change(subscription);
            subscription.clone()
        };
        let kind = if updated["status"] == "canceled" {
            "customer.subscription.deleted"
        } else {
            "customer.subscription.updated"
        };
        self.emit(vec![(kind, updated.clone())]);
        Some(updated)
    }
}

fn cancel_now(subscription: &mut Value) {
    subscription["status"] = json!("canceled");
    subscription["canceled_at"] = json!(now());
    subscription["cancel_at_period_end"] = json!(false);
}

fn set_cancel_at_period_end(subscription: &mut Value, cancel: bool) {
    subscription["cancel_at_period_end"] = json!(cancel);
    subscription["cancel_at"] =
        if cancel { subscription["items"]["data"][0]["current_period_end"].clone() } else { Value::Null };
}

/// What a subscription's plan item costs per period: its price times its quantity.
fn amount_of(subscription: &Value) -> i64 {
    let item = &subscription["items"]["data"][0];
    item["price"]["unit_amount"].as_i64().unwrap_or_default() * item["quantity"].as_i64().unwrap_or(1)
}

fn set_price(subscription: &mut Value, price: Value) {
    subscription["items"]["data"][0]["plan"] = plan_of(&price);
    subscription["items"]["data"][0]["price"] = price;
}

/// A metered item of `price` beside the subscription's plan item (its period, its
/// subscription): no quantity, usage decides.
fn metered_item(plan_item: &Value, price: Value) -> Value {
    let mut item = plan_item.clone();
    item["id"] = json!(new_id("si"));
    item["plan"] = plan_of(&price);
    item["price"] = price;
    if let Some(fields) = item.as_object_mut() {
        fields.remove("quantity");
    }
    item
}

/// The legacy `plan` object Stripe still puts on subscription items, from the item's price.
fn plan_of(price: &Value) -> Value {
    json!({
        "id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"], "billing_scheme": price["billing_scheme"],
        "created": price["created"], "currency": price["currency"],
        "interval": price["recurring"]["interval"], "interval_count": price["recurring"]["interval_count"],
        "livemode": false, "metadata": {}, "nickname": price["nickname"], "product": price["product"],
        "usage_type": price["recurring"]["usage_type"]
    })
}

pub fn router(stripe: Arc<LocalStripe>) -> Router {
    Router::new()
        .route("/v1/prices", get(list_prices))
        .route("/v1/customers", post(create_customer))
        .route("/v1/customers/{id}", get(read_customer).post(update_customer))
        .route("/v1/customers/{id}/tax_ids", post(create_tax_id))
        .route("/v1/customers/{id}/tax_ids/{tax_id}", delete(delete_tax_id))
        .route("/v1/checkout/sessions", post(create_checkout_session))
        .route("/v1/billing_portal/sessions", post(create_portal_session))
        .route("/v1/subscriptions", get(list_subscriptions).post(create_subscription))
        .route("/v1/subscriptions/{id}", get(read_subscription).post(update_subscription).delete(delete_subscription))
        .route("/v1/subscriptions/{id}/migrate", post(migrate_subscription))
        .route("/v1/subscription_schedules", post(create_schedule))
        .route("/v1/subscription_schedules/{id}", post(update_schedule))
        .route("/v1/subscription_schedules/{id}/release", post(release_schedule))
        .route("/v1/events", get(list_events))
        .route("/v1/invoices", get(list_invoices))
        .route("/v1/invoices/create_preview", post(preview_invoice))
        .route("/v1/invoices/{id}", get(read_invoice))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/billing/meter_events", post(create_meter_event))
        .route("/checkout/{id}", get(checkout_page))
        .route("/checkout/{id}/pay", post(pay_checkout))
        .route("/portal/{id}", get(portal_page))
        .route("/portal/{id}/{subscription}/{action}", post(portal_action))
        .layer(axum::middleware::from_fn_with_state(stripe.clone(), idempotent))
        .with_state(stripe)
}

/// How long Stripe keeps an idempotent answer.
const IDEMPOTENCY_SECS: i64 = 86_400;

/// As Stripe: a POST with an `Idempotency-Key` seen before gets the first answer again, and
/// nothing is done twice; the same key with other parameters is a 400 `idempotency_error`, and
/// while the first request still runs, a 409. Only successful answers are kept.
async fn idempotent(
    State(stripe): State<Arc<LocalStripe>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let key = request.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(key) = key.filter(|_| request.method() == axum::http::Method::POST) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return error(StatusCode::BAD_REQUEST, None, "The request body could not be read.".into());
    };
    let fingerprint = format!("{} {}", parts.uri.path(), String::from_utf8_lossy(&body));
    let idempotency_error = |status: StatusCode, message: &str| {
        let body = json!({"error": {"type": "idempotency_error", "message": message}});
        (status, axum::Json(body)).into_response()
    };
    {
        let mut account = stripe.account();
        let cutoff = now() - IDEMPOTENCY_SECS;
        account.idempotent.retain(|_, seen| seen["at"].as_i64().unwrap_or_default() > cutoff);
        if let Some(seen) = account.idempotent.get(&key) {
            if seen["request"] != fingerprint.as_str() {
                return idempotency_error(
                    StatusCode::BAD_REQUEST,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                );
            }
            if seen["in_flight"] == true {
                return idempotency_error(
                    StatusCode::CONFLICT,
                    "There is currently another in-progress request using this Idempotent Key.",
                );
            }
            let status = seen["status"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok());
            return (
                status.unwrap_or(StatusCode::OK),
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::HeaderName::from_static("idempotent-replayed"), "true"),
                ],
                seen["body"].to_string(),
            )
                .into_response();
        }
        account.idempotent.insert(key.clone(), json!({"request": fingerprint, "in_flight": true, "at": now()}));
    }
    let response = next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    {
        let mut account = stripe.account();
        match serde_json::from_slice::<Value>(&body) {
            Ok(answer) if parts.status.is_success() => {
                account.idempotent.insert(
                    key,
                    json!({"request": fingerprint, "status": parts.status.as_u16(), "body": answer, "at": now()}),
                );
            }
            _ => {
                account.idempotent.remove(&key);
            }
        }
    }
    stripe.save();
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn query_pairs(query: Option<String>) -> Form {
    serde_urlencoded::from_str(&query.unwrap_or_default()).unwrap_or_default()
}

fn form_of(body: &Bytes) -> Form {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

async fn list_prices(RawQuery(query): RawQuery) -> Response {
    let query = query_pairs(query);
    let prices: Vec<Value> =
        query.iter().filter(|(k, _)| k.starts_with("lookup_keys[")).filter_map(|(_, key)| price(key)).collect();
    list("/v1/prices", prices, false)
}

async fn create_customer(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let customer = json!({"id": new_id("cus"), "object": "customer", "created": now(), "livemode": false,
                          "email": field(&form, "email"), "name": field(&form, "name"), "metadata": metadata(&form, "metadata")});
    stripe.account().customers.insert(customer["id"].as_str().unwrap_or_default().to_owned(), customer.clone());
    stripe.save();
    axum::Json(customer).into_response()
}

/// A customer with its tax IDs (`expand[]=tax_ids`, as the API asks; always included here).
fn customer_view(customer: &Value) -> Value {
    let mut view = customer.clone();
    let tax_ids: Vec<Value> = customer["_tax_ids"].as_array().cloned().unwrap_or_default();
    view.as_object_mut().map(|o| o.remove("_tax_ids"));
    let url = format!("/v1/customers/{}/tax_ids", customer["id"].as_str().unwrap_or_default());
    view["tax_ids"] = json!({"object": "list", "has_more": false, "url": url, "data": tax_ids});
    view
}

async fn read_customer(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    match stripe.account().customers.get(&id) {
        Some(customer) => axum::Json(customer_view(customer)).into_response(),
        None => missing("customer", &id),
    }
}

/// Sets the customer's `name` and `address[...]` fields that the form carries.
async fn update_customer(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form = form_of(&body);
    let updated = {
        let mut account = stripe.account();
        let Some(customer) = account.customers.get_mut(&id) else { return missing("customer", &id) };
        if let Some(name) = field(&form, "name") {
            customer["name"] = json!(name);
        }
        let address = metadata(&form, "address");
        if address.as_object().is_some_and(|a| !a.is_empty()) {
            let mut full = json!({"line1": null, "line2": null, "city": null, "state": null, "postal_code": null, "country": null});
            for (key, value) in address.as_object().into_iter().flatten() {
                full[key] = value.clone();
            }
            customer["address"] = full;
        }
        customer_view(customer)
    };
    stripe.save();
    axum::Json(updated).into_response()
}

/// A tax ID as Stripe creates it: the value's shape is checked (letters and digits, at least
/// four), then it waits for verification.
async fn create_tax_id(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form = form_of(&body);
    let (kind, value) = (field(&form, "type").unwrap_or_default(), field(&form, "value").unwrap_or_default());
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() < 4 || !compact.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return error(StatusCode::BAD_REQUEST, Some("tax_id_invalid"), format!("Invalid value for {kind}."));
    }
    let tax_id = json!({"id": new_id("txi"), "object": "tax_id", "country": compact.get(..2), "created": now(),
                        "customer": id, "livemode": false, "type": kind, "value": compact,
                        "verification": {"status": "pending", "verified_address": null, "verified_name": null}});
    {
        let mut account = stripe.account();
        let Some(customer) = account.customers.get_mut(&id) else { return missing("customer", &id) };
        let mut tax_ids = customer["_tax_ids"].as_array().cloned().unwrap_or_default();
        tax_ids.push(tax_id.clone());
        customer["_tax_ids"] = json!(tax_ids);
    }
    stripe.save();
    axum::Json(tax_id).into_response()
}

async fn delete_tax_id(State(stripe): State<Arc<LocalStripe>>, Path((id, tax_id)): Path<(String, String)>) -> Response {
    let removed = {
        let mut account = stripe.account();
        let Some(customer) = account.customers.get_mut(&id) else { return missing("customer", &id) };
        let mut tax_ids = customer["_tax_ids"].as_array().cloned().unwrap_or_default();
        let before = tax_ids.len();
        tax_ids.retain(|t| t["id"] != tax_id.as_str());
        customer["_tax_ids"] = json!(tax_ids);
        before != customer["_tax_ids"].as_array().map_or(0, Vec::len)
    };
    stripe.save();
    if removed {
        axum::Json(json!({"id": tax_id, "object": "tax_id", "deleted": true})).into_response()
    } else {
        missing("tax_id", &tax_id)
    }
}

async fn create_checkout_session(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let Some(price) = field(&form, "line_items[0][price]").and_then(price_of) else {
        return error(StatusCode::BAD_REQUEST, Some("resource_missing"), "No such price".into());
    };
    let id = new_id("cs_test");
    let session = json!({
        "id": id, "object": "checkout.session", "mode": "subscription", "status": "open", "payment_status": "unpaid",
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "custom_fields": [], "custom_text": {"after_submit": null, "shipping_address": null, "submit": null,
                                             "terms_of_service_acceptance": null},
        "payment_method_types": ["card"], "shipping_options": [],
        "customer": field(&form, "customer"), "client_reference_id": field(&form, "client_reference_id"),
        "success_url": field(&form, "success_url"), "cancel_url": field(&form, "cancel_url"),
        "metadata": metadata(&form, "metadata"), "subscription": null, "livemode": false, "created": now(),
        "expires_at": now() + 86_400,
        "url": format!("{}/checkout/{id}", stripe.public_base),
        // Stripe returns line items only when expanded; the local account keeps them here.
        "local_price": price,
        "local_quantity": field(&form, "line_items[0][quantity]").and_then(|q| q.parse::<i64>().ok()).unwrap_or(1),
        "local_metered": field(&form, "line_items[1][price]").and_then(price_of),
        "subscription_data": {"metadata": metadata(&form, "subscription_data[metadata]"),
                              "trial_period_days": field(&form, "subscription_data[trial_period_days]")
                                  .and_then(|d| d.parse::<i64>().ok())},
        "billing_address_collection": field(&form, "billing_address_collection"),
        "tax_id_collection": {"enabled": field(&form, "tax_id_collection[enabled]") == Some("true"),
                              "required": "never"},
    });
    let mut session = session;
    session["automatic_tax"]["enabled"] = json!(field(&form, "automatic_tax[enabled]") == Some("true"));
    stripe.account().checkout_sessions.insert(id, session.clone());
    stripe.save();
    axum::Json(session).into_response()
}

async fn checkout_page(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    let Some(session) = stripe.account().checkout_sessions.get(&id).cloned() else {
        return missing("checkout session", &id);
    };
    let price = &session["local_price"];
    let quantity = session["local_quantity"].as_i64().unwrap_or(1);
    let amount = (price["unit_amount"].as_i64().unwrap_or_default() * quantity) as f64 / 100.0;
    let seats = if quantity > 1 { format!(" ({quantity} seats)") } else { String::new() };
    let every = price["recurring"]["interval"].as_str().unwrap_or("month");
    let input = |name: &str, label: &str| format!("<p><label>{label} <input name=\"{name}\"></label></p>");
    let mut fields = String::new();
    if session["billing_address_collection"] == "required" {
        fields.push_str(&input("name", "Name"));
        fields.push_str(&input("line1", "Address"));
        fields.push_str(&input("postal_code", "Postal code"));
        fields.push_str(&input("city", "City"));
        fields.push_str(&input("country", "Country (ISO code, e.g. DE)"));
    }
    if session["tax_id_collection"]["enabled"] == true {
        fields.push_str(&input("vat_id", "EU VAT ID (optional, e.g. FRAB123456789)"));
    }
    let tax = if session["automatic_tax"]["enabled"] == true { ", plus tax where it applies" } else { "" };
    let body = if session["status"] == "open" {
        format!(
            "<p>{}{seats} — ${amount:.2} per {every}{tax}</p><form method=\"post\" action=\"{}/checkout/{}/pay\">\
             {fields}<button type=\"submit\">Pay with a test card</button></form><p><a href=\"{}\">Cancel</a></p>",
            escape(price["nickname"].as_str().unwrap_or_default()),
            escape(&stripe.public_base),
            escape(&id),
            escape(session["cancel_url"].as_str().unwrap_or_default()),
        )
    } else {
        "<p>This checkout is complete.</p>".to_owned()
    };
    page("Checkout", &body).into_response()
}

/// Pays a checkout with a test card. The page's billing address and VAT ID, when given, are
/// saved on the customer (`customer_update[address]=auto`, `tax_id_collection`), as Checkout
/// saves them; a VAT ID is accepted when it starts with its country's code.
async fn pay_checkout(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(mut session) = stripe.account().checkout_sessions.get(&id).cloned() else {
        return missing("checkout session", &id);
    };
    if session["status"] != "open" {
        return Redirect::to(session["success_url"].as_str().unwrap_or("/")).into_response();
    }
    let customer = session["customer"].as_str().map(str::to_owned).unwrap_or_else(|| new_id("cus"));
    let form = form_of(&body);
    let given = |name: &str| field(&form, name).map(str::trim).filter(|v| !v.is_empty());
    if let Some(country) = given("country") {
        let country = country.to_uppercase();
        let mut account = stripe.account();
        let entry = account.customers.entry(customer.clone()).or_insert_with(
            || json!({"id": customer, "object": "customer", "created": now(), "livemode": false, "metadata": {}}),
        );
        entry["address"] = json!({"line1": given("line1"), "line2": null, "postal_code": given("postal_code"),
                                  "city": given("city"), "state": null, "country": country});
        if let Some(name) = given("name") {
            entry["name"] = json!(name);
        }
        if let Some(vat) = given("vat_id").map(|v| v.replace([' ', '.', '-'], "").to_uppercase()) {
            // Greece's VAT numbers start with EL.
            let prefix = if country == "GR" { "EL" } else { country.as_str() };
            if !vat.starts_with(prefix) {
                drop(account);
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("tax_id_invalid"),
                    format!("Invalid value for eu_vat: {vat}"),
                );
            }
            let kind = if country == "GB" { "gb_vat" } else { "eu_vat" };
            let tax_id = json!({"id": new_id("txi"), "object": "tax_id", "country": country, "created": now(),
                                "customer": customer, "livemode": false, "type": kind, "value": vat,
                                "verification": {"status": "verified", "verified_address": null, "verified_name": null}});
            let mut ids = entry["_tax_ids"].as_array().cloned().unwrap_or_default();
            ids.push(tax_id);
            entry["_tax_ids"] = json!(ids);
        }
        drop(account);
        stripe.save();
    }
    let automatic_tax = session["automatic_tax"]["enabled"] == true;
    let metered = Some(session["local_metered"].clone()).filter(|m| !m.is_null());
    let price = (session["local_price"].clone(), session["local_quantity"].as_i64().unwrap_or(1), metered);
    let metadata = session["subscription_data"]["metadata"].clone();
    let trial_days = session["subscription_data"]["trial_period_days"].as_i64();
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["customer"] = json!(customer);
    let success_url = session["success_url"].as_str().unwrap_or("/").to_owned();
    stripe.start_subscription(&customer, price, (metadata, automatic_tax), trial_days, |subscription| {
        session["subscription"] = json!(subscription);
        stripe.account().checkout_sessions.insert(id, session.clone());
        stripe.save();
        vec![("checkout.session.completed", session)]
    });
    Redirect::to(&success_url).into_response()
}

async fn create_portal_session(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let Some(customer) = field(&form, "customer") else {
        return error(StatusCode::BAD_REQUEST, Some("parameter_missing"), "Missing required param: customer.".into());
    };
    let id = new_id("bps");
    let session = json!({"id": id, "object": "billing_portal.session", "customer": customer, "livemode": false,
                         "configuration": "bpc_local_default",
                         "created": now(), "return_url": field(&form, "return_url"),
                         "url": format!("{}/portal/{id}", stripe.public_base)});
    stripe.account().portal_sessions.insert(id, session.clone());
    stripe.save();
    axum::Json(session).into_response()
}

async fn portal_page(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    let account = stripe.account();
    let Some(session) = account.portal_sessions.get(&id) else { return missing("portal session", &id) };
    let customer = session["customer"].as_str().unwrap_or_default();
    let mut body = String::new();
    for subscription in account.subscriptions.values().filter(|s| s["customer"] == customer) {
        let sub_id = subscription["id"].as_str().unwrap_or_default();
        let price = &subscription["items"]["data"][0]["price"];
        body.push_str(&format!(
            "<h2>{} — {}{}</h2>",
            escape(price["nickname"].as_str().unwrap_or_default()),
            escape(subscription["status"].as_str().unwrap_or_default()),
            if subscription["cancel_at_period_end"] == true { " (cancels at period end)" } else { "" }
        ));
        if subscription["status"] == "canceled" {
            continue;
        }
        let mut actions = vec![
            ("switch-pro", "Switch to Pro"),
            ("switch-team", "Switch to Team"),
            ("switch-studio", "Switch to Studio"),
        ];
        actions.push(if subscription["status"] == "past_due" {
            ("pay", "Pay the open invoice")
        } else {
            ("past-due", "Simulate a failed payment")
        });
        actions.push(("cancel", "Cancel now"));
        actions.push(("renew", "Advance to the period's end"));
        actions.push(if subscription["cancel_at_period_end"] == true {
            ("resume", "Don't cancel")
        } else {
            ("cancel-at-period-end", "Cancel at period end")
        });
        for (action, label) in actions {
            body.push_str(&format!(
                "<form method=\"post\" action=\"{}/portal/{}/{}/{action}\" style=\"display:inline\"><button>{label}</button></form>",
                escape(&stripe.public_base),
                escape(&id),
                escape(sub_id)
            ));
        }
    }
    if body.is_empty() {
        body.push_str("<p>No subscriptions.</p>");
    }
    body.push_str(&format!("<p><a href=\"{}\">Return</a></p>", escape(session["return_url"].as_str().unwrap_or("/"))));
    page("Billing portal", &body).into_response()
}

async fn portal_action(
    State(stripe): State<Arc<LocalStripe>>,
    Path((id, subscription, action)): Path<(String, String, String)>,
) -> Response {
    let customer = match stripe.account().portal_sessions.get(&id) {
        Some(session) => session["customer"].clone(),
        None => return missing("portal session", &id),
    };
    if stripe.account().subscriptions.get(&subscription).is_none_or(|s| s["customer"] != customer) {
        return missing("subscription", &subscription);
    }
    let changed = match action.as_str() {
        "switch-pro" | "switch-team" | "switch-studio" => {
            let key = match action.as_str() {
                "switch-pro" => "pro_monthly",
                "switch-team" => "team_seat_monthly",
                _ => "studio_monthly",
            };
            stripe.change(&subscription, |s| set_price(s, price(key).unwrap_or_default()))
        }
        // As Stripe does on a renewal: the invoice's event, then the subscription's.
        "past-due" => stripe.invoice_outcome(&subscription, false),
        "pay" => stripe.invoice_outcome(&subscription, true),
        "cancel" => stripe.change(&subscription, cancel_now),
        "cancel-at-period-end" => stripe.change(&subscription, |s| set_cancel_at_period_end(s, true)),
        "renew" => stripe.renew(&subscription),
        "resume" => stripe.change(&subscription, |s| set_cancel_at_period_end(s, false)),
        _ => return error(StatusCode::NOT_FOUND, None, format!("Unknown action '{action}'")),
    };
    if changed.is_none() {
        return missing("subscription", &subscription);
    }
    Redirect::to(&format!("{}/portal/{id}", stripe.public_base)).into_response()
}

async fn read_subscription(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    match stripe.account().subscriptions.get(&id) {
        Some(subscription) => axum::Json(subscription.clone()).into_response(),
        None => missing("subscription", &id),
    }
}

/// Pages of `items`, newest first, after the `starting_after` id, `limit` long (default 10).
fn paginate(items: Vec<Value>, query: &Form) -> (Vec<Value>, bool) {
    let limit: usize = field(query, "limit").and_then(|l| l.parse().ok()).unwrap_or(10).clamp(1, 100);
    let start = match field(query, "starting_after") {
        Some(after) => items.iter().position(|item| item["id"] == after).map_or(items.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    (page, has_more)
}

/// Not-canceled subscriptions (Stripe's default), or those of `status` (`all` for every one).
async fn list_subscriptions(State(stripe): State<Arc<LocalStripe>>, RawQuery(query): RawQuery) -> Response {
    let query = query_pairs(query);
    let status = field(&query, "status");
    let mut subscriptions: Vec<Value> = stripe
        .account()
        .subscriptions
        .values()
        .filter(|s| match status {
            None => s["status"] != "canceled",
            Some("all") => true,
            Some(status) => s["status"] == status,
        })
        .filter(|s| field(&query, "customer").is_none_or(|c| s["customer"] == c))
        .cloned()
        .collect();
    subscriptions.sort_by_key(|s| std::cmp::Reverse((s["created"].as_i64(), s["id"].as_str().map(str::to_owned))));
    let (page, has_more) = paginate(subscriptions, &query);
    list("/v1/subscriptions", page, has_more)
}

/// `customer`, `items[0][price]` (a price id or lookup key) and `metadata[...]`: the subscription
/// starts as a paid one would (incomplete, then active).
async fn create_subscription(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let (Some(customer), Some(price)) = (field(&form, "customer"), field(&form, "items[0][price]").and_then(price_of))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("parameter_missing"),
            "customer and items[0][price] are required".into(),
        );
    };
    let trial_days = field(&form, "trial_period_days").and_then(|d| d.parse().ok());
    let quantity = field(&form, "items[0][quantity]").and_then(|q| q.parse().ok()).unwrap_or(1);
    let automatic_tax = field(&form, "automatic_tax[enabled]") == Some("true");
    let started = stripe.start_subscription(
        customer,
        (price, quantity, field(&form, "items[1][price]").and_then(price_of)),
        (metadata(&form, "metadata"), automatic_tax),
        trial_days,
        |_| Vec::new(),
    );
    axum::Json(started).into_response()
}

/// `cancel_at_period_end`, `trial_end`, `items[0][price]` and `items[0][quantity]` (of the
/// item `items[0][id]`, which must be the subscription's).
async fn update_subscription(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form = form_of(&body);
    let cancel = field(&form, "cancel_at_period_end").map(|v| v == "true");
    let price = field(&form, "items[0][price]").and_then(price_of);
    let quantity = field(&form, "items[0][quantity]").and_then(|q| q.parse::<i64>().ok());
    if let Some(item) = field(&form, "items[0][id]") {
        let known = stripe.account().subscriptions.get(&id).map(|s| s["items"]["data"][0]["id"] == item);
        if known == Some(false) {
            return missing("subscription item", item);
        }
    }
    let trial_end = field(&form, "trial_end").and_then(|t| t.parse::<i64>().ok());
    if field(&form, "proration_behavior") == Some("always_invoice") && (price.is_some() || quantity.is_some()) {
        let at = field(&form, "proration_date").and_then(|t| t.parse::<i64>().ok()).unwrap_or_else(now);
        let changed = stripe.change_prorated(&id, price, quantity, at);
        return changed.map_or_else(|| missing("subscription", &id), |s| axum::Json(s).into_response());
    }
    let changed = stripe.change(&id, |s| {
        if let Some(end) = trial_end {
            s["trial_end"] = json!(end);
        }
        if let Some(cancel) = cancel {
            set_cancel_at_period_end(s, cancel);
        }
        if let Some(price) = price {
            set_price(s, price);
        }
        if let Some(quantity) = quantity {
            s["items"]["data"][0]["quantity"] = json!(quantity);
        }
    });
    changed.map_or_else(|| missing("subscription", &id), |s| axum::Json(s).into_response())
}

/// `billing_mode[type]`: the subscription's billing mode (every local subscription starts
/// flexible; a migration back is refused, as Stripe refuses it).
async fn migrate_subscription(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form = form_of(&body);
    if field(&form, "billing_mode[type]") != Some("flexible") {
        return error(
            StatusCode::BAD_REQUEST,
            Some("parameter_invalid"),
            "Only a migration to flexible is possible.".into(),
        );
    }
    stripe
        .change(&id, |s| s["billing_mode"] = json!({"type": "flexible", "flexible": null, "updated_at": now()}))
        .map_or_else(|| missing("subscription", &id), |s| axum::Json(s).into_response())
}

/// `from_subscription`: a schedule whose one phase is the subscription's current period.
async fn create_schedule(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let Some(subscription_id) = field(&form, "from_subscription") else {
        return error(StatusCode::BAD_REQUEST, Some("parameter_missing"), "from_subscription is required".into());
    };
    let schedule = {
        let mut account = stripe.account();
        let Some(subscription) = account.subscriptions.get_mut(subscription_id) else {
            return missing("subscription", subscription_id);
        };
        if !subscription["schedule"].is_null() {
            return error(
                StatusCode::BAD_REQUEST,
                Some("resource_already_exists"),
                "This subscription is already managed by a subscription schedule.".into(),
            );
        }
        let id = new_id("sub_sched");
        let item = &subscription["items"]["data"][0];
        let schedule = json!({
            "id": id, "object": "subscription_schedule", "created": now(), "livemode": false,
            "customer": subscription["customer"], "subscription": subscription_id, "status": "active",
            "end_behavior": "release", "metadata": {},
            "phases": [{"start_date": item["current_period_start"], "end_date": item["current_period_end"],
                        "items": [{"price": item["price"]["id"], "quantity": item["quantity"]}]}]
        });
        subscription["schedule"] = json!(id);
        account.schedules.insert(id, schedule.clone());
        schedule
    };
    stripe.save();
    axum::Json(schedule).into_response()
}

/// `phases[i][items][0][price]`, `phases[i][start_date]`, `phases[i][end_date]`, `end_behavior`.
async fn update_schedule(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form = form_of(&body);
    let phases: Vec<Value> = (0..)
        .map_while(|i| {
            field(&form, &format!("phases[{i}][items][0][price]")).map(|_| {
                let date =
                    |name: &str| field(&form, &format!("phases[{i}][{name}]")).and_then(|d| d.parse::<i64>().ok());
                // Every item of the phase: the plan's with its quantity, metered ones without.
                let items: Vec<Value> = (0..)
                    .map_while(|j| {
                        field(&form, &format!("phases[{i}][items][{j}][price]")).map(|price| {
                            let quantity = field(&form, &format!("phases[{i}][items][{j}][quantity]"))
                                .and_then(|q| q.parse::<i64>().ok());
                            json!({"price": price, "quantity": quantity})
                        })
                    })
                    .collect();
                json!({"start_date": date("start_date"), "end_date": date("end_date"), "items": items})
            })
        })
        .collect();
    let schedule = {
        let mut account = stripe.account();
        let Some(schedule) = account.schedules.get_mut(&id) else { return missing("subscription schedule", &id) };
        if !phases.is_empty() {
            schedule["phases"] = json!(phases);
        }
        if let Some(end_behavior) = field(&form, "end_behavior") {
            schedule["end_behavior"] = json!(end_behavior);
        }
        schedule.clone()
    };
    stripe.save();
    axum::Json(schedule).into_response()
}

async fn release_schedule(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    let schedule = {
        let mut account = stripe.account();
        let Some(mut schedule) = account.schedules.remove(&id) else { return missing("subscription schedule", &id) };
        if let Some(subscription) = schedule["subscription"].as_str().map(str::to_owned)
            && let Some(subscription) = account.subscriptions.get_mut(&subscription)
        {
            subscription["schedule"] = Value::Null;
        }
        schedule["status"] = json!("released");
        schedule
    };
    stripe.save();
    axum::Json(schedule).into_response()
}

async fn delete_subscription(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    stripe.change(&id, cancel_now).map_or_else(|| missing("subscription", &id), |s| axum::Json(s).into_response())
}

/// A subscription's latest invoice (`in_<subscription id>`): paid, with its payment.
async fn read_invoice(State(stripe): State<Arc<LocalStripe>>, Path(id): Path<String>) -> Response {
    let subscription_id = id.strip_prefix("in_").unwrap_or(&id);
    let Some(subscription) = stripe.account().subscriptions.get(subscription_id).cloned() else {
        return missing("invoice", &id);
    };
    axum::Json(invoice_object(&id, &subscription, amount_of(&subscription), true, "subscription_create"))
        .into_response()
}

/// A customer's invoices, newest first, as the invoice events the account sent describe them (the
/// latest state of each), paged with `limit` and `starting_after` as Stripe pages.
async fn list_invoices(State(stripe): State<Arc<LocalStripe>>, RawQuery(query): RawQuery) -> Response {
    let query = query_pairs(query);
    let customer = field(&query, "customer").map(str::to_owned);
    let mut seen = std::collections::BTreeSet::new();
    let invoices: Vec<Value> = stripe
        .account()
        .events
        .iter()
        .rev()
        .filter(|e| e["data"]["object"]["object"] == "invoice")
        .map(|e| e["data"]["object"].clone())
        .filter(|invoice| customer.as_deref().is_none_or(|c| invoice["customer"] == c))
        .filter(|invoice| seen.insert(invoice["id"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let (page, has_more) = paginate(invoices, &query);
    list("/v1/invoices", page, has_more)
}

/// The invoice the customer's subscription will send next: its plan's price for the next period;
/// or, with `subscription_details[items][0]` (`price`, `quantity`), the invoice of that change:
/// with `proration_behavior=always_invoice`, the prorations at `proration_date` (or now), as the
/// update would invoice them; with `none`, the next period's invoice at the new price.
async fn preview_invoice(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let (subscription, customer) = match field(&form, "subscription") {
        Some(id) => {
            let account = stripe.account();
            let subscription = account.subscriptions.get(id).cloned();
            let customer = subscription
                .as_ref()
                .and_then(|s| s["customer"].as_str())
                .and_then(|c| account.customers.get(c).cloned());
            (subscription, customer)
        }
        None => (None, None),
    };
    // `subscription_details[items][0][price]`: the name after the object's, in brackets.
    let detail = |name: &str| field(&form, &format!("subscription_details{name}"));
    let new_price = detail("[items][0][price]").map(|p| price_of(p).ok_or(p));
    if let Some(Err(unknown)) = new_price {
        return error(StatusCode::BAD_REQUEST, Some("resource_missing"), format!("No such price: '{unknown}'"));
    }
    let new_quantity = detail("[items][0][quantity]").and_then(|q| q.parse::<i64>().ok());
    let prorated = detail("[proration_behavior]").is_none_or(|b| b != "none");
    let Some(mut subscription) =
        subscription.filter(|s| ["active", "trialing", "past_due"].contains(&s["status"].as_str().unwrap_or_default()))
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"type": "invalid_request_error", "code": "invoice_upcoming_none",
                                        "message": "No upcoming invoices for customer"}})),
        )
            .into_response();
    };
    if (new_price.is_some() || new_quantity.is_some()) && prorated {
        let at = detail("[proration_date]").and_then(|t| t.parse::<i64>().ok()).unwrap_or_else(now);
        let item = &subscription["items"]["data"][0];
        let price = new_price.and_then(Result::ok).unwrap_or_else(|| item["price"].clone());
        let quantity = new_quantity.unwrap_or_else(|| item["quantity"].as_i64().unwrap_or(1));
        let (lines, _) = proration::change_lines(&subscription, &price, quantity, at);
        let mut invoice =
            invoice_with_lines("upcoming", &subscription, lines, customer.as_ref(), false, "subscription_update");
        as_preview(&mut invoice, at);
        return axum::Json(invoice).into_response();
    }
    // The next period's invoice: it starts where the current one ends (at the new price, if asked).
    if let Some(Ok(price)) = new_price {
        set_price(&mut subscription, price);
    }
    let item = &mut subscription["items"]["data"][0];
    if let Some(quantity) = new_quantity {
        item["quantity"] = json!(quantity);
    }
    let end = item["current_period_end"].as_i64().unwrap_or_else(now);
    item["current_period_start"] = json!(end);
    item["current_period_end"] = json!(end + period_secs(&item["price"]));
    let mut lines = vec![plan_line(&subscription)];
    lines.extend(overage_line(&mut stripe.account(), &subscription, false));
    let mut invoice = invoice_with_lines("upcoming", &subscription, lines, customer.as_ref(), false, "upcoming");
    as_preview(&mut invoice, end);
    axum::Json(invoice).into_response()
}

/// A preview is a draft with no id, number or pages yet.
fn as_preview(invoice: &mut Value, next_payment_attempt: i64) {
    invoice["id"] = Value::Null;
    invoice["status"] = json!("draft");
    invoice["attempted"] = json!(false);
    invoice["hosted_invoice_url"] = Value::Null;
    invoice["invoice_pdf"] = Value::Null;
    invoice["number"] = Value::Null;
    invoice["next_payment_attempt"] = json!(next_payment_attempt);
}

/// The line of the AI runs beyond the quota the customer's overage meter counted and no invoice
/// billed yet, on a subscription with the overage price; `invoiced` marks them billed.
fn overage_line(account: &mut Account, subscription: &Value, invoiced: bool) -> Option<Value> {
    let items = subscription["items"]["data"].as_array()?;
    let price = items
        .iter()
        .map(|item| &item["price"])
        .find(|price| price["lookup_key"] == shared::plans::AI_OVERAGE_LOOKUP_KEY)?
        .clone();
    let customer = subscription["customer"].as_str()?;
    let pending = account.meter_events.iter_mut().filter(|event| {
        event["event_name"] == OVERAGE_METER_EVENT
            && event["payload"]["stripe_customer_id"] == customer
            && event["local_invoiced"] != true
    });
    let mut runs = 0;
    for event in pending {
        runs += event["payload"]["value"].as_str().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        if invoiced {
            event["local_invoiced"] = json!(true);
        }
    }
    if runs == 0 {
        return None;
    }
    let item = &subscription["items"]["data"][0];
    let period = (item["current_period_start"].as_i64().unwrap_or(0), item["current_period_end"].as_i64().unwrap_or(0));
    let amount = runs * price["unit_amount"].as_i64().unwrap_or(0);
    Some(proration::line(
        subscription,
        format!("{runs} × AI runs beyond the quota"),
        amount,
        &price,
        runs,
        period,
        false,
    ))
}

/// The plan item's line for its current period.
fn plan_line(subscription: &Value) -> Value {
    let item = &subscription["items"]["data"][0];
    let quantity = item["quantity"].as_i64().unwrap_or(1);
    let period = (item["current_period_start"].as_i64().unwrap_or(0), item["current_period_end"].as_i64().unwrap_or(0));
    let name = item["price"]["nickname"].as_str().unwrap_or("plan");
    proration::line(
        subscription,
        format!("{quantity} × {name}"),
        amount_of(subscription),
        &item["price"],
        quantity,
        period,
        false,
    )
}

/// An invoice of `lines`: its subtotal their sum, its tax what the customer's address and tax
/// IDs call for (when the subscription has automatic tax), what is due never below zero (a
/// credit goes to the customer's balance).
fn invoice_with_lines(
    id: &str,
    subscription: &Value,
    lines: Vec<Value>,
    customer: Option<&Value>,
    paid: bool,
    reason: &str,
) -> Value {
    let subtotal: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
    let taxes = tax::taxes(subscription, customer, subtotal);
    let total = subtotal + taxes.iter().filter_map(|t| t["amount"].as_i64()).sum::<i64>();
    let mut invoice = invoice_object(id, subscription, total.max(0), paid, reason);
    invoice["lines"]["data"] = json!(lines);
    invoice["subtotal"] = json!(subtotal);
    invoice["total_excluding_tax"] = json!(subtotal);
    invoice["total"] = json!(total);
    invoice["total_taxes"] = json!(taxes);
    invoice["automatic_tax"]["enabled"] = subscription["automatic_tax"]["enabled"].clone();
    invoice["customer_address"] = customer.map_or(Value::Null, |c| c["address"].clone());
    invoice["customer_tax_ids"] = json!(
        customer
            .and_then(|c| c["_tax_ids"].as_array())
            .into_iter()
            .flatten()
            .map(|t| json!({"type": t["type"], "value": t["value"]}))
            .collect::<Vec<_>>()
    );
    invoice
}

/// An invoice of a subscription's plan item, in Stripe's shape (async-stripe's typed `Invoice`
/// parses it): paid with its payment (a payment intent), or open after a failed attempt.
fn invoice_object(id: &str, subscription: &Value, amount: i64, paid: bool, reason: &str) -> Value {
    let created = now();
    let item = &subscription["items"]["data"][0];
    let (start, end) = (item["current_period_start"].clone(), item["current_period_end"].clone());
    let payment = json!({
        "id": format!("inpay_{id}"), "object": "invoice_payment", "amount_paid": if paid { Some(amount) } else { None },
        "amount_requested": amount, "created": created, "currency": "usd", "invoice": id, "is_default": true,
        "livemode": false, "status": if paid { "paid" } else { "open" },
        "payment": {"type": "payment_intent", "payment_intent": format!("pi_{id}")},
        "status_transitions": {"canceled_at": null, "paid_at": if paid { Some(created) } else { None }}
    });
    let mut invoice = json!({
        "id": id, "object": "invoice", "account_country": "US", "account_name": "Local Stripe",
        "amount_due": amount, "amount_overpaid": 0, "amount_paid": if paid { amount } else { 0 },
        "amount_remaining": if paid { 0 } else { amount }, "amount_shipping": 0,
        "attempt_count": 1, "attempted": true, "auto_advance": !paid,
        "automatic_tax": {"enabled": false, "disabled_reason": null, "liability": null, "provider": null, "status": null},
        "billing_reason": reason, "collection_method": "charge_automatically", "created": created,
        "currency": "usd", "customer": subscription["customer"], "default_tax_rates": [], "discounts": [],
        "hosted_invoice_url": format!("https://invoice.stripe.com/i/local/{id}"), "issuer": {"type": "self"},
        "lines": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/invoices/{id}/lines")},
        "livemode": false, "metadata": {},
        "parent": {"type": "subscription_details", "quote_details": null,
                   "subscription_details": {"subscription": subscription["id"], "metadata": subscription["metadata"]}},
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "payments": {"object": "list", "has_more": false, "data": [payment], "url": format!("/v1/invoices/{id}/payments")},
        "period_end": end, "period_start": start, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "starting_balance": 0, "status": if paid { "paid" } else { "open" },
        "status_transitions": {"finalized_at": created, "marked_uncollectible_at": null,
                               "paid_at": if paid { Some(created) } else { None }, "voided_at": null},
        "subtotal": amount, "total": amount
    });
    invoice["invoice_pdf"] = json!(format!("https://pay.stripe.com/invoice/local/{id}/pdf"));
    invoice["number"] = json!(format!("LOCAL-{}", id.rsplit('_').next().unwrap_or(id).to_uppercase()));
    invoice["total_taxes"] = json!([]);
    invoice
}

async fn create_refund(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let refund = json!({"id": new_id("re"), "object": "refund", "created": now(), "currency": "usd", "status": "succeeded",
                        "payment_intent": field(&form, "payment_intent"), "reason": field(&form, "reason"),
                        "amount": field(&form, "amount").and_then(|a| a.parse::<i64>().ok())});
    stripe.account().refunds.push(refund.clone());
    stripe.save();
    axum::Json(refund).into_response()
}

async fn list_events(State(stripe): State<Arc<LocalStripe>>, RawQuery(query): RawQuery) -> Response {
    let query = query_pairs(query);
    let since: i64 = field(&query, "created[gte]").and_then(|v| v.parse().ok()).unwrap_or(0);
    let types: Vec<&str> = query.iter().filter(|(k, _)| k.starts_with("types[")).map(|(_, v)| v.as_str()).collect();
    let events: Vec<Value> = stripe
        .account()
        .events
        .iter()
        .rev()
        .filter(|e| e["created"].as_i64().unwrap_or_default() >= since)
        .filter(|e| types.is_empty() || types.iter().any(|t| e["type"] == *t))
        .cloned()
        .collect();
    let (page, has_more) = paginate(events, &query);
    list("/v1/events", page, has_more)
}

async fn create_meter_event(State(stripe): State<Arc<LocalStripe>>, body: Bytes) -> Response {
    let form = form_of(&body);
    let event = json!({"object": "billing.meter_event", "created": now(), "livemode": false,
                       "event_name": field(&form, "event_name"),
                       "identifier": field(&form, "identifier").map_or_else(|| new_id("mev"), str::to_owned),
                       "payload": metadata(&form, "payload"),
                       "timestamp": field(&form, "timestamp").and_then(|t| t.parse::<i64>().ok()).unwrap_or_else(now)});
    stripe.account().meter_events.push(event.clone());
    stripe.save();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], event.to_string()).into_response()
}

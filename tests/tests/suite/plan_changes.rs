//! Changing plan through the API, previewed then confirmed: against the local Stripe from
//! preview to event to entitlements and invoices (what the preview showed is what the invoice
//! charges; an upgrade or a move to yearly billing applies now, a downgrade or a move to monthly
//! at the period's end, and only when it fits); every refusal of a confirmation; and, against
//! the tests' Stripe, every request the two steps send.

use axum::http::StatusCode;
use integration_tests::stripe::{LocalBilling, SubscriptionState, local_stripe_events as events, now, sent};
use integration_tests::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

fn preview_path(ws: Uuid) -> String {
    format!("/v1/workspaces/{ws}/billing/subscription/preview")
}

fn change_path(ws: Uuid) -> String {
    format!("/v1/workspaces/{ws}/billing/subscription")
}

async fn preview(app: &TestApp, user: &TestUser, ws: Uuid, body: Value) -> integration_tests::TestResponse {
    app.post(user, &preview_path(ws), body).await
}

async fn confirm(app: &TestApp, user: &TestUser, ws: Uuid, token: &Value) -> integration_tests::TestResponse {
    app.post(user, &change_path(ws), json!({"preview_token": token})).await
}

/// The invoice of the local Stripe's last `invoice.paid` event.
async fn last_paid_invoice(base: &str) -> Value {
    let all = events(base).await;
    all.into_iter().find(|e| e["type"] == "invoice.paid").expect("an invoice was paid")["data"]["object"].clone()
}

#[tokio::test]
async fn what_the_preview_shows_is_what_the_change_charges() {
    let t = LocalBilling::start("plan-change").await;
    let (app, owner, ws) = (&t.app, &t.owner, t.ws);
    let billing_path = format!("/v1/workspaces/{ws}/billing");
    let billing = || app.get(owner, &billing_path);

    // No subscription yet.
    let none = preview(app, owner, ws, json!({"plan": "studio"})).await;
    assert_eq!(none.problem(StatusCode::CONFLICT), "no_subscription");
    t.checkout("pro").await;
    t.apply_events().await;
    let portal = t.portal_url().await;
    // The trial's end (its time is free, so nothing would be prorated): the first paid period.
    t.portal_action(&portal, "renew").await;
    t.apply_events().await;
    assert_eq!(
        (billing().await.body["plan"].as_str(), billing().await.body["status"].as_str()),
        (Some("pro"), Some("active"))
    );
    let same = preview(app, owner, ws, json!({"plan": "pro"})).await;
    assert_eq!(same.problem(StatusCode::CONFLICT), "already_on_plan");
    assert_eq!(preview(app, owner, ws, json!({"plan": "enterprise"})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        preview(app, owner, ws, json!({"plan": "pro", "interval": "week"})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // The old one-step change is gone: a plan without a preview is refused.
    let unpreviewed = app.post(owner, &change_path(ws), json!({"plan": "studio"})).await;
    assert_eq!(unpreviewed.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Upgrade: the prorations, as of the preview's time, computed by Stripe.
    let seen = events(&t.base).await.len();
    let shown = preview(app, owner, ws, json!({"plan": "studio"})).await.expect(StatusCode::OK).clone();
    assert_eq!((shown["plan"].as_str(), shown["interval"].as_str()), (Some("studio"), Some("month")));
    assert_eq!(shown["effective"], "now");
    let lines = shown["invoice"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(lines[0]["amount"].as_i64().unwrap() < 0 && lines[1]["amount"].as_i64().unwrap() > 0);
    assert!(lines.iter().all(|l| l["proration"] == true));
    let due = shown["invoice"]["amount_due"].as_i64().unwrap();
    assert!(due > 0 && due <= 9900 - 2900, "at most the whole difference: {due}");
    assert_eq!(due, lines[0]["amount"].as_i64().unwrap() + lines[1]["amount"].as_i64().unwrap());
    assert_eq!(events(&t.base).await.len(), seen, "a preview changes nothing");
    assert_eq!(billing().await.body["plan"], "pro");

    let applied = confirm(app, owner, ws, &shown["token"]).await;
    let applied = applied.expect(StatusCode::ACCEPTED).clone();
    assert_eq!(applied["requested"]["plan"], "studio");
    assert_eq!(applied["requested"]["effective"], "now");
    assert_eq!(applied["requested"]["amount_due"], due);
    let invoice = last_paid_invoice(&t.base).await;
    assert_eq!(invoice["amount_due"], due, "the invoice charges what the preview showed: {invoice}");
    assert_eq!(invoice["billing_reason"], "subscription_update");
    t.apply_events().await;
    assert_eq!(billing().await.body["plan"], "studio");
    let listed = app.get(owner, &format!("/v1/workspaces/{ws}/invoices")).await;
    assert_eq!(listed.expect(StatusCode::OK)["items"][0]["amount_due"], due);
    // The same confirmation again (a retry): the same answer, nothing new asked.
    let seen = events(&t.base).await.len();
    let again = confirm(app, owner, ws, &shown["token"]).await;
    assert_eq!(again.expect(StatusCode::ACCEPTED)["requested"], applied["requested"]);
    assert_eq!(events(&t.base).await.len(), seen);

    // Downgrade while using what Pro does not include: refused at the preview, naming it.
    let key = app.post(owner, &format!("/v1/workspaces/{ws}/api-keys"), json!({"name": "CI", "role": "member"})).await;
    let key_id = key.id();
    let refused = preview(app, owner, ws, json!({"plan": "pro"})).await;
    assert_eq!(refused.problem(StatusCode::CONFLICT), "downgrade_blocked");
    assert_eq!(refused.body["errors"][0]["field"], "api_keys", "{}", refused.body);

    // Once it fits: the first invoice at Pro's price, at the period's end.
    app.delete(owner, &format!("/v1/workspaces/{ws}/api-keys/{key_id}")).await.expect(StatusCode::NO_CONTENT);
    let shown = preview(app, owner, ws, json!({"plan": "pro"})).await.expect(StatusCode::OK).clone();
    assert_eq!(shown["effective"], "period_end");
    assert_eq!(shown["invoice"]["amount_due"], 2900);
    assert_eq!(shown["at"], billing().await.body["current_period_end"]);
    // A key made after the preview: the confirmation is refused as blocked, not applied.
    let key = app.post(owner, &format!("/v1/workspaces/{ws}/api-keys"), json!({"name": "CI", "role": "member"})).await;
    let key_id = key.id();
    assert_eq!(confirm(app, owner, ws, &shown["token"]).await.problem(StatusCode::CONFLICT), "downgrade_blocked");
    app.delete(owner, &format!("/v1/workspaces/{ws}/api-keys/{key_id}")).await.expect(StatusCode::NO_CONTENT);
    let seen = events(&t.base).await.len();
    let scheduled = confirm(app, owner, ws, &shown["token"]).await.expect(StatusCode::ACCEPTED).clone();
    assert_eq!(scheduled["requested"]["effective"], "period_end");
    assert!(scheduled["requested"]["at"].is_string());
    // Confirming again reuses the schedule.
    confirm(app, owner, ws, &shown["token"]).await.expect(StatusCode::ACCEPTED);
    assert_eq!(events(&t.base).await.len(), seen, "a schedule changes nothing until the period ends");
    t.portal_action(&portal, "renew").await;
    t.apply_events().await;
    let after = billing().await;
    assert_eq!((after.body["plan"].as_str(), after.body["status"].as_str()), (Some("pro"), Some("active")));
    assert_eq!(last_paid_invoice(&t.base).await["amount_due"], 2900, "the renewal charges what the preview showed");
    // The schedule carried the metered overage item into the new phase: runs past the quota stay
    // billable after the downgrade.
    let overage = app.get(owner, &format!("/v1/workspaces/{ws}/billing/ai-overage")).await;
    assert_eq!(overage.expect(StatusCode::OK)["billable"], true);

    // Members and viewers neither preview nor confirm.
    let member = app.user("plan-change-member").await;
    app.add_member(owner, ws, &member, "member").await;
    assert_eq!(preview(app, &member, ws, json!({"plan": "studio"})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(confirm(app, &member, ws, &shown["token"]).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn yearly_billing_is_bought_and_switched_to_through_the_preview() {
    let t = LocalBilling::start("plan-yearly").await;
    let (app, owner, ws) = (&t.app, &t.owner, t.ws);
    let billing_path = format!("/v1/workspaces/{ws}/billing");
    let billing = || app.get(owner, &billing_path);
    t.checkout("pro").await;
    t.apply_events().await;
    let portal = t.portal_url().await;
    t.portal_action(&portal, "renew").await;
    t.apply_events().await;
    let monthly = billing().await.body.clone();
    assert_eq!((monthly["plan"].as_str(), monthly["interval"].as_str()), (Some("pro"), Some("month")));

    // Monthly to yearly: now, the period restarting, the unused month credited.
    let shown =
        preview(app, owner, ws, json!({"plan": "pro", "interval": "year"})).await.expect(StatusCode::OK).clone();
    assert_eq!((shown["effective"].as_str(), shown["interval"].as_str()), (Some("now"), Some("year")));
    let lines = shown["invoice"]["lines"].as_array().unwrap();
    assert_eq!(lines[1]["amount"], 29000, "the whole year: {shown}");
    assert_eq!(lines[1]["proration"], false);
    let due = shown["invoice"]["amount_due"].as_i64().unwrap();
    assert_eq!(due, 29000 + lines[0]["amount"].as_i64().unwrap());
    confirm(app, owner, ws, &shown["token"]).await.expect(StatusCode::ACCEPTED);
    assert_eq!(last_paid_invoice(&t.base).await["amount_due"], due);
    t.apply_events().await;
    let yearly = billing().await.body.clone();
    assert_eq!((yearly["plan"].as_str(), yearly["interval"].as_str()), (Some("pro"), Some("year")));
    assert_eq!(yearly["entitlements"], monthly["entitlements"], "entitlements do not depend on the interval");
    assert_eq!(yearly["next_invoice"]["amount"], 29000);
    let start = time::OffsetDateTime::parse(
        yearly["current_period_start"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let end = time::OffsetDateTime::parse(
        yearly["current_period_end"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((end - start).whole_days() >= 365, "a year from the change");

    // Yearly back to monthly: at the end of the paid year.
    let back =
        preview(app, owner, ws, json!({"plan": "pro", "interval": "month"})).await.expect(StatusCode::OK).clone();
    assert_eq!(back["effective"], "period_end");
    assert_eq!(back["invoice"]["amount_due"], 2900);
    // A bigger plan keeps the yearly interval unless told otherwise.
    let studio = preview(app, owner, ws, json!({"plan": "studio"})).await.expect(StatusCode::OK).clone();
    assert_eq!((studio["interval"].as_str(), studio["effective"].as_str()), (Some("year"), Some("now")));
}

#[tokio::test]
async fn a_confirmation_is_refused_when_its_preview_no_longer_holds() {
    let t = LocalBilling::start("plan-stale").await;
    let (app, owner, ws) = (&t.app, &t.owner, t.ws);
    t.checkout("pro").await;
    t.apply_events().await;
    let stale = |answer: integration_tests::TestResponse| answer.problem(StatusCode::CONFLICT).to_owned();

    // Not a token of this API's, or of another workspace's: the caller's mistake.
    let shown = preview(app, owner, ws, json!({"plan": "team"})).await.expect(StatusCode::OK).clone();
    let token = shown["token"].as_str().unwrap();
    for bad in [json!("nope"), json!(format!("{token}x")), json!(token.replacen('e', "f", 1))] {
        let refused = confirm(app, owner, ws, &bad).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(refused.body["errors"][0]["field"], "preview_token");
    }
    let other = app.workspace(owner, "plan-stale-other").await;
    assert_eq!(confirm(app, owner, other, &shown["token"]).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The seats changed after a per-seat preview (a member invited).
    let seen = events(&t.base).await.len();
    let invited = app
        .post(
            owner,
            &format!("/v1/workspaces/{ws}/invitations"),
            json!({"email": "late@seat.example", "role": "member"}),
        )
        .await;
    invited.expect(StatusCode::CREATED);
    assert_eq!(stale(confirm(app, owner, ws, &shown["token"]).await), "preview_stale");
    assert_eq!(events(&t.base).await.len(), seen, "nothing asked of Stripe");

    // The subscription changed in between (another change through the portal).
    let shown = preview(app, owner, ws, json!({"plan": "studio"})).await.expect(StatusCode::OK).clone();
    let portal = t.portal_url().await;
    t.portal_action(&portal, "switch-team").await;
    assert_eq!(stale(confirm(app, owner, ws, &shown["token"]).await), "preview_stale");

    // The period renewed in between.
    t.apply_events().await;
    let shown = preview(app, owner, ws, json!({"plan": "studio"})).await.expect(StatusCode::OK).clone();
    t.portal_action(&portal, "renew").await;
    let refused = confirm(app, owner, ws, &shown["token"]).await;
    assert_eq!(stale(refused), "preview_stale");
    assert_eq!(t.billing().await["plan"], "team", "nothing applied");
}

#[tokio::test]
async fn the_preview_and_the_change_send_stripe_the_same_pinned_change() {
    let app = TestApp::new().await;
    let t = app.tenant("plan-requests").await;
    let (subscription, customer) = (format!("sub_{}", t.id.simple()), format!("cus_{}", t.id.simple()));
    app.stripe_account.put(&SubscriptionState {
        subscription: subscription.clone(),
        customer: customer.clone(),
        workspace_id: t.id,
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 1_000_000,
        cancel_at_period_end: false,
    });
    integration_tests::subscribe(t.id, "pro", "active").await;

    let shown = preview(&app, &t.owner, t.id, json!({"plan": "studio", "interval": "year"})).await;
    let shown = shown.expect(StatusCode::OK).clone();
    assert_eq!(shown["invoice"]["amount_due"], 4100);
    let previews = sent(&app.stripe, Some("POST"), "/v1/invoices/create_preview").await;
    let asked = &previews[0];
    let pinned = asked["subscription_details[proration_date]"].clone();
    for (field, value) in [
        ("customer", customer.as_str()),
        ("subscription", subscription.as_str()),
        ("subscription_details[items][0][id]", &format!("si_{subscription}")),
        ("subscription_details[items][0][price]", "price_studio_yearly"),
        ("subscription_details[items][0][quantity]", "1"),
        ("subscription_details[proration_behavior]", "always_invoice"),
    ] {
        assert_eq!(asked.get(field).map(String::as_str), Some(value), "{field}: {asked:?}");
    }
    assert!((pinned.parse::<i64>().unwrap() - now()).abs() < 60);

    // Stripe now computes another amount (a changed tax, say): refused, nothing changed.
    app.stripe_account.set_change_preview_due(4300);
    let refused = confirm(&app, &t.owner, t.id, &shown["token"]).await;
    assert_eq!(refused.problem(StatusCode::CONFLICT), "preview_stale");
    assert!(refused.body["detail"].as_str().unwrap().contains("4300"));
    let updates = format!("/v1/subscriptions/{subscription}");
    assert!(sent(&app.stripe, Some("POST"), &updates).await.is_empty());
    app.stripe_account.set_change_preview_due(4100);

    confirm(&app, &t.owner, t.id, &shown["token"]).await.expect(StatusCode::ACCEPTED);
    let previews = sent(&app.stripe, Some("POST"), "/v1/invoices/create_preview").await;
    assert_eq!(previews.len(), 3, "asked again at each confirmation");
    assert_eq!(previews[2]["subscription_details[proration_date]"], pinned, "at the same proration date");
    let update = &sent(&app.stripe, Some("POST"), &updates).await[0];
    for (field, value) in [
        ("items[0][id]", format!("si_{subscription}")),
        ("items[0][price]", "price_studio_yearly".to_owned()),
        ("items[0][quantity]", "1".to_owned()),
        ("proration_behavior", "always_invoice".to_owned()),
        ("proration_date", pinned.clone()),
    ] {
        assert_eq!(update.get(field), Some(&value), "{field}: {update:?}");
    }
    let keys: Vec<_> = app
        .stripe
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == updates)
        .map(|r| r.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned())
        .collect();
    assert!(keys[0].starts_with(&format!("upgrade:{subscription}:")), "{keys:?}");
}

/// Checkout sells the yearly price when asked, and an open session is reused only for the same
/// plan at the same interval.
#[tokio::test]
async fn checkout_sells_the_yearly_price_when_asked() {
    let app = TestApp::new().await;
    let owner = app.user("checkout-yearly").await;
    let ws = app.workspace(&owner, "checkout-yearly").await;
    let path = format!("/v1/workspaces/{ws}/billing/checkout");
    let body = |interval: Option<&str>| {
        json!({"plan": "pro", "interval": interval, "success_url": "https://app.example.test/ok",
               "cancel_url": "https://app.example.test/no"})
    };
    let yearly = app.post(&owner, &path, body(Some("year"))).await.expect(StatusCode::OK).clone();
    assert_eq!(yearly["interval"], "year");
    let monthly = app.post(&owner, &path, body(None)).await.expect(StatusCode::OK).clone();
    assert_eq!(monthly["interval"], "month");
    assert_ne!(yearly["id"], monthly["id"], "another interval, another session");
    let again = app.post(&owner, &path, body(Some("year"))).await.expect(StatusCode::OK).clone();
    assert_eq!(again["id"], yearly["id"]);
    let sessions = sent(&app.stripe, Some("POST"), "/v1/checkout/sessions").await;
    let prices: Vec<&str> = sessions.iter().map(|s| s["line_items[0][price]"].as_str()).collect();
    assert_eq!(prices, ["price_pro_yearly", "price_pro_monthly"]);
    assert_eq!(app.post(&owner, &path, body(Some("decade"))).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A key Stripe refuses as reused with other parameters is the caller's mistake: 422 on the
/// header, not a 502.
#[tokio::test]
async fn a_key_stripe_refuses_as_reused_is_a_422() {
    let t = LocalBilling::start("plan-change-key").await;
    t.checkout("pro").await;
    t.apply_events().await;
    let stripe = shared::stripe::StripeClient::new(&"sk_test_local".into(), Some(t.base.as_str())).unwrap();
    let subscription = t.subscription_id().await;
    let ask = |cancel: bool| {
        stripe_billing::subscription::UpdateSubscription::new(subscription.as_str()).cancel_at_period_end(cancel)
    };
    stripe.post(ask(true), "reused-key").await.expect("the first use of the key");
    let refused = stripe.post(ask(false), "reused-key").await.expect_err("a key reused with other parameters");
    assert!(matches!(refused, shared::stripe::StripeError::IdempotencyKeyReused), "{refused}");
    let answer = shared::billing::stripe_failure(refused);
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(matches!(&answer, shared::ApiError::Validation(errors) if errors[0].field == "Idempotency-Key"));
}

/// A subscription in Stripe's classic billing mode with the monthly metered overage item, moving
/// to a yearly plan: previewed as flexible, and migrated before it is changed (Stripe allows a
/// yearly item beside a monthly one only in flexible mode).
#[tokio::test]
async fn a_classic_subscription_moves_to_flexible_billing_before_its_intervals_mix() {
    let app = TestApp::new().await;
    let t = app.tenant("plan-flexible").await;
    let subscription = format!("sub_{}", t.id.simple());
    app.stripe_account.put(&SubscriptionState {
        subscription: subscription.clone(),
        customer: format!("cus_{}", t.id.simple()),
        workspace_id: t.id,
        status: "active",
        lookup_key: "pro_monthly",
        period_end: now() + 1_000_000,
        cancel_at_period_end: false,
    });
    app.stripe_account.update(&subscription, |s| {
        s["billing_mode"] = json!({"type": "classic"});
        let mut metered = s["items"]["data"][0].clone();
        metered["id"] = json!("si_metered");
        metered["price"] = integration_tests::stripe::price_object("ai_overage_run");
        s["items"]["data"].as_array_mut().unwrap().push(metered);
    });
    integration_tests::subscribe(t.id, "pro", "active").await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(format!("/v1/subscriptions/{subscription}/migrate")))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"id": subscription, "object": "subscription"})),
        )
        .mount(&app.stripe)
        .await;

    let shown = preview(&app, &t.owner, t.id, json!({"plan": "pro", "interval": "year"})).await;
    let shown = shown.expect(StatusCode::OK).clone();
    let previews = sent(&app.stripe, Some("POST"), "/v1/invoices/create_preview").await;
    assert_eq!(previews[0].get("subscription_details[billing_mode][type]").map(String::as_str), Some("flexible"));
    assert!(
        sent(&app.stripe, Some("POST"), &format!("/v1/subscriptions/{subscription}/migrate")).await.is_empty(),
        "a preview changes nothing"
    );
    confirm(&app, &t.owner, t.id, &shown["token"]).await.expect(StatusCode::ACCEPTED);
    let migrations = sent(&app.stripe, Some("POST"), &format!("/v1/subscriptions/{subscription}/migrate")).await;
    assert_eq!(migrations.len(), 1);
    assert_eq!(migrations[0]["billing_mode[type]"], "flexible");
    let order: Vec<String> = app
        .stripe
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.method.as_str() == "POST" && r.url.path().starts_with(&format!("/v1/subscriptions/{subscription}"))
        })
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        order,
        [format!("/v1/subscriptions/{subscription}/migrate"), format!("/v1/subscriptions/{subscription}")]
    );
    // A monthly change of the same subscription mixes nothing: no migration asked.
    let studio = preview(&app, &t.owner, t.id, json!({"plan": "studio", "interval": "month"})).await;
    studio.expect(StatusCode::OK);
    let last = sent(&app.stripe, Some("POST"), "/v1/invoices/create_preview").await;
    assert_eq!(last.last().unwrap().get("subscription_details[billing_mode][type]"), None);
}

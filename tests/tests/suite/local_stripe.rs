//! The local Stripe that `scripts/dev.sh` runs in place of Stripe: the product's own clients
//! (checkout, portal, the billing worker's async-stripe reads, reconciliation) work against it,
//! and the events it sends, applied in any order, end on its state.

use integration_tests::stripe::{LocalBilling, local_stripe_events as events, start_local_stripe};
use integration_tests::{TestApp, base_settings, billing_queue};
use serde_json::json;

#[tokio::test]
async fn checkout_portal_worker_and_reconciliation_work_against_the_local_stripe() {
    let base = start_local_stripe().await;
    let mut settings = base_settings();
    settings.push(("STRIPE_API_BASE".into(), base.clone()));
    let app = TestApp::with_settings(settings).await;
    let owner = app.user("local-stripe").await;
    let ws = app.workspace(&owner, "Local Stripe").await;
    let worker: billing_worker::Worker =
        integration_tests::worker("app_billing", &integration_tests::billing_settings(&base, 7)).await;

    // Checkout: the checkout function creates the customer and session in the local Stripe.
    let session = app
        .post(
            &owner,
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            json!({"plan": "pro", "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}),
        )
        .await;
    let url = session.expect(axum::http::StatusCode::OK)["url"].as_str().unwrap().to_owned();
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Pay with a test card") && page.contains("Pro"), "{page}");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let paid = client.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(paid.headers()["location"], "https://app.example.test/ok");

    // The events it sent share one second; applied newest first (the worst order), they still
    // end on the local Stripe's state.
    let sent = events(&base).await;
    let kinds: Vec<&str> = sent.iter().rev().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "customer.subscription.created",
            "checkout.session.completed",
            "invoice.paid",
            "customer.subscription.updated"
        ]
    );
    assert_eq!(sent[3]["data"]["object"]["status"], "incomplete");
    for event in &sent {
        worker.apply(&event.to_string()).await.unwrap();
    }
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    // The workspace's first paid subscription: in the plan's trial, with its entitlements.
    assert_eq!((billing.body["plan"].as_str(), billing.body["status"].as_str()), (Some("pro"), Some("trialing")));
    let trial_end = sent[0]["data"]["object"]["trial_end"].as_i64().expect("a trial end");
    let created = sent[0]["data"]["object"]["created"].as_i64().unwrap();
    assert_eq!(trial_end - created, 14 * 86_400);

    // An operator's trial extension: the local Stripe moves the trial's end and says so; the
    // sync records it, and the price the subscription is worth.
    let subscription = sent[0]["data"]["object"]["id"].as_str().unwrap().to_owned();
    let end = integration_tests::stripe::now() + 30 * 86_400;
    worker.stripe.extend_trial(&subscription, end, "extend-trial:local").await.unwrap().expect("the subscription");
    let updated = events(&base).await.into_iter().next().unwrap();
    assert_eq!(
        (updated["type"].as_str(), updated["data"]["object"]["trial_end"].as_i64()),
        (Some("customer.subscription.updated"), Some(end))
    );
    worker.apply(&updated.to_string()).await.unwrap();
    let synced: (Option<time::OffsetDateTime>, Option<i64>, Option<String>) =
        sqlx::query_as("SELECT trial_end, monthly_amount, currency FROM subscriptions WHERE workspace_id = $1")
            .bind(ws)
            .fetch_one(&integration_tests::owner_pool().await)
            .await
            .unwrap();
    assert_eq!(
        (synced.0.map(|t| t.unix_timestamp()), synced.1, synced.2.as_deref()),
        (Some(end), Some(2900), Some("usd"))
    );

    // The portal: the portal function opens a session; cancelling there sends the deletion.
    let portal = app
        .post(
            &owner,
            &format!("/v1/workspaces/{ws}/billing/portal"),
            json!({"return_url": "https://app.example.test/"}),
        )
        .await;
    let portal_url = portal.expect(axum::http::StatusCode::OK)["url"].as_str().unwrap().to_owned();
    assert!(reqwest::get(&portal_url).await.unwrap().text().await.unwrap().contains("Cancel at period end"));

    // A failed renewal: the invoice's event, then the subscription past due, as Stripe sends
    // them; the workspace keeps its plan through the grace period and shows the payment failed.
    let failed = client.post(format!("{portal_url}/{subscription}/past-due")).send().await.unwrap();
    assert_eq!(failed.status(), 303);
    let sent = events(&base).await;
    let kinds: Vec<&str> = sent[..2].iter().rev().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["invoice.payment_failed", "customer.subscription.updated"]);
    for event in sent[..2].iter().rev() {
        worker.apply(&event.to_string()).await.unwrap();
    }
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!(
        (billing.body["plan"].as_str(), billing.body["status"].as_str(), billing.body["payment"].as_str()),
        (Some("pro"), Some("past_due"), Some("failed"))
    );
    assert!(reqwest::get(&portal_url).await.unwrap().text().await.unwrap().contains("Pay the open invoice"));
    let paid = client.post(format!("{portal_url}/{subscription}/pay")).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    let sent = events(&base).await;
    assert_eq!(sent[1]["type"], "invoice.paid");
    for event in sent[..2].iter().rev() {
        worker.apply(&event.to_string()).await.unwrap();
    }
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["status"].as_str(), billing.body["payment"].as_str()), (Some("active"), Some("paid")));

    let canceled = client.post(format!("{portal_url}/{subscription}/cancel")).send().await.unwrap();
    assert_eq!(canceled.status(), 303);
    let deleted = events(&base).await.into_iter().next().unwrap();
    assert_eq!(deleted["type"], "customer.subscription.deleted");
    worker.apply(&deleted.to_string()).await.unwrap();
    let billing = app.get(&owner, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!((billing.body["plan"].as_str(), billing.body["status"].as_str()), (Some("free"), Some("canceled")));

    // Reconciliation reads the same account: every event already applied, nothing drifted here.
    let report = integration_tests::reconciler(&base, &billing_queue().await).await.run().await.unwrap();
    assert_eq!(report.events_checked, 10);
    assert!(report.missed_events.is_empty(), "{report:?}");
    assert!(!report.drift.iter().any(|d| d.workspace_id == ws), "{report:?}");
}

/// The local Stripe answers in Stripe's shapes: async-stripe's own typed objects (not only the
/// tolerant JSON reading the product does) parse its prices, customers, Checkout and portal
/// sessions, meter events, subscriptions (created, read, listed, updated, canceled) and event list.
#[tokio::test]
async fn async_stripes_own_types_parse_the_local_stripes_answers() {
    use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
    use stripe_billing::billing_portal_session::CreateBillingPortalSession;
    use stripe_billing::invoice::{CreatePreviewInvoice, ListInvoice, RetrieveInvoice};
    use stripe_billing::subscription::{
        CancelSubscription, CreateSubscription, CreateSubscriptionItems, ListSubscription, RetrieveSubscription,
        UpdateSubscription,
    };
    use stripe_checkout::CheckoutSessionMode;
    use stripe_checkout::checkout_session::{CreateCheckoutSession, CreateCheckoutSessionLineItems};
    use stripe_core::customer::CreateCustomer;
    use stripe_core::event::ListEvent;
    use stripe_product::price::ListPrice;

    let base = start_local_stripe().await;
    let client = stripe::ClientBuilder::new("sk_test_local").url(format!("{base}/")).build().unwrap();
    let prices = ListPrice::new().lookup_keys(vec!["pro_monthly".to_owned()]).send(&client).await.unwrap();
    let price = prices.data.first().expect("the catalog's price");
    assert_eq!((price.lookup_key.as_deref(), price.unit_amount), (Some("pro_monthly"), Some(2900)));
    let customer = CreateCustomer::new().name("Typed").send(&client).await.unwrap();
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price = Some(price.id.to_string());
    item.quantity = Some(1);
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(customer.id.as_str())
        .line_items(vec![item])
        .success_url("http://127.0.0.1:3000/ok")
        .cancel_url("http://127.0.0.1:3000/no")
        .send(&client)
        .await
        .unwrap();
    assert!(session.url.is_some());
    let portal = CreateBillingPortalSession::new().customer(customer.id.as_str()).send(&client).await.unwrap();
    assert!(portal.url.starts_with(&base));
    let payload = std::collections::HashMap::from([
        ("stripe_customer_id".to_owned(), customer.id.to_string()),
        ("value".to_owned(), "1".to_owned()),
    ]);
    let meter = CreateBillingMeterEvent::new("ai_tool_runs", payload).send(&client).await.unwrap();
    let mut items = CreateSubscriptionItems::new();
    items.price = Some(price.id.to_string());
    let created =
        CreateSubscription::new().customer(customer.id.as_str()).items(vec![items]).send(&client).await.unwrap();
    assert_eq!(created.items.data[0].price.id, price.id);
    let read = RetrieveSubscription::new(created.id.as_str()).send(&client).await.unwrap();
    let listed = ListSubscription::new().send(&client).await.unwrap();
    assert!(listed.data.iter().any(|s| s.id == read.id));
    let updated = UpdateSubscription::new(read.id.as_str()).cancel_at_period_end(true).send(&client).await.unwrap();
    assert!(updated.cancel_at_period_end);
    // Its first invoice, and every invoice its events carried.
    let latest = read.latest_invoice.as_ref().and_then(|i| i.id().as_ref()).expect("a latest invoice").to_string();
    let invoice = RetrieveInvoice::new(latest.as_str()).send(&client).await.unwrap();
    assert_eq!((invoice.amount_paid, invoice.currency.to_string().as_str()), (2900, "usd"));
    // The customer's invoices (typed, paged), and the next one of the renewing subscription.
    let listed_invoices = ListInvoice::new().customer(customer.id.as_str()).limit(10).send(&client).await.unwrap();
    assert!(!listed_invoices.data.is_empty() && listed_invoices.data.iter().all(|i| i.number.is_some()));
    let preview = CreatePreviewInvoice::new()
        .customer(customer.id.as_str())
        .subscription(read.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!((preview.amount_due, preview.id.is_none()), (2900, true));
    assert_eq!(preview.lines.data.len(), 1);
    // The preview of a change to the yearly price, prorated at a pinned date, and the change.
    let yearly = ListPrice::new().lookup_keys(vec!["pro_yearly".to_owned()]).send(&client).await.unwrap();
    let yearly = yearly.data.first().expect("the yearly price");
    assert_eq!(yearly.unit_amount, Some(29000));
    let mut item = stripe_billing::invoice::CreatePreviewInvoiceSubscriptionDetailsItems::new();
    item.id = Some(read.items.data[0].id.to_string());
    item.price = Some(yearly.id.to_string());
    let mut details = stripe_billing::invoice::CreatePreviewInvoiceSubscriptionDetails::new();
    details.items = Some(vec![item]);
    details.proration_behavior =
        Some(stripe_billing::invoice::CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::AlwaysInvoice);
    details.proration_date = Some(read.items.data[0].current_period_start);
    let change = CreatePreviewInvoice::new()
        .customer(customer.id.as_str())
        .subscription(read.id.as_str())
        .subscription_details(details)
        .send(&client)
        .await
        .unwrap();
    let amounts: Vec<i64> = change.lines.data.iter().map(|l| l.amount).collect();
    assert_eq!((amounts, change.amount_due), (vec![-2900, 29000], 26100));
    let mut item = stripe_billing::subscription::UpdateSubscriptionItems::new();
    item.id = Some(read.items.data[0].id.to_string());
    item.price = Some(yearly.id.to_string());
    let changed = UpdateSubscription::new(read.id.as_str())
        .items(vec![item])
        .proration_behavior(stripe_billing::subscription::UpdateSubscriptionProrationBehavior::AlwaysInvoice)
        .proration_date(read.items.data[0].current_period_start)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(changed.items.data[0].price.id, yearly.id);
    let canceled = CancelSubscription::new(read.id.as_str()).send(&client).await.unwrap();
    assert_eq!(canceled.status.as_str(), "canceled");
    assert_eq!(meter.event_name, "ai_tool_runs");
    ListEvent::new().send(&client).await.unwrap();
    let invoices: Vec<serde_json::Value> = events(&base)
        .await
        .into_iter()
        .filter(|event| event["type"].as_str().is_some_and(|t| t.starts_with("invoice.")))
        .map(|event| event["data"]["object"].clone())
        .collect();
    assert!(!invoices.is_empty());
    for object in invoices {
        let typed: Result<stripe_billing::Invoice, _> = miniserde::json::from_str(&object.to_string());
        assert!(typed.is_ok(), "async-stripe cannot read {object}");
    }
}

/// A renewal that fails and stays failed: the workspace keeps its plan through the grace period
/// (told by the activity feed and an e-mail to its owners), falls to the free plan once the
/// grace period is over, and gets its plan back when the invoice is finally paid.
#[tokio::test]
async fn a_payment_still_failed_after_the_grace_period_ends_the_plan_until_it_is_paid() {
    let t = LocalBilling::start("grace").await;
    let state = || async {
        let body = t.billing().await;
        (body["plan"].as_str().unwrap().to_owned(), body["status"].as_str().unwrap().to_owned(), body)
    };
    t.checkout("studio").await;
    t.apply_events().await;
    let portal = t.portal_url().await;

    // The renewal fails: past due, the plan kept until the grace period's end.
    t.portal_action(&portal, "past-due").await;
    t.apply_events().await;
    let (plan, status, body) = state().await;
    assert_eq!((plan.as_str(), status.as_str(), body["payment"].as_str()), ("studio", "past_due", Some("failed")));
    let grace_until = time::OffsetDateTime::parse(
        body["grace_until"].as_str().expect("a grace period"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hours = (grace_until - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&hours), "seven days of grace, {hours} hours left");
    let pool = integration_tests::owner_pool().await;
    let (feed, mails): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM activity WHERE workspace_id = $1 AND message LIKE 'A payment failed%'),
                (SELECT count(*) FROM emails WHERE workspace_id = $1 AND template = 'payment_failed')",
    )
    .bind(t.ws)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((feed, mails), (1, 1), "the feed and the owner are told once");

    // Stripe keeps retrying, still failing; the grace period runs out (moved into the past here,
    // as a week passing would): the workspace is on the free plan while Stripe still says past_due.
    t.portal_action(&portal, "past-due").await;
    t.apply_events().await;
    sqlx::query("UPDATE subscriptions SET grace_until = now() - interval '1 minute' WHERE workspace_id = $1")
        .bind(t.ws)
        .execute(&pool)
        .await
        .unwrap();
    let (plan, status, body) = state().await;
    assert_eq!((plan.as_str(), status.as_str()), ("free", "past_due"));
    assert_eq!(body["entitlements"]["features"]["api_access"], false);
    let path = format!("/v1/workspaces/{}/api-keys", t.ws);
    let key = t.app.post(&t.owner, &path, json!({"name": "CI", "role": "member"})).await;
    assert_eq!(key.status, axum::http::StatusCode::PAYMENT_REQUIRED, "{}", key.body);
    // A later failure does not restart the grace period.
    t.portal_action(&portal, "past-due").await;
    t.apply_events().await;
    assert_eq!(state().await.0, "free");

    // Paid at last: the plan is back at once.
    t.portal_action(&portal, "pay").await;
    t.apply_events().await;
    let (plan, status, body) = state().await;
    assert_eq!((plan.as_str(), status.as_str(), body["payment"].as_str()), ("studio", "active", Some("paid")));
    assert!(body["grace_until"].is_null());
}

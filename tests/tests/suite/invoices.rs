//! The workspace's invoices, read from Stripe: each request the portal function sends is
//! asserted (the customer, the page size, Stripe's cursor; the preview's customer and
//! subscription), and the refused cases answer their codes without a Stripe call.

use axum::http::StatusCode;
use integration_tests::stripe::{SubscriptionState, now, sent};
use integration_tests::{Tenant, TestApp};
use std::collections::HashMap;

fn customer(t: &Tenant) -> String {
    format!("cus_{}", t.id.simple())
}

/// Stripe holds two subscriptions of the tenant's customer (an older, canceled one), so its
/// invoice list has two pages of one.
fn two_subscriptions(app: &TestApp, t: &Tenant, cancel_at_period_end: bool) {
    for (id, status, created) in [
        (format!("sub_{}", t.id.simple()), "active", now() - 100),
        (format!("sub_old_{}", t.id.simple()), "canceled", now() - 5_000_000),
    ] {
        let state = SubscriptionState {
            subscription: id,
            customer: customer(t),
            workspace_id: t.id,
            status,
            lookup_key: "studio_monthly",
            period_end: now() + 2_592_000,
            cancel_at_period_end,
        };
        app.stripe_account.put_created(&state, created);
    }
}

#[tokio::test]
async fn owners_page_through_their_invoices_with_the_next_one_on_the_first_page() {
    let app = TestApp::new().await;
    let t = app.tenant("invoices").await;
    two_subscriptions(&app, &t, false);
    let path = format!("{}/invoices", t.path());

    let first = app.get(&t.owner, &format!("{path}?limit=1")).await;
    let first = first.expect(StatusCode::OK).clone();
    let newest = format!("in_sub_{}", t.id.simple());
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let invoice = &first["items"][0];
    assert_eq!(invoice["id"], newest.as_str());
    assert_eq!(
        (invoice["status"].as_str(), invoice["total"].as_i64(), invoice["tax"].as_i64()),
        (Some("paid"), Some(2900), Some(0))
    );
    assert!(invoice["number"].as_str().is_some_and(|n| n.starts_with("TEST-")));
    assert!(invoice["hosted_invoice_url"].as_str().unwrap().starts_with("https://invoice.stripe.com/"));
    assert!(invoice["invoice_pdf"].as_str().unwrap().ends_with("/pdf"));
    assert_eq!(first["next_cursor"], newest.as_str());
    assert_eq!(first["upcoming"]["amount_due"], 2900);
    assert_eq!(first["upcoming"]["status"], "draft");
    assert!(first["upcoming"]["next_payment_attempt"].is_string());

    let second = app.get(&t.admin, &format!("{path}?limit=1&cursor={newest}")).await;
    let second = second.expect(StatusCode::OK).clone();
    assert_eq!(second["items"][0]["id"], format!("in_sub_old_{}", t.id.simple()));
    assert_eq!(second["next_cursor"], serde_json::Value::Null);
    assert_eq!(second["upcoming"], serde_json::Value::Null, "the next invoice is on the first page only");

    // What was asked of Stripe: the workspace's customer, the page size, Stripe's own cursor.
    let lists = sent(&app.stripe, None, "/v1/invoices").await;
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0].get("customer"), Some(&customer(&t)));
    assert_eq!(lists[0].get("limit").map(String::as_str), Some("1"));
    assert_eq!(lists[0].get("starting_after"), None);
    assert_eq!(lists[1].get("starting_after"), Some(&newest));
    let previews = sent(&app.stripe, None, "/v1/invoices/create_preview").await;
    assert_eq!(previews.len(), 1);
    assert_eq!(previews[0].get("customer"), Some(&customer(&t)));
    assert_eq!(previews[0].get("subscription"), Some(&format!("sub_{}", t.id.simple())));
}

#[tokio::test]
async fn a_subscription_ending_with_its_period_has_no_next_invoice() {
    let app = TestApp::new().await;
    let t = app.tenant("invoices-ending").await;
    two_subscriptions(&app, &t, true);
    sqlx::query("UPDATE subscriptions SET cancel_at_period_end = true WHERE workspace_id = $1")
        .bind(t.id)
        .execute(&integration_tests::service_pool().await)
        .await
        .unwrap();
    let page = app.get(&t.owner, &format!("{}/invoices", t.path())).await;
    let page = page.expect(StatusCode::OK).clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["upcoming"], serde_json::Value::Null);
    assert!(sent(&app.stripe, None, "/v1/invoices/create_preview").await.is_empty(), "no preview is asked for");
}

#[tokio::test]
async fn refused_invoice_requests_answer_their_code() {
    let app = TestApp::new().await;
    let t = app.tenant("invoices-refused").await;
    two_subscriptions(&app, &t, false);
    let path = format!("{}/invoices", t.path());
    for cursor in ["not-an-invoice", "in_x%26limit%3D5", "cus_123"] {
        let refused = app.get(&t.owner, &format!("{path}?cursor={cursor}")).await;
        assert_eq!(refused.problem(StatusCode::BAD_REQUEST), "invalid_cursor", "{cursor}");
    }
    assert!(sent(&app.stripe, None, "/v1/invoices").await.is_empty(), "a malformed cursor never reaches Stripe");
    // Well formed, but not one of this customer's invoices: Stripe says so.
    let unknown = app.get(&t.owner, &format!("{path}?cursor=in_someone_else")).await;
    assert_eq!(unknown.problem(StatusCode::BAD_REQUEST), "invalid_cursor");
    for limit in ["0", "101"] {
        let refused = app.get(&t.owner, &format!("{path}?limit={limit}")).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    }
    for (user, status) in
        [(&t.member, StatusCode::FORBIDDEN), (&t.viewer, StatusCode::FORBIDDEN), (&t.contact, StatusCode::FORBIDDEN)]
    {
        app.get(user, &path).await.problem(status);
    }
    // A workspace that never checked out has no invoices, and Stripe is not asked.
    let free = app.workspace(&t.owner, "Never paid").await;
    let before = sent(&app.stripe, None, "/v1/invoices").await.len();
    let none = app.get(&t.owner, &format!("/v1/workspaces/{free}/invoices")).await;
    assert_eq!(none.expect(StatusCode::OK)["items"], serde_json::json!([]));
    assert_eq!(sent(&app.stripe, None, "/v1/invoices").await.len(), before);
}

/// The form the portal function sent to `path`, the last time.
async fn last_form(app: &TestApp, path: &str) -> HashMap<String, String> {
    sent(&app.stripe, None, path).await.pop().unwrap_or_else(|| panic!("nothing was sent to {path}"))
}

#[tokio::test]
async fn owners_set_the_name_address_and_tax_ids_their_invoices_carry() {
    let app = TestApp::new().await;
    let t = app.tenant("billing-details").await;
    let path = format!("{}/billing/customer", t.path());
    let stripe_customer = format!("/v1/customers/{}", customer(&t));

    let empty = app.get(&t.owner, &path).await;
    assert_eq!(empty.expect(StatusCode::OK)["tax_ids"], serde_json::json!([]));
    let read = sent(&app.stripe, None, &stripe_customer).await;
    assert_eq!(read[0].get("expand[0]").map(String::as_str), Some("tax_ids"), "the tax IDs come with the customer");

    let body = serde_json::json!({"name": " Acme GmbH ", "address": {"line1": "Hauptstr. 1", "line2": "",
        "city": "Berlin", "postal_code": "10115", "country": "de"}});
    let updated = app.call(axum::http::Method::PUT, &path, Some(&t.owner.token), Some(&body)).await;
    let updated = updated.expect(StatusCode::OK).clone();
    assert_eq!(updated["name"], "Acme GmbH");
    assert_eq!(updated["address"]["country"], "DE");
    let form = last_form(&app, &stripe_customer).await;
    for (field, value) in [
        ("name", "Acme GmbH"),
        ("address[line1]", "Hauptstr. 1"),
        ("address[city]", "Berlin"),
        ("address[postal_code]", "10115"),
        ("address[country]", "DE"),
    ] {
        assert_eq!(form.get(field).map(String::as_str), Some(value), "{field}: {form:?}");
    }
    assert!(!form.contains_key("address[line2]"), "an empty optional line is left out: {form:?}");

    let tax_ids = format!("{path}/tax-ids");
    let added = app.post(&t.admin, &tax_ids, serde_json::json!({"type": "eu_vat", "value": " DE123456789 "})).await;
    let added = added.expect(StatusCode::CREATED).clone();
    assert_eq!((added["type"].as_str(), added["value"].as_str()), (Some("eu_vat"), Some("DE123456789")));
    assert_eq!(added["verification"], "pending");
    let form = last_form(&app, &format!("{stripe_customer}/tax_ids")).await;
    assert_eq!((form["type"].as_str(), form["value"].as_str()), ("eu_vat", "DE123456789"));
    let shown = app.get(&t.owner, &path).await;
    assert_eq!(shown.expect(StatusCode::OK)["tax_ids"][0]["id"], added["id"]);

    let one = format!("{tax_ids}/{}", added["id"].as_str().unwrap());
    app.delete(&t.owner, &one).await.expect(StatusCode::NO_CONTENT);
    app.delete(&t.owner, &one).await.expect(StatusCode::NO_CONTENT);
    let shown = app.get(&t.owner, &path).await;
    assert_eq!(shown.expect(StatusCode::OK)["tax_ids"], serde_json::json!([]));
}

#[tokio::test]
async fn refused_billing_details_answer_their_code() {
    let app = TestApp::new().await;
    let t = app.tenant("billing-details-refused").await;
    let path = format!("{}/billing/customer", t.path());
    let tax_ids = format!("{path}/tax-ids");
    for body in [
        serde_json::json!({"type": "vat", "value": "DE123456789"}),
        serde_json::json!({"type": "eu_vat", "value": ""}),
        serde_json::json!({"type": "eu_vat", "value": "x".repeat(65)}),
    ] {
        let refused = app.post(&t.owner, &tax_ids, body.clone()).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{body}");
    }
    assert!(
        sent(&app.stripe, None, &format!("/v1/customers/{}/tax_ids", customer(&t))).await.is_empty(),
        "refused before Stripe"
    );
    // Stripe refuses the number itself: the caller's mistake, with Stripe's reason.
    let refused = app.post(&t.owner, &tax_ids, serde_json::json!({"type": "eu_vat", "value": "D1"})).await;
    assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed");
    assert!(refused.body.to_string().contains("Stripe refused it"), "{}", refused.body);
    for address in [
        serde_json::json!({"line1": "Hauptstr. 1", "country": "Germany"}),
        serde_json::json!({"line1": "  ", "country": "DE"}),
        serde_json::json!({"line1": "a\nb", "country": "DE"}),
    ] {
        let body = serde_json::json!({"name": "Acme", "address": address});
        let refused = app.call(axum::http::Method::PUT, &path, Some(&t.owner.token), Some(&body)).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{body}");
    }
    assert_eq!(app.get(&t.member, &path).await.problem(StatusCode::FORBIDDEN), "forbidden");
    // A customer deleted in Stripe is a missing billing account, not a failure.
    sqlx::query("UPDATE workspaces SET stripe_customer_id = 'cus_gone_1' WHERE id = $1")
        .bind(t.id)
        .execute(&integration_tests::service_pool().await)
        .await
        .unwrap();
    assert_eq!(app.get(&t.owner, &path).await.problem(StatusCode::CONFLICT), "no_billing_account");
    // A workspace that never checked out has no billing account to hold them.
    let never = app.workspace(&t.owner, "Never paid").await;
    let none = app.get(&t.owner, &format!("/v1/workspaces/{never}/billing/customer")).await;
    assert_eq!(none.problem(StatusCode::CONFLICT), "no_billing_account");
}

//! The transactional mails, rendered from an outbox row's template name and parameters: a
//! subject, a plain-text body and an HTML body in which every value is escaped.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("no template named {0:?}")]
    Unknown(String),
    #[error("template {template:?} needs the parameter {parameter:?}")]
    Missing { template: String, parameter: &'static str },
}

/// Renders `template` with `params`; links start at `base_url` (the web app, e.g.
/// `https://app.example.com`).
pub fn render(template: &str, params: &Value, base_url: &str) -> Result<Rendered, TemplateError> {
    let get = |parameter: &'static str| {
        params[parameter]
            .as_str()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| TemplateError::Missing { template: template.to_owned(), parameter })
    };
    let optional = |parameter: &str| params[parameter].as_str().filter(|v| !v.is_empty());
    let base = base_url.trim_end_matches('/');
    match template {
        "team_invitation" | "portal_invitation" => {
            let workspace = get("workspace")?;
            let link = format!("{base}/invitations/accept?token={}", get("token")?);
            let by = optional("inviter").map(|who| format!(" by {who}")).unwrap_or_default();
            let (subject, what) = if template == "team_invitation" {
                let role = optional("role").unwrap_or("member");
                (format!("You are invited to join {workspace}"), format!("to join {workspace} as {role}"))
            } else {
                let client = optional("client").unwrap_or(workspace);
                (
                    format!("{workspace} invites you to the {client} project portal"),
                    format!("to the {client} project portal of {workspace}"),
                )
            };
            let text = format!(
                "You have been invited{by} {what}.\n\nAccept the invitation (it works once, for 7 days, \
                 signed in with this address):\n{link}\n\nIf you did not expect this, ignore this mail.\n"
            );
            let html = format!(
                "<p>You have been invited{} {}.</p>\n<p><a href=\"{}\">Accept the invitation</a> \
                 (it works once, for 7 days, signed in with this address).</p>\n\
                 <p>If you did not expect this, ignore this mail.</p>\n",
                escape(&by),
                escape(&what),
                escape(&link)
            );
            Ok(Rendered { subject, text, html })
        }
        "payment_failed" => {
            let workspace = get("workspace")?;
            let amount = match (params["amount_due"].as_i64(), optional("currency")) {
                (Some(cents), Some(currency)) => {
                    format!(" of {}.{:02} {}", cents / 100, cents % 100, currency.to_uppercase())
                }
                _ => String::new(),
            };
            let subject = format!("A payment for {workspace} failed");
            let invoice = optional("invoice_url").map(str::to_owned);
            let text = format!(
                "A payment{amount} for {workspace} failed. Stripe will retry it; to keep the plan, \
                 update the payment method in the billing portal.\n{}",
                invoice.as_deref().map(|url| format!("\nThe invoice: {url}\n")).unwrap_or_default()
            );
            let html = format!(
                "<p>A payment{} for {} failed. Stripe will retry it; to keep the plan, update the payment \
                 method in the billing portal.</p>\n{}",
                escape(&amount),
                escape(workspace),
                invoice.map(|url| format!("<p><a href=\"{}\">The invoice</a></p>\n", escape(&url))).unwrap_or_default()
            );
            Ok(Rendered { subject, text, html })
        }
        "ai_quota" => {
            let workspace = get("workspace")?;
            let percent = params["percent"].as_i64().unwrap_or(100);
            let limit = params["limit"].as_i64().unwrap_or_default();
            let subject = format!("{workspace} has used {percent}% of this month's AI runs");
            let more = if percent >= 100 {
                "New runs are refused until next month, or until the plan is upgraded."
            } else {
                "Runs are refused at 100%; upgrading the plan raises the limit."
            };
            let text = format!("{workspace} has used {percent}% of its {limit} AI runs this month. {more}\n");
            let html = format!(
                "<p>{} has used {percent}% of its {limit} AI runs this month. {}</p>\n",
                escape(workspace),
                escape(more)
            );
            Ok(Rendered { subject, text, html })
        }
        "ai_spending_cap" => {
            let workspace = get("workspace")?;
            let percent = params["percent"].as_i64().unwrap_or(100);
            let money = |cents: i64| match optional("currency") {
                Some(currency) => format!("{}.{:02} {}", cents / 100, cents % 100, currency.to_uppercase()),
                None => format!("{cents} (smallest currency unit)"),
            };
            let cap = money(params["cap"].as_i64().unwrap_or_default());
            let spent = money(params["spent"].as_i64().unwrap_or_default());
            let runs = params["runs"].as_i64().unwrap_or_default();
            let subject = format!("{workspace} has reached {percent}% of its AI spending cap");
            let more = if percent >= 100 {
                "AI runs beyond the plan's quota are refused until the quota renews, or until an owner or admin raises the cap."
            } else {
                "Runs beyond the quota stop when the cap is reached; an owner or admin can raise it."
            };
            let text = format!(
                "{workspace} has run {runs} AI tools beyond its plan's quota this month, {spent} of its {cap} spending cap. {more}\n"
            );
            let html = format!(
                "<p>{} has run {runs} AI tools beyond its plan's quota this month, {} of its {} spending cap. {}</p>\n",
                escape(workspace),
                escape(&spent),
                escape(&cap),
                escape(more)
            );
            Ok(Rendered { subject, text, html })
        }
        "webhook_disabled" => {
            let workspace = get("workspace")?;
            let url = get("url")?;
            let since = optional("failing_since").map(|at| format!(" since {at}")).unwrap_or_default();
            let subject = format!("A webhook endpoint of {workspace} was disabled");
            let text = format!(
                "Every delivery to the webhook endpoint {url} of {workspace} has failed{since}, so it was \
                 disabled and receives no more events. Fix the receiver, send a test event, then re-enable \
                 the endpoint; failed deliveries can be retried from its delivery log.\n"
            );
            let html = format!(
                "<p>Every delivery to the webhook endpoint <code>{}</code> of {} has failed{}, so it was disabled \
                 and receives no more events.</p>\n<p>Fix the receiver, send a test event, then re-enable the \
                 endpoint; failed deliveries can be retried from its delivery log.</p>\n",
                escape(url),
                escape(workspace),
                escape(&since)
            );
            Ok(Rendered { subject, text, html })
        }
        other => Err(TemplateError::Unknown(other.to_owned())),
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_input_is_never_rendered_unescaped_in_html() {
        let params = json!({"workspace": "<script>alert(1)</script>", "inviter": "a\"b@x.example", "role": "member", "token": "inv_abc"});
        let mail = render("team_invitation", &params, "https://app.example.com/").unwrap();
        assert!(!mail.html.contains("<script>") && mail.html.contains("&lt;script&gt;"), "{}", mail.html);
        assert!(mail.html.contains("a&quot;b@x.example"));
        assert!(mail.text.contains("https://app.example.com/invitations/accept?token=inv_abc"));
        assert!(mail.html.contains("href=\"https://app.example.com/invitations/accept?token=inv_abc\""));
    }

    #[test]
    fn billing_and_quota_mails_say_what_happened() {
        let failed = json!({"workspace": "A&B", "amount_due": 4900, "currency": "usd", "invoice_url": "https://pay.example/i?a=1&b=2"});
        let mail = render("payment_failed", &failed, "http://x").unwrap();
        assert_eq!(mail.subject, "A payment for A&B failed");
        assert!(mail.text.contains("of 49.00 USD") && mail.html.contains("A&amp;B"));
        assert!(mail.html.contains("href=\"https://pay.example/i?a=1&amp;b=2\""), "{}", mail.html);
        let quota = render("ai_quota", &json!({"workspace": "W", "percent": 80, "limit": 500}), "http://x").unwrap();
        assert_eq!(quota.subject, "W has used 80% of this month's AI runs");
        let cap = json!({"workspace": "W", "percent": 100, "cap": 5000, "spent": 5000, "runs": 50, "currency": "usd"});
        let cap = render("ai_spending_cap", &cap, "http://x").unwrap();
        assert_eq!(cap.subject, "W has reached 100% of its AI spending cap");
        assert!(
            cap.text.contains("50 AI tools beyond") && cap.text.contains("50.00 USD of its 50.00 USD"),
            "{}",
            cap.text
        );
    }

    #[test]
    fn a_disabled_webhook_mail_escapes_the_url() {
        let params = json!({"workspace": "W", "url": "https://h.example/<x>", "failing_since": "2026-11-27T10:00:00Z"});
        let mail = render("webhook_disabled", &params, "http://x").unwrap();
        assert_eq!(mail.subject, "A webhook endpoint of W was disabled");
        assert!(mail.html.contains("https://h.example/&lt;x&gt;") && mail.text.contains("since 2026-11-27T10:00:00Z"));
    }

    #[test]
    fn a_portal_invitation_names_the_client_and_unknown_templates_are_errors() {
        let params = json!({"workspace": "Studio", "client": "Acme", "token": "inv_x"});
        assert_eq!(
            render("portal_invitation", &params, "http://x").unwrap().subject,
            "Studio invites you to the Acme project portal"
        );
        assert_eq!(render("nope", &params, "http://x"), Err(TemplateError::Unknown("nope".into())));
        assert!(matches!(
            render("team_invitation", &json!({"workspace": "S"}), "http://x"),
            Err(TemplateError::Missing { parameter: "token", .. })
        ));
    }
}

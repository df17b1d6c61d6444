//! What a delivery's body is in each endpoint format: the event's Standard Webhooks envelope as
//! stored, or a one-line message in the incoming-webhook JSON of Slack or Discord.

use serde_json::{Value, json};
use shared::webhooks::catalog::Format;

pub fn render(format: Format, payload: &Value) -> Vec<u8> {
    let body = match format {
        Format::Standard => return serde_json::to_vec(payload).unwrap_or_default(),
        Format::Slack => json!({ "text": slack_escape(&summary(payload)) }),
        // No mentions parsed: a project called "@everyone" must not ping a whole server.
        Format::Discord => json!({ "content": summary(payload), "allowed_mentions": { "parse": [] } }),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One line a person reads in a chat channel.
pub fn summary(payload: &Value) -> String {
    let data = &payload["data"];
    let text = |key: &str| data[key].as_str().map(|s| truncate(s, 200)).unwrap_or_default();
    match payload["type"].as_str().unwrap_or_default() {
        "project.created" => format!("Project “{}” was created.", text("name")),
        "project.updated" => format!("Project “{}” was updated (status: {}).", text("name"), text("status")),
        "project.deleted" => format!("Project “{}” was deleted.", text("name")),
        "deliverable.status_changed" => format!(
            "Deliverable “{}” moved from {} to {}.",
            text("title"),
            text("previous_status").replace('_', " "),
            text("status").replace('_', " ")
        ),
        "file.added" | "file.deleted" => {
            let (verb, preposition) =
                if payload["type"] == "file.added" { ("added", "to") } else { ("deleted", "from") };
            let attached_to = if data["comment_id"].is_string() {
                "a comment".to_owned()
            } else {
                format!("“{}”", text("attached_to"))
            };
            format!("File “{}” was {verb} {preposition} {attached_to}.", text("name"))
        }
        "comment.created" => format!("New comment: “{}”", text("body")),
        "member.joined" => format!("{} joined the workspace as {}.", text("email"), text("role")),
        "member.left" => format!("{} left the workspace.", text("email")),
        "subscription.updated" => format!("Subscription: {} plan, {}.", text("plan"), text("status")),
        "ai_run.succeeded" => format!("AI run ({}) finished.", text("tool")),
        "ai_run.failed" => format!("AI run ({}) failed.", text("tool")),
        "webhook.test" => text("message"),
        other => format!("Event {other}."),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions); user text must not be.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_is_the_envelope_as_stored() {
        let payload = json!({"type": "comment.created", "timestamp": "t", "data": {"body": "hi"}});
        assert_eq!(serde_json::from_slice::<Value>(&render(Format::Standard, &payload)).unwrap(), payload);
    }

    #[test]
    fn chat_formats_escape_markup_and_mentions() {
        let payload = json!({"type": "project.created", "data": {"name": "<!channel> & @everyone"}});
        let slack: Value = serde_json::from_slice(&render(Format::Slack, &payload)).unwrap();
        assert_eq!(slack["text"], "Project “&lt;!channel&gt; &amp; @everyone” was created.");
        let discord: Value = serde_json::from_slice(&render(Format::Discord, &payload)).unwrap();
        assert_eq!(discord["content"], "Project “<!channel> & @everyone” was created.");
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn long_text_is_cut() {
        let payload = json!({"type": "comment.created", "data": {"body": "é".repeat(500)}});
        assert_eq!(summary(&payload).chars().count(), "New comment: “”".chars().count() + 201);
    }
}

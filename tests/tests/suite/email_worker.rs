//! The e-mail worker over moto's SES and SQS: an invitation's mail is sent once, even when its
//! message is delivered twice at once; a failed SES call is counted and retried; the sweep puts
//! unsent mails on the queue; the invitation token leaves the outbox once sent; a change that
//! rolled back sends nothing.

use axum::http::StatusCode;
use email_worker::{Mailer, Outcome};
use integration_tests::{TestApp, create_queue, local_aws, service_pool, worker};
use serde_json::{Value, json};
use shared::queue::Queue;
use uuid::Uuid;

const FROM: &str = "no-reply@mail.example";

/// The tests share a database, and the sweep takes every unsent mail in it: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn ses(config: &aws_config::SdkConfig) -> aws_sdk_sesv2::Client {
    let client = aws_sdk_sesv2::Client::new(config);
    client.create_email_identity().email_identity(FROM).send().await.expect("verify the sender in moto");
    client
}

async fn mailer(queue_url: Option<&str>) -> Mailer {
    ses(&local_aws().await).await;
    let mut settings = vec![("EMAIL_FROM", FROM.to_owned()), ("APP_BASE_URL", "https://app.example.test".to_owned())];
    settings.extend(queue_url.map(|url| ("EMAIL_QUEUE_URL", url.to_owned())));
    worker("app_mailer", &settings).await
}

/// Mails moto's SES accepted for `to`.
async fn delivered_to(to: &str) -> Vec<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    // moto serialises every service's state for this page, and it sometimes fails (a 500) while
    // other tests change that state: ask again.
    let mut attempts = 0;
    let data: Value = loop {
        let body = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().text().await.unwrap();
        match serde_json::from_str(&body) {
            Ok(data) => break data,
            Err(_) if attempts < 20 => attempts += 1,
            Err(error) => panic!("moto's data.json: {error}: {}", &body[..body.len().min(300)]),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let mut found = Vec::new();
    for message in data["ses"]["Message"].as_array().into_iter().flatten() {
        if message.to_string().contains(to) {
            found.push(message.clone());
        }
    }
    found
}

async fn invite(app: &TestApp, t: &integration_tests::Tenant, email: &str) -> Uuid {
    app.post(&t.owner, &format!("{}/invitations", t.path()), json!({"email": email, "role": "member"}))
        .await
        .expect(StatusCode::CREATED);
    sqlx::query_scalar("SELECT id FROM emails WHERE to_address = $1")
        .bind(email)
        .fetch_one(&service_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invitation_mail_is_sent_once_with_its_link_and_the_token_leaves_the_outbox() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("mail-once").await;
    let to = format!("once-{}@invited.example", Uuid::new_v4().simple());
    let id = invite(&app, &t, &to).await;
    let token: String = sqlx::query_scalar("SELECT params->>'token' FROM emails WHERE id = $1")
        .bind(id)
        .fetch_one(&service_pool().await)
        .await
        .unwrap();
    let mailer = mailer(None).await;
    // The same message delivered twice at once, then once more.
    let id_text = id.to_string();
    let (a, b) = tokio::join!(mailer.send(&id_text), mailer.send(&id_text));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| *o == Outcome::AlreadySent);
    assert_eq!(outcomes, [Outcome::Sent, Outcome::AlreadySent]);
    assert_eq!(mailer.send(&id.to_string()).await.unwrap(), Outcome::AlreadySent);
    let sent = delivered_to(&to).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = sent[0].to_string();
    assert!(text.contains(&format!("https://app.example.test/invitations/accept?token={token}")), "{text}");
    let (params, message_id, sent_at): (Value, Option<String>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT params, ses_message_id, sent_at FROM emails WHERE id = $1")
            .bind(id)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert!(params.get("token").is_none(), "the token stayed in the outbox: {params}");
    assert!(message_id.is_some() && sent_at.is_some());
    assert_eq!(mailer.send("not-an-id").await.map_err(|e| e.to_string()).unwrap_err(), "not an outbox id: not-an-id");
    assert_eq!(mailer.send(&Uuid::now_v7().to_string()).await.unwrap(), Outcome::Gone);
}

#[tokio::test]
async fn a_failed_send_is_counted_and_the_retry_sends_it_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("mail-retry").await;
    let to = format!("retry-{}@invited.example", Uuid::new_v4().simple());
    let id = invite(&app, &t, &to).await;
    // SES unreachable: a closed port on loopback.
    let broken = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = aws_sdk_sesv2::config::Builder::from(&local_aws().await)
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build();
        Mailer { ses: aws_sdk_sesv2::Client::from_conf(config), ..mailer(None).await }
    };
    let refused = broken.send(&id.to_string()).await;
    assert!(refused.is_err(), "{refused:?}");
    let (attempts, error, sent): (i32, Option<String>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT attempts, last_error, sent_at FROM emails WHERE id = $1")
            .bind(id)
            .fetch_one(&service_pool().await)
            .await
            .unwrap();
    assert_eq!((attempts, error.is_some(), sent), (1, true, None));
    assert!(delivered_to(&to).await.is_empty());
    assert_eq!(mailer(None).await.send(&id.to_string()).await.unwrap(), Outcome::Sent);
    assert_eq!(delivered_to(&to).await.len(), 1);
}

#[tokio::test]
async fn the_sweep_queues_what_was_never_sent_and_a_rolled_back_change_sends_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = TestApp::new().await;
    let t = app.tenant("mail-sweep").await;
    let to = format!("sweep-{}@invited.example", Uuid::new_v4().simple());
    let id = invite(&app, &t, &to).await;
    sqlx::query("UPDATE emails SET enqueued_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&service_pool().await)
        .await
        .unwrap();
    let queue_url = create_queue("emails-sweep", &[]).await;
    let queue = Queue::new(aws_sdk_sqs::Client::new(&local_aws().await), &queue_url);
    let mailer = mailer(Some(&queue_url)).await;
    let enqueued = shared::runtime::handle_event(&mailer, json!({"task": "sweep"})).await.unwrap();
    assert!(enqueued["enqueued"].as_u64().unwrap() >= 1, "{enqueued}");
    // A second sweep right away does not queue it again.
    let enqueued_at = || async {
        sqlx::query_scalar::<_, Option<time::OffsetDateTime>>("SELECT enqueued_at FROM emails WHERE id = $1")
            .bind(id)
            .fetch_one(&service_pool().await)
            .await
            .unwrap()
    };
    let first = enqueued_at().await;
    assert!(first.is_some());
    mailer.sweep().await.unwrap();
    assert_eq!(enqueued_at().await, first);
    // The sweep also queued the fixture's own invitation mails: drain until the queue is empty
    // (one receive may return only some of its messages).
    loop {
        let drained =
            queue.drain_once(1, |event| async { email_worker::handle_batch(&mailer, event).await }).await.unwrap();
        assert_eq!(drained.failed, 0, "{drained:?}");
        if drained.received == 0 {
            break;
        }
    }
    assert_eq!(delivered_to(&to).await.len(), 1);

    // An invitation refused by the plan limit leaves no mail behind.
    let owner = app.user("mail-rollback").await;
    let workspace = app.workspace(&owner, "Full").await;
    let path = format!("/v1/workspaces/{workspace}/invitations");
    app.post(&owner, &path, json!({"email": "first@full.example", "role": "member"})).await.expect(StatusCode::CREATED);
    let refused = app.post(&owner, &path, json!({"email": "second@full.example", "role": "member"})).await;
    assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    let mails: Vec<String> = sqlx::query_scalar("SELECT to_address FROM emails WHERE workspace_id = $1")
        .bind(workspace)
        .fetch_all(&service_pool().await)
        .await
        .unwrap();
    assert_eq!(mails, ["first@full.example"]);
}

//! `local-stack`: run the whole API locally.
//!
//! ```text
//! local-stack serve [--seed] [--port 3000]   migrate, optionally seed, then serve every route
//! local-stack migrate [--dev-logins]         apply migrations (MIGRATION_DATABASE_URL, owner role);
//!                                            --dev-logins also lets app_api/app_service log in
//!                                            with their names as passwords (laptops only)
//! local-stack seed                           create the demo workspace
//! local-stack token [--sub S] [--email E] [--ttl-days N]   print an HS256 development token
//! local-stack reconcile                      apply Stripe events the webhook missed (needs STRIPE_SECRET_KEY)
//! local-stack audit-verify WORKSPACE_ID      check a workspace's audit hash chain (SERVICE_DATABASE_URL);
//!                                            names the first broken link and exits 1 if there is one
//! local-stack openapi                       print the whole API's OpenAPI document (`openapi.json`)
//! local-stack sign-stripe-event FILE         print FILE's Stripe webhook event signed now
//!                                            (STRIPE_WEBHOOK_SECRETS' first, the development one by default)
//! local-stack watch [--sub S] [--workspace W] follow a workspace's live activity on the running stack
//!                                            (as the demo owner and the demo workspace by default)
//! ```

use std::time::Duration;

use anyhow::{Context, Result, bail};
use local_stack::{DEV_HS256_SECRET, LOCAL_STRIPE_KEY, demo, dev_defaults};
use secrecy::ExposeSecret;
use shared::auth::dev_token::DevToken;
use shared::config::{Config, Settings};
use shared::runtime::FromSettings;
use sqlx::postgres::PgPoolOptions;

/// The port `serve` listens on (set once by `serve`; `PORT` or 3000 otherwise).
static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

fn port() -> u16 {
    *PORT.get_or_init(|| env("PORT").and_then(|p| p.parse().ok()).unwrap_or(3000))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Without a Stripe key, the billing functions talk to the local Stripe that `serve` hosts.
fn uses_local_stripe() -> bool {
    env("STRIPE_SECRET_KEY").is_none()
}

/// Without a provider key, the local stack serves its own AI provider at `/_ai`.
fn uses_local_ai() -> bool {
    env("AI_PROVIDER_API_KEY").is_none()
}

fn setting(name: &str) -> Option<String> {
    if uses_local_ai() {
        match name {
            "AI_PROVIDER_API_KEY" => return Some("sk-ant-local-provider".to_owned()),
            "AI_PROVIDER_BASE_URL" => return Some(format!("http://127.0.0.1:{}/_ai", port())),
            _ => {}
        }
    }
    if uses_local_stripe() {
        match name {
            "STRIPE_SECRET_KEY" => return Some(LOCAL_STRIPE_KEY.to_owned()),
            "STRIPE_API_BASE" => return Some(format!("http://127.0.0.1:{}/_stripe", port())),
            _ => {}
        }
    }
    if name == "BILLING_REDIRECT_ORIGINS" {
        // Checkout and the portal send the browser back to the stack's own origin or to a front
        // end it allows, whatever the port.
        return env(name).or_else(|| Some(allowed_origins().join(",")));
    }
    env(name).or_else(|| dev_defaults().get(name).map(|v| (*v).to_owned()))
}

/// The origins whose pages may call the local stack: its own, and `ALLOWED_ORIGINS`.
fn allowed_origins() -> Vec<String> {
    local_stack::cors::origins(port(), env("ALLOWED_ORIGINS").as_deref())
}

fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("serve");
    match command {
        "serve" => serve(&args).await,
        "migrate" => migrate(args.iter().any(|a| a == "--dev-logins")).await,
        "seed" => {
            let created =
                demo::seed(&api_pool().await?, &service_pool().await?).await.context("seed the demo workspace")?;
            println!("{}", if created { "demo workspace created" } else { "demo workspace already present" });
            Ok(())
        }
        "token" => {
            println!("{}", token(&args)?);
            Ok(())
        }
        "watch" => watch(&args).await,
        "sign-stripe-event" => {
            let file = args.get(1).context("usage: sign-stripe-event EVENT_FILE")?;
            let event = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
            let secrets = setting("STRIPE_WEBHOOK_SECRETS").unwrap_or_default();
            let secret = secrets.split(',').next().unwrap_or_default().trim();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let signed = local_stack::events::sign_stripe_event(&event, secret, now)?;
            println!("{}", serde_json::to_string_pretty(&signed)?);
            Ok(())
        }
        "openapi" => {
            print!("{}", shared::openapi::to_pretty_json(&local_stack::openapi_document()));
            Ok(())
        }
        "reconcile" => {
            let queue = local_stack::queues::ensure_with_dlq("stripe-events").await?;
            let settings = worker_settings("app_billing", &[("STRIPE_EVENTS_QUEUE_URL", queue.url())]).await?;
            let reconciler =
                billing_reconcile::Reconciler::from_settings(&settings).await.map_err(anyhow::Error::from_boxed)?;
            let report = reconciler.run().await.map_err(|e| anyhow::anyhow!(e))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        "audit-verify" => {
            let workspace: uuid::Uuid =
                args.get(1).and_then(|id| id.parse().ok()).context("usage: audit-verify WORKSPACE_ID")?;
            let check =
                shared::audit::verify_chain(&service_pool().await?, workspace).await.context("verify the chain")?;
            println!("{}", serde_json::to_string_pretty(&check)?);
            if !check.is_intact() {
                std::process::exit(1);
            }
            Ok(())
        }
        other => bail!(
            "unknown command {other:?}; use serve, migrate, seed, token, watch, openapi, reconcile or audit-verify"
        ),
    }
}

async fn migrate(dev_logins: bool) -> Result<()> {
    let url = setting("MIGRATION_DATABASE_URL").context("MIGRATION_DATABASE_URL")?;
    shared::db::migrate::create_database_if_missing(&url).await.context("create the database")?;
    let owner =
        PgPoolOptions::new().max_connections(1).connect(&url).await.context("connect as the migration owner")?;
    shared::db::migrate::run(&owner).await.context("apply migrations")?;
    if dev_logins {
        shared::db::migrate::enable_local_logins(&owner, "app_api", "app_service")
            .await
            .context("enable local logins")?;
    }
    println!("migrations applied");
    Ok(())
}

fn config() -> Result<Config> {
    Ok(Config::from_lookup(setting)?)
}

async fn api_pool() -> Result<sqlx::PgPool> {
    shared::db::connect(&config()?.database).await.context("connect as the API role")
}

/// A worker's own database login locally: the service URL with the worker's role, which
/// `migrate --dev-logins` lets log in with its name as password (as each worker's secret holds
/// its own role's login on AWS).
fn worker_setting(role: &'static str) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    move |name| {
        let value = setting(name)?;
        Some(if name == "SERVICE_DATABASE_URL" {
            value.replace("app_service:app_service@", &format!("{role}:{role}@"))
        } else {
            value
        })
    }
}

/// A worker's settings locally: its own database login, what `extra` names (its queue, ...),
/// then the local stack's settings. Every worker is built from them by its own constructor, as
/// on Lambda.
async fn worker_settings(role: &'static str, extra: &[(&'static str, &str)]) -> Result<Settings> {
    let extra: Vec<(&'static str, String)> = extra.iter().map(|(name, value)| (*name, (*value).to_owned())).collect();
    let base = worker_setting(role);
    Ok(Settings::load_from(move |name| {
        extra.iter().find(|(known, _)| *known == name).map(|(_, value)| value.clone()).or_else(|| base(name))
    })
    .await?)
}

/// Builds a function's state from its settings, as its `main.rs` does on Lambda.
async fn build<S: FromSettings>(settings: &Settings) -> Result<&'static S> {
    Ok(Box::leak(Box::new(S::from_settings(settings).await.map_err(anyhow::Error::from_boxed)?)))
}

async fn worker_pool(role: &'static str) -> Result<sqlx::PgPool> {
    let url = worker_setting(role)("SERVICE_DATABASE_URL").context("SERVICE_DATABASE_URL")?;
    PgPoolOptions::new().max_connections(2).connect(&url).await.with_context(|| format!("connect as {role}"))
}

async fn service_pool() -> Result<sqlx::PgPool> {
    let url = setting("SERVICE_DATABASE_URL").context("SERVICE_DATABASE_URL")?;
    PgPoolOptions::new().max_connections(2).connect(&url).await.context("connect as the service role")
}

fn token(args: &[String]) -> Result<String> {
    let subject = flag_value(args, "--sub").unwrap_or_else(|| demo::USERS[0].0.to_owned());
    let email = flag_value(args, "--email")
        .or_else(|| demo::USERS.iter().find(|(sub, _, _)| *sub == subject).map(|(_, email, _)| (*email).to_owned()));
    let ttl_days: u64 = flag_value(args, "--ttl-days").map(|d| d.parse()).transpose()?.unwrap_or(1);
    let config = config()?;
    let hs = config.auth.hs256.context("AUTH_HS256_SECRET is not set")?;
    let audience = config.auth.audiences.first().cloned().unwrap_or_else(|| "saas-local".to_owned());
    Ok(DevToken {
        secret: hs.secret.expose_secret(),
        issuer: &hs.issuer,
        audience: &audience,
        subject: &subject,
        email: email.as_deref(),
        ttl: Duration::from_secs(ttl_days * 86_400),
    }
    .mint()?)
}

/// Connects to the running stack's WebSocket endpoint, subscribes and prints each frame.
async fn watch(args: &[String]) -> Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let workspace = flag_value(args, "--workspace").unwrap_or_else(|| demo::WORKSPACE_ID.to_string());
    let url = format!("ws://127.0.0.1:{}/v1/realtime?token={}", port(), token(args)?);
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("connect to ws://127.0.0.1:{}/v1/realtime (is scripts/dev.sh running?)", port()))?;
    let subscribe = serde_json::json!({"action": "subscribe", "workspace_id": workspace}).to_string();
    socket.send(Message::Text(subscribe.into())).await?;
    while let Some(frame) = socket.next().await {
        if let Message::Text(text) = frame? {
            let frame: serde_json::Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("activity") => println!(
                    "{}  {:<28} {}",
                    frame["activity"]["created_at"].as_str().unwrap_or_default(),
                    frame["activity"]["verb"].as_str().unwrap_or_default(),
                    frame["activity"]["message"].as_str().unwrap_or_default()
                ),
                _ => println!("{frame}"),
            }
        }
    }
    Ok(())
}

async fn serve(args: &[String]) -> Result<()> {
    shared::telemetry::init("local");
    // First: the settings that name the stack's own URLs (the local Stripe and AI provider, the
    // allowed origins) follow the port.
    if let Some(port) = flag_value(args, "--port") {
        PORT.set(port.parse().context("--port")?).map_err(|_| anyhow::anyhow!("the port was read before --port"))?;
    }
    migrate(true).await?;
    let config = config()?;
    if config.auth.hs256.as_ref().is_some_and(|hs| hs.secret.expose_secret() == DEV_HS256_SECRET) {
        tracing::warn!("using the public development HS256 secret; never do this outside a laptop");
    }
    let pool = shared::db::connect(&config.database).await.context("connect as the API role")?;
    if args.iter().any(|a| a == "--seed") {
        demo::seed(&pool, &service_pool().await?).await.context("seed the demo workspace")?;
    }
    let port = port();
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("bind port {port}"))?;
    let token = token(&["--ttl-days".into(), "1".into()])?;
    println!("\nLocal stack: every route of every function on http://127.0.0.1:{port}");
    println!("Development token (demo owner, valid 1 day):\n  export TOKEN={token}");
    println!("Try:\n  curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/v1/workspaces");
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/v1/workspaces/{}/projects\n",
        demo::WORKSPACE_ID
    );
    let state = shared::AppState::new(config, pool);
    let settings = shared::config::Settings::load_from(setting).await?;
    let local_stripe = if uses_local_stripe() {
        let secret = settings.get("STRIPE_WEBHOOK_SECRETS").unwrap_or_default();
        let target = local_stack::stripe::WebhookTarget {
            url: format!("http://127.0.0.1:{port}/v1/stripe/webhook"),
            signing_secret: secret.split(',').next().unwrap_or_default().trim().to_owned(),
        };
        println!(
            "Stripe: the local Stripe at http://127.0.0.1:{port}/_stripe (set STRIPE_SECRET_KEY to use Stripe's test mode)"
        );
        println!("{}", local_stack::stripe::walkthrough(port));
        let state_file = setting("LOCAL_STRIPE_STATE").unwrap_or_else(|| "target/local-stripe.json".into());
        let local = local_stack::stripe::LocalStripe::new(
            format!("http://127.0.0.1:{port}/_stripe"),
            Some(target),
            Some(state_file.into()),
        );
        local.insert_active_subscription(
            demo::SUBSCRIPTION_ID,
            demo::CUSTOMER_ID,
            "studio_monthly",
            demo::WORKSPACE_ID,
        );
        Some(local)
    } else {
        println!("Stripe: {}", settings.get("STRIPE_API_BASE").unwrap_or_else(|| "api.stripe.com".into()));
        None
    };
    let billing = Some(shared::billing::BillingState::with_app(state.clone(), &settings)?);
    let webhook = match settings.get("AWS_ENDPOINT_URL") {
        Some(endpoint) if endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost") => {
            let queue = local_stack::queues::ensure_with_dlq("stripe-events").await?;
            let queue_url = queue.url().to_owned();
            let config =
                stripe_webhook::WebhookConfig::from_settings(&shared::config::Settings::from_fn(move |name| {
                    if name == "STRIPE_EVENTS_QUEUE_URL" { Some(queue_url.clone()) } else { setting(name) }
                }))?;
            let worker: &'static billing_worker::Worker = build(&worker_settings("app_billing", &[]).await?).await?;
            // As the frequent schedule on AWS: deleted workspaces' subscriptions are canceled,
            // and seat syncs go on the billing queue (more often here than on AWS, so a seat
            // change shows in the local Stripe within seconds).
            let outbox_queue = queue.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    if let Err(error) = worker.send_pending_cancellations().await {
                        tracing::warn!(%error, "sending cancellations failed");
                    }
                    if let Err(error) = worker.enqueue_seat_syncs(&outbox_queue).await {
                        tracing::warn!(%error, "queueing seat syncs failed");
                    }
                }
            });
            tokio::spawn(local_stack::queues::feed(queue.clone(), "billing-worker", move |event| {
                billing_worker::handle_batch(worker, event)
            }));
            println!(
                "Stripe webhook: POST http://127.0.0.1:{port}/v1/stripe/webhook -> SQS {} -> billing worker",
                queue.url()
            );
            Some((stripe_webhook::WebhookState::new(&config, queue), config.max_body_bytes))
        }
        _ => {
            println!(
                "Stripe webhook is off: it needs the local SQS server (scripts/dev.sh starts moto and sets AWS_ENDPOINT_URL)."
            );
            None
        }
    };
    let sockets = local_stack::realtime::LocalSockets::default();
    let local_aws = settings
        .get("AWS_ENDPOINT_URL")
        .is_some_and(|e| e.starts_with("http://127.0.0.1") || e.starts_with("http://localhost"));
    let ai = match settings.get("AI_PROVIDER_API_KEY") {
        Some(_) => {
            let usage_queue = if local_aws { Some(local_stack::queues::ensure_with_dlq("usage").await?) } else { None };
            if let Some(queue) = &usage_queue {
                start_usage_pipeline(&settings, queue.clone()).await?;
            }
            let usage_queue_url = usage_queue.as_ref().map(|queue| queue.url().to_owned());
            let ai_settings = shared::config::Settings::from_fn(move |name| match name {
                "USAGE_QUEUE_URL" => usage_queue_url.clone(),
                _ => setting(name),
            });
            if uses_local_ai() {
                println!(
                    "AI tools: the local AI provider at http://127.0.0.1:{port}/_ai (deterministic answers; \
                     POST /_ai/mode {{\"mode\": \"rate_limited\", \"times\": 2}} to try the retry paths; \
                     set AI_PROVIDER_API_KEY to use Anthropic)"
                );
            }
            Some(ai_runs::AiState::with_app(state.clone(), &ai_settings).await.map_err(anyhow::Error::from_boxed)?)
        }
        None => {
            println!("AI tools are off: set AI_PROVIDER_API_KEY (and AI_PROVIDER_BASE_URL for a local provider).");
            None
        }
    };
    let realtime = local_stack::realtime::router(std::sync::Arc::new(realtime::Realtime::with_app(
        state.clone(),
        sockets.clone(),
    )));
    if local_aws {
        start_email_pipeline().await?;
        start_webhook_pipeline().await?;
        start_activity_fanout(sockets).await?;
        start_export_pipeline().await?;
        start_files_pipeline().await?;
    } else {
        println!(
            "E-mail is off: it needs the local SES and SQS server (scripts/dev.sh starts moto and sets AWS_ENDPOINT_URL)."
        );
    }
    let admin = {
        let operators = admin::Operators::from_lookup(setting, &state.config.auth);
        let mut admin = admin::AdminState::new(worker_pool("app_admin").await?, &state.config.auth, operators);
        if let Some(key) = setting("STRIPE_SECRET_KEY") {
            let api_base = setting("STRIPE_API_BASE");
            admin = admin.with_stripe(shared::billing_sync::StripeState::new(
                &secrecy::SecretString::from(key),
                api_base.as_deref(),
            )?);
        }
        if local_aws {
            admin = admin.with_dead_letter_queues(local_stack::queues::dead_letter_queues().await);
        }
        Some(admin)
    };
    println!(
        "Admin: the platform operators' API at http://127.0.0.1:{port}/v1/admin/... for `local-stack token --sub demo-operator`"
    );
    let mut app = local_stack::app(state, billing, webhook, ai, admin).merge(realtime);
    if let Some(local_stripe) = local_stripe {
        app = app.nest("/_stripe", local_stack::stripe::router(local_stripe));
    }
    if uses_local_ai() {
        app = app.nest("/_ai", local_stack::ai::router(local_stack::ai::LocalAi::default()));
    }
    let origins = allowed_origins();
    println!("CORS: pages on {} may call the API (ALLOWED_ORIGINS adds more)", origins.join(", "));
    let app = app.layer(local_stack::cors::layer(&origins));
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await.context("serve")?;
    Ok(())
}

/// The usage worker (when Stripe is configured) and the sweeper, every minute, as on AWS.
async fn start_usage_pipeline(settings: &shared::config::Settings, queue: shared::queue::Queue) -> Result<()> {
    let sweeper: &'static ai_sweeper::Sweeper =
        build(&worker_settings("app_sweeper", &[("USAGE_QUEUE_URL", queue.url())]).await?).await?;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            if let Err(error) = sweeper.sweep().await {
                tracing::warn!(%error, "sweep failed");
            }
        }
    });
    match settings.get("STRIPE_SECRET_KEY") {
        Some(_) => {
            let worker: &'static usage_worker::UsageWorker = build(&worker_settings("app_usage", &[]).await?).await?;
            tokio::spawn(local_stack::queues::feed(queue, "usage-worker", move |event| {
                usage_worker::handle_batch(worker, event)
            }));
            println!(
                "AI usage: usage queue -> usage worker -> Stripe meter events at {}",
                settings.get("STRIPE_API_BASE").unwrap_or_else(|| "api.stripe.com".into())
            );
        }
        None => println!(
            "AI usage is recorded but not reported: set STRIPE_SECRET_KEY (and STRIPE_API_BASE) to run the usage worker."
        ),
    }
    Ok(())
}

/// The e-mail worker on the local SES (moto): the outbox is swept every few seconds (every
/// minute on AWS) and each mail sent is printed here, with its links.
async fn start_email_pipeline() -> Result<()> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let from = setting("EMAIL_FROM").unwrap_or_else(|| "no-reply@saas.local".into());
    let ses = aws_sdk_sesv2::Client::new(&config);
    ses.create_email_identity().email_identity(&from).send().await.context("verify the sender in the local SES")?;
    let queue = local_stack::queues::ensure_with_dlq("email").await?;
    let app_base_url = setting("APP_BASE_URL").unwrap_or_else(|| format!("http://127.0.0.1:{}", port()));
    let settings = worker_settings(
        "app_mailer",
        &[("EMAIL_QUEUE_URL", queue.url()), ("EMAIL_FROM", &from), ("APP_BASE_URL", &app_base_url)],
    )
    .await?;
    let mut mailer = email_worker::Mailer::from_settings(&settings).await.map_err(anyhow::Error::from_boxed)?;
    mailer.echo = true;
    let mailer: &'static email_worker::Mailer = Box::leak(Box::new(mailer));
    tokio::spawn(async move {
        loop {
            if let Err(error) = mailer.sweep().await {
                tracing::warn!(%error, "e-mail sweep failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        }
    });
    tokio::spawn(local_stack::queues::feed(queue, "email-worker", move |event| {
        email_worker::handle_batch(mailer, event)
    }));
    println!(
        "E-mail: mails (invitations, ...) go through the local SES and are printed here as they are sent; \
         the raw messages are at {}/moto-api/data.json (\"ses\" > \"Message\").",
        setting("AWS_ENDPOINT_URL").unwrap_or_default()
    );
    Ok(())
}

/// Creates `bucket` in the local S3 unless it is there (a restarted stack keeps moto's).
async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        s3.create_bucket().bucket(bucket).send().await?;
    }
    Ok(())
}

/// The export worker on the local SQS and S3: the bucket is created on start, requested exports
/// are swept every few seconds (every minute on AWS), and their download links point at moto.
async fn start_export_pipeline() -> Result<()> {
    let bucket = setting("EXPORTS_BUCKET").context("EXPORTS_BUCKET")?;
    let s3 = shared::exports::client().await;
    ensure_bucket(&s3, &bucket).await.context("create the exports bucket in the local S3")?;
    let queue = local_stack::queues::ensure_with_dlq("exports").await?;
    let exporter: &'static export_worker::Exporter =
        build(&worker_settings("app_exporter", &[("EXPORT_QUEUE_URL", queue.url())]).await?).await?;
    tokio::spawn(async move {
        loop {
            if let Err(error) = exporter.sweep().await {
                tracing::warn!(%error, "export sweep failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    });
    tokio::spawn(local_stack::queues::feed(queue, "export-worker", move |event| {
        export_worker::handle_batch(exporter, event)
    }));
    println!(
        "Exports: POST /v1/workspaces/{{id}}/exports (owners), then GET .../exports/{{export_id}} for its download links \
         (served by the local S3)."
    );
    Ok(())
}

/// Files on deliverables in the local S3: the bucket is created on start (with the CORS rule a
/// page on an allowed origin needs to post its upload forms), and the files worker sweeps every
/// few seconds (every minute on AWS): deleted files' objects, abandoned uploads.
async fn start_files_pipeline() -> Result<()> {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let bucket = setting("FILES_BUCKET").context("FILES_BUCKET")?;
    let s3 = shared::exports::client().await;
    ensure_bucket(&s3, &bucket).await.context("create the files bucket in the local S3")?;
    let rule = CorsRule::builder()
        .set_allowed_origins(Some(allowed_origins()))
        .allowed_methods("POST")
        .allowed_methods("GET")
        .allowed_headers("*")
        .max_age_seconds(3600)
        .build()
        .context("the files bucket's CORS rule")?;
    let cors = CorsConfiguration::builder().cors_rules(rule).build().context("the files bucket's CORS")?;
    s3.put_bucket_cors()
        .bucket(&bucket)
        .cors_configuration(cors)
        .send()
        .await
        .context("set the files bucket's CORS")?;
    let worker: &'static files_worker::FilesWorker =
        build(&worker_settings("app_files", &[("FILES_BUCKET", bucket.as_str())]).await?).await?;
    tokio::spawn(async move {
        loop {
            if let Err(error) = worker.sweep().await {
                tracing::warn!(%error, "files sweep failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    println!(
        "Files: POST .../deliverables/{{id}}/files answers a form to post the file to the local S3 ({bucket}); \
         then POST .../files/{{file_id}}/confirm, and GET .../files/{{file_id}}/download for a link."
    );
    Ok(())
}

/// The webhook dispatcher on the local SQS: due deliveries are swept every few seconds (every
/// minute on AWS) and sent to the endpoints workspaces registered, plain http to this machine
/// included.
async fn start_webhook_pipeline() -> Result<()> {
    let queue = local_stack::queues::ensure_with_dlq("webhooks").await?;
    // WEBHOOKS_ALLOW_LOOPBACK_HTTP is on in the local stack's defaults.
    let dispatcher: &'static webhook_dispatcher::Dispatcher =
        build(&worker_settings("app_webhooks", &[("WEBHOOK_QUEUE_URL", queue.url())]).await?).await?;
    tokio::spawn(async move {
        loop {
            if let Err(error) = dispatcher.sweep().await {
                tracing::warn!(%error, "webhook sweep failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    });
    tokio::spawn(local_stack::queues::feed(queue, "webhook-dispatcher", move |event| {
        webhook_dispatcher::handle_batch(dispatcher, event)
    }));
    println!(
        "Webhooks: register an endpoint (POST /v1/workspaces/{{id}}/webhooks) and watch it with \
         scripts/webhook-receiver.py, which verifies each signature; http://127.0.0.1 endpoints are allowed here."
    );
    Ok(())
}

/// The activity fan-out on the local SQS, pushing to the local stack's own WebSocket
/// connections: the outbox is swept every 100 ms (the deployed sweep polls every 250 ms).
async fn start_activity_fanout(sockets: local_stack::realtime::LocalSockets) -> Result<()> {
    let queue = local_stack::queues::ensure_with_dlq("activity").await?;
    let settings = worker_settings("app_fanout", &[("ACTIVITY_QUEUE_URL", queue.url())]).await?;
    let fanout = activity_fanout::Fanout::build(&settings, sockets).await.map_err(anyhow::Error::from_boxed)?;
    let fanout: &'static activity_fanout::Fanout<local_stack::realtime::LocalSockets> = Box::leak(Box::new(fanout));
    tokio::spawn(async move {
        loop {
            if let Err(error) = fanout.sweep().await {
                tracing::warn!(%error, "activity sweep failed");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    tokio::spawn(local_stack::queues::feed(queue, "activity-fanout", move |event| {
        activity_fanout::handle_batch(fanout, event)
    }));
    println!(
        "Realtime: ws://127.0.0.1:{}/v1/realtime?token=$TOKEN, then send {{\"action\": \"subscribe\", \"workspace_id\": \"{}\"}}; \
         or run `cargo run -q -p local-stack -- watch` (add --sub demo-client for the client's view) to follow it.",
        port(),
        local_stack::demo::WORKSPACE_ID
    );
    Ok(())
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}

//! Test harness: a fresh, migrated PostgreSQL database per test file, the functions' real
//! routers driven in-process, and typed helpers so each test reads as arrange / act / assert.
//!
//! `TEST_DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names a
//! superuser connection used to create the database; the app itself connects as `app_api`.

pub mod ai;
pub mod browser;
pub mod files;
pub mod routes;
pub mod stripe;

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::AppState;
use shared::auth::dev_token::DevToken;
use shared::config::Config;
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, PgPool};
use tower::ServiceExt;
use uuid::Uuid;

/// What the agency wrote about the fixture's client for itself: a client contact must never
/// receive either (the role matrix searches every answer a contact gets for them).
pub const INTERNAL_CLIENT_NOTES: &str = "INTERNAL-NOTE: negotiates hard, pays late";
pub const INTERNAL_CLIENT_EMAIL: &str = "accounts-internal@acme.test";

pub const HS256_SECRET: &str = "integration-test-hs256-secret";
pub const HS256_ISSUER: &str = "saas-local";
pub const AUDIENCE: &str = "saas-local";

pub struct TestDatabase {
    pub owner_url: String,
    pub api_url: String,
    pub service_url: String,
}

impl TestDatabase {
    /// A login of one of the worker roles (`app_billing`, `app_usage`, `app_sweeper`).
    pub fn worker_url(&self, role: &str) -> String {
        self.service_url.replace("app_service:app_service", &format!("{role}:{role}"))
    }
}

/// The database of the calling test's module, created and migrated on first use. The test files
/// are modules of one binary (`tests/tests/suite`), and each keeps the database of its own it had
/// as a binary of its own: its tests may count rows, drain outboxes or change a plan's limits
/// without seeing another file's. A test's module is the first segment of its name, which the
/// test harness gives the thread it runs the test on; a binary whose tests are not in modules
/// (`metrics.rs`) has one database.
///
/// Creation runs on a thread of its own because every `#[tokio::test]` has its own runtime, and
/// pools must not outlive the runtime that made them: tests only share URLs, never pools. One
/// database is created at a time: the migrations create and alter cluster-wide roles, which two
/// at once would race on.
pub fn database() -> &'static TestDatabase {
    static DATABASES: Mutex<BTreeMap<String, &'static TestDatabase>> = Mutex::new(BTreeMap::new());
    let module = test_module();
    let mut databases = DATABASES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(database) = databases.get(&module) {
        return database;
    }
    let database = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(create_database())
    })
    .join()
    .expect("creating the test database");
    let database: &'static TestDatabase = Box::leak(Box::new(database));
    databases.insert(module, database);
    database
}

/// The module of the test running on this thread ("" outside any module).
fn test_module() -> String {
    let thread = std::thread::current();
    let name = thread
        .name()
        .filter(|name| *name != "main" && !name.starts_with("tokio-"))
        .expect("integration_tests::database() is called on a test's own thread, where its name says its module");
    name.split_once("::").map_or("", |(module, _)| module).to_owned()
}

async fn create_database() -> TestDatabase {
    let admin_url = std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin: sqlx::postgres::PgConnectOptions = admin_url.parse().expect("TEST_DATABASE_ADMIN_URL");
    let name = format!("saas_test_{}", Uuid::new_v4().simple());
    let mut conn = admin.connect().await.unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at {admin_url}: {e}. Run the suite with scripts/test.sh, which starts it.")
    });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let owner_options = admin.clone().database(&name);
    let owner = PgPoolOptions::new().max_connections(2).connect_with(owner_options).await.expect("connect owner");
    shared::db::migrate::run(&owner).await.expect("migrations apply");
    shared::db::migrate::enable_local_logins(&owner, "app_api", "app_service").await.expect("role logins");
    owner.close().await;
    let host = admin.get_host().to_owned();
    let port = admin.get_port();
    TestDatabase {
        owner_url: admin.clone().database(&name).to_url_lossy().to_string(),
        api_url: format!("postgres://app_api:app_api@{host}:{port}/{name}"),
        service_url: format!("postgres://app_service:app_service@{host}:{port}/{name}"),
    }
}

/// The settings a test app runs with; tests add or replace entries.
pub fn base_settings() -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database().api_url.as_str()),
        ("AUTH_HS256_SECRET", HS256_SECRET),
        ("AUTH_HS256_ISSUER", HS256_ISSUER),
        ("DB_MAX_CONNECTIONS", "20"),
        ("MAX_BODY_BYTES", "16384"),
        ("STRIPE_SECRET_KEY", stripe::SECRET_KEY),
        ("BILLING_REDIRECT_ORIGINS", "https://app.example.test,http://127.0.0.1:3000"),
        ("AI_PROVIDER_API_KEY", ai::API_KEY),
        ("AI_MODEL", "claude-test"),
        ("AI_MAX_TOKENS", "300"),
        ("AI_TIME_BUDGET_MS", "3000"),
        // Requests need only a name; the export tests create their own buckets.
        ("EXPORTS_BUCKET", "saas-test-exports"),
        // Signing needs only the name; confirming reads the bucket (`files::bucket` creates it).
        ("FILES_BUCKET", files::BUCKET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub struct TestApp {
    pub state: AppState,
    workspaces: Router,
    projects: Router,
    checkout: Router,
    portal: Router,
    ai_runs: Router,
    /// The local Stripe the billing functions talk to (unless a test gives its own).
    pub stripe: wiremock::MockServer,
    /// Stripe's state of the account behind `stripe` (what subscription reads answer).
    pub stripe_account: stripe::StripeAccount,
    /// The local AI provider (unless a test gives its own).
    pub provider: wiremock::MockServer,
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub subject: String,
    pub email: String,
    pub token: String,
}

impl TestUser {
    /// Someone signed in with exactly these claims (an HS256 token as the test app accepts it),
    /// whether or not they have used the API yet.
    pub fn signed_in(subject: &str, email: Option<&str>) -> TestUser {
        TestUser {
            id: shared::auth::user_id_for(HS256_ISSUER, subject),
            subject: subject.to_owned(),
            email: email.unwrap_or_default().to_owned(),
            token: mint(subject, email, Duration::from_secs(3600)),
        }
    }

    /// The caller of the API key an `api-keys` creation answered (`201` with its `key`).
    #[track_caller]
    pub fn api_key(created: &TestResponse) -> TestUser {
        let id = created.id();
        let key = created.expect(StatusCode::CREATED)["key"].as_str().expect("the key, shown once").to_owned();
        TestUser { id, subject: id.to_string(), email: String::new(), token: key }
    }

    /// The caller this user's token verifies to (for opening transactions as them directly).
    pub fn caller(&self) -> shared::auth::Caller {
        shared::auth::Caller::new(HS256_ISSUER.into(), self.subject.clone(), Some(self.email.clone()))
    }
}

/// The admin function's router over the `app_admin` role, configured from `settings` (the
/// `AUTH_*` and `ADMIN_*` settings; the last value of a setting wins).
pub async fn admin_router(settings: Vec<(String, String)>) -> Router {
    shared::runtime::app::<admin::Function>(admin_state(settings).await)
}

/// The admin function's state as built from `settings` (tests add Stripe or queues to it).
pub async fn admin_state(settings: Vec<(String, String)>) -> admin::AdminState {
    let lookup = |name: &str| settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let auth = shared::config::AuthConfig::from_lookup(&lookup).expect("auth settings");
    let operators = admin::Operators::from_lookup(lookup, &auth);
    admin::AdminState::new(worker_pool("app_admin").await, &auth, operators)
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestResponse {
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        &self.body
    }

    /// The problem's `code`, after checking the response is a well-formed problem+json.
    #[track_caller]
    pub fn problem(&self, status: StatusCode) -> &str {
        self.expect(status);
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/problem+json"), "body: {}", self.body);
        assert_eq!(self.body["status"], status.as_u16(), "body: {}", self.body);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "body: {}", self.body);
        self.body["code"].as_str().expect("problem has a code")
    }

    pub fn id(&self) -> Uuid {
        self.body["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no id in {}", self.body))
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_settings(base_settings()).await
    }

    pub async fn with_settings(settings: Vec<(String, String)>) -> Self {
        // Logs go through the test writer, so a failing test shows the cause the app logged.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .try_init();
        let stripe_account = stripe::StripeAccount::default();
        let stripe = stripe::start_default_server(&stripe_account).await;
        let mut settings = settings;
        if !settings.iter().any(|(k, _)| k == "STRIPE_API_BASE") {
            settings.push(("STRIPE_API_BASE".into(), stripe.uri()));
        }
        let provider = ai::start_default_provider().await;
        if !settings.iter().any(|(k, _)| k == "AI_PROVIDER_BASE_URL") {
            settings.push(("AI_PROVIDER_BASE_URL".into(), provider.uri()));
        }
        let config = Config::from_lookup(|name| settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("test config");
        let pool = shared::db::connect(&config.database).await.expect("connect as app_api");
        Self::build(AppState::new(config, pool), settings, (stripe, stripe_account), provider).await
    }

    pub async fn from_state(state: AppState) -> Self {
        let stripe_account = stripe::StripeAccount::default();
        let stripe = stripe::start_default_server(&stripe_account).await;
        let provider = ai::start_default_provider().await;
        let mut settings = base_settings();
        settings.push(("STRIPE_API_BASE".into(), stripe.uri()));
        settings.push(("AI_PROVIDER_BASE_URL".into(), provider.uri()));
        Self::build(state, settings, (stripe, stripe_account), provider).await
    }

    async fn build(
        state: AppState,
        settings: Vec<(String, String)>,
        (stripe, stripe_account): (wiremock::MockServer, stripe::StripeAccount),
        provider: wiremock::MockServer,
    ) -> Self {
        let lookup = move |name: &str| settings.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let settings = shared::config::Settings::load_from(lookup).await.expect("settings");
        let billing = shared::billing::BillingState::with_app(state.clone(), &settings).expect("billing config");
        let ai = ai_runs::AiState::with_app(state.clone(), &settings).await.expect("AI config");
        Self {
            ai_runs: shared::runtime::app::<ai_runs::Function>(ai),
            provider,
            workspaces: shared::runtime::app::<workspaces::Function>(state.clone()),
            projects: shared::runtime::app::<projects::Function>(state.clone()),
            checkout: shared::runtime::app::<checkout::Function>(billing.clone()),
            portal: shared::runtime::app::<portal::Function>(billing),
            stripe,
            stripe_account,
            state,
        }
    }

    /// A billing worker (`app_billing`) reading Stripe's state from this app's local Stripe.
    pub async fn billing_worker(&self, past_due_grace_days: i64) -> billing_worker::Worker {
        worker("app_billing", &self.billing_settings(past_due_grace_days)).await
    }

    /// The billing worker's settings against this app's local Stripe.
    pub fn billing_settings(&self, past_due_grace_days: i64) -> Vec<(&'static str, String)> {
        billing_settings(&self.stripe.uri(), past_due_grace_days)
    }

    /// The function API Gateway would route this path to.
    fn function_for(&self, path: &str) -> &Router {
        if path.contains("/ai/runs") {
            &self.ai_runs
        } else if path.ends_with("/billing/checkout") {
            &self.checkout
        } else if path.ends_with("/billing/portal")
            || path.contains("/billing/subscription")
            || path.contains("/billing/customer")
            || path.ends_with("/invoices")
        {
            &self.portal
        } else if path.contains("/projects") {
            &self.projects
        } else {
            &self.workspaces
        }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let router = self.function_for(request.uri().path()).clone();
        respond(router, request).await
    }

    /// Sends a request to one function by name (`workspaces`, `projects`, `checkout`,
    /// `portal`, `ai-runs`), whatever its path.
    pub async fn send_to(&self, function: &str, request: Request<Body>) -> TestResponse {
        respond(self.router_of(function), request).await
    }

    /// The service of one HTTP function, as its Lambda runs it.
    pub fn router_of(&self, function: &str) -> Router {
        let router = match function {
            "workspaces" => &self.workspaces,
            "projects" => &self.projects,
            "checkout" => &self.checkout,
            "portal" => &self.portal,
            "ai-runs" => &self.ai_runs,
            other => panic!("no HTTP function {other}"),
        };
        router.clone()
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.expect("request")).await
    }

    pub async fn get(&self, user: &TestUser, path: &str) -> TestResponse {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    pub async fn post(&self, user: &TestUser, path: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(&user.token), Some(&body)).await
    }

    pub async fn put(&self, user: &TestUser, path: &str, body: Value) -> TestResponse {
        self.call(Method::PUT, path, Some(&user.token), Some(&body)).await
    }

    pub async fn delete(&self, user: &TestUser, path: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(&user.token), None).await
    }

    /// A user who has signed in once (so they exist and can be invited by e-mail).
    pub async fn user(&self, label: &str) -> TestUser {
        let subject = format!("{label}-{}", Uuid::new_v4().simple());
        let email = format!("{subject}@test.example");
        let user = TestUser {
            id: shared::auth::user_id_for(HS256_ISSUER, &subject),
            token: mint(&subject, Some(&email), Duration::from_secs(3600)),
            subject,
            email,
        };
        self.get(&user, "/v1/workspaces").await.expect(StatusCode::OK);
        user
    }

    pub async fn workspace(&self, owner: &TestUser, name: &str) -> Uuid {
        self.post(owner, "/v1/workspaces", json!({ "name": name })).await.expect(StatusCode::CREATED);
        let list = self.get(owner, "/v1/workspaces?limit=1").await;
        list.body["items"][0]["id"].as_str().and_then(|id| id.parse().ok()).expect("new workspace listed first")
    }

    /// Makes `user` a member with `role` the only way the API allows: `manager` invites their
    /// address, and they accept with the token the invitation mail carries.
    pub async fn add_member(&self, manager: &TestUser, workspace: Uuid, user: &TestUser, role: &str) {
        let path = format!("/v1/workspaces/{workspace}/invitations");
        let invitation = self.post(manager, &path, json!({ "email": user.email, "role": role })).await;
        invitation.expect(StatusCode::CREATED);
        self.accept_invitation(user, invitation.id()).await;
    }

    /// Makes `user` a contact of the client: a portal invitation, accepted.
    pub async fn add_contact(&self, manager: &TestUser, workspace: Uuid, client: Uuid, user: &TestUser) {
        let path = format!("/v1/workspaces/{workspace}/clients/{client}/invitations");
        let invitation = self.post(manager, &path, json!({ "email": user.email })).await;
        invitation.expect(StatusCode::CREATED);
        self.accept_invitation(user, invitation.id()).await;
    }

    /// `user` accepts the invitation with the token its newest mail carries.
    pub async fn accept_invitation(&self, user: &TestUser, invitation: Uuid) {
        let token = invitation_token(invitation).await;
        self.post(user, "/v1/invitations/accept", json!({ "token": token })).await.expect(StatusCode::OK);
    }

    /// A workspace with one user of every kind and one of every kind of row, built through the API.
    pub async fn tenant(&self, label: &str) -> Tenant {
        let owner = self.user(&format!("{label}-owner")).await;
        let id = self.workspace(&owner, &format!("{label} studio")).await;
        // The free plan would cap members and projects below what the fixture holds.
        subscribe(id, "studio", "active").await;
        let ws = format!("/v1/workspaces/{id}");
        let mut members = Vec::new();
        for role in ["admin", "member", "viewer"] {
            let user = self.user(&format!("{label}-{role}")).await;
            self.add_member(&owner, id, &user, role).await;
            members.push(user);
        }
        let client = json!({ "name": "Acme", "email": INTERNAL_CLIENT_EMAIL, "notes": INTERNAL_CLIENT_NOTES,
                             "portal_note": "Welcome to your project portal" });
        let client_id = self.post(&owner, &format!("{ws}/clients"), client).await.id();
        let contact = self.user(&format!("{label}-contact")).await;
        self.add_contact(&owner, id, client_id, &contact).await;
        let project_id = self
            .post(&owner, &format!("{ws}/projects"), json!({ "name": "Client site", "client_id": client_id }))
            .await
            .id();
        let internal_project_id =
            self.post(&owner, &format!("{ws}/projects"), json!({ "name": "Internal" })).await.id();
        let project = format!("{ws}/projects/{project_id}");
        let milestone_id = self.post(&owner, &format!("{project}/milestones"), json!({ "title": "Design" })).await.id();
        let visible_deliverable_id = self
            .post(&owner, &format!("{project}/deliverables"), json!({ "title": "Mockups", "client_visible": true }))
            .await
            .id();
        let hidden_deliverable_id =
            self.post(&owner, &format!("{project}/deliverables"), json!({ "title": "Internal notes" })).await.id();
        let visible_comment_id = self
            .post(&owner, &format!("{project}/comments"), json!({ "body": "For the client", "client_visible": true }))
            .await
            .id();
        let hidden_comment_id =
            self.post(&owner, &format!("{project}/comments"), json!({ "body": "Team only" })).await.id();
        let [admin, member, viewer] = members.try_into().expect("three members");
        Tenant {
            id,
            owner,
            admin,
            member,
            viewer,
            contact,
            client_id,
            project_id,
            internal_project_id,
            milestone_id,
            visible_deliverable_id,
            hidden_deliverable_id,
            visible_comment_id,
            hidden_comment_id,
        }
    }
}

pub struct Tenant {
    pub id: Uuid,
    pub owner: TestUser,
    pub admin: TestUser,
    pub member: TestUser,
    pub viewer: TestUser,
    pub contact: TestUser,
    pub client_id: Uuid,
    /// Assigned to the client, so its contact sees it.
    pub project_id: Uuid,
    /// Not assigned to any client.
    pub internal_project_id: Uuid,
    pub milestone_id: Uuid,
    pub visible_deliverable_id: Uuid,
    pub hidden_deliverable_id: Uuid,
    pub visible_comment_id: Uuid,
    pub hidden_comment_id: Uuid,
}

impl Tenant {
    pub fn path(&self) -> String {
        format!("/v1/workspaces/{}", self.id)
    }

    pub fn project_path(&self) -> String {
        format!("/v1/workspaces/{}/projects/{}", self.id, self.project_id)
    }
}

/// The token of an invitation's newest mail, read from the outbox (where the email worker would
/// pick it up): the invitation's hash must match, so a mail of another invitation cannot stand in.
pub async fn invitation_token(invitation: Uuid) -> String {
    let service = service_pool().await;
    let (hash, email): (Vec<u8>, String) = sqlx::query_as("SELECT token_hash, email FROM invitations WHERE id = $1")
        .bind(invitation)
        .fetch_one(&service)
        .await
        .expect("invitation");
    let tokens: Vec<String> = sqlx::query_scalar(
        "SELECT params->>'token' FROM emails WHERE to_address = $1 AND params ? 'token' ORDER BY id DESC",
    )
    .bind(&email)
    .fetch_all(&service)
    .await
    .expect("invitation mails");
    tokens
        .into_iter()
        .find(|token| shared::auth::api_key::hash_token(token)[..] == hash[..])
        .expect("a mail carries the invitation's token")
}

/// An HS256 token as the test app accepts it.
pub fn mint(subject: &str, email: Option<&str>, ttl: Duration) -> String {
    DevToken { secret: HS256_SECRET, issuer: HS256_ISSUER, audience: AUDIENCE, subject, email, ttl }
        .mint()
        .expect("mint token")
}

/// A pool as the worker (service) role, which sees every tenant: for asserting what was written.
/// A pool as one worker's own role, as that worker runs on Lambda.
pub async fn worker_pool(role: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&database().worker_url(role))
        .await
        .expect("connect as a worker role")
}

/// A worker's pool as the function builds it: its database role, and its name for the audit log.
pub async fn worker_pool_as(role: &str, actor: &str) -> PgPool {
    let config = shared::config::DatabaseConfig {
        url: database().worker_url(role).into(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(30),
        host_override: None,
    };
    shared::db::connect_as(&config, actor).await.expect("connect as a worker role")
}

pub async fn service_pool() -> PgPool {
    PgPoolOptions::new().max_connections(2).connect(&database().service_url).await.expect("connect as app_service")
}

/// The API role's pool as the functions build it (`shared::db::connect`): its connections'
/// settings (generic plans, no bitmap scans) decide the plans, and the opening is prepared.
pub async fn functions_pool() -> PgPool {
    let config = shared::config::DatabaseConfig {
        url: database().api_url.clone().into(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(30),
        host_override: None,
    };
    shared::db::connect(&config).await.expect("the functions' pool")
}

/// A superuser transaction that seeds without the per-row triggers (replica mode): bulk rows
/// past the plan limits, with no audit or activity rows.
pub async fn seeding_session(owner_pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut seed = owner_pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *seed).await.unwrap();
    seed
}

/// A pool as the API role, for raw SQL under row-level security.
pub async fn api_pool() -> PgPool {
    api_pool_of(4).await
}

/// As `api_pool`, with at most `connections` connections (one, to reuse the very same session).
pub async fn api_pool_of(connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        // As the functions' pools: its connections can open requests (`TenantTx`).
        .after_connect(|conn, _| Box::pin(shared::db::prepare_opening(conn)))
        .connect(&database().api_url)
        .await
        .expect("connect as app_api")
}

/// A pool as the migration owner (a superuser in tests), for catalog checks.
/// Sends a request through a function's router and reads its answer.
pub async fn respond(router: Router, request: Request<Body>) -> TestResponse {
    let response = router.oneshot(request).await.expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    TestResponse { status, headers, body }
}

pub async fn owner_pool() -> PgPool {
    PgPoolOptions::new().max_connections(2).connect(&database().owner_url).await.expect("connect as owner")
}

pub async fn count(pool: &PgPool, table: &str, workspace_id: Uuid) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE workspace_id = $1");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(workspace_id).fetch_one(pool).await.expect("count")
}

/// Gives a tenant rows in the tables the API fixture does not fill (billing, AI, trails, keys,
/// invitations, mails), so checks over every tenant table are never vacuous.
pub async fn fill_other_tables(tenant: &Tenant) {
    let owner = owner_pool().await;
    let run = Uuid::now_v7();
    let statements = [
        "INSERT INTO ai_runs (id, workspace_id, tool, input, status, request_hash, quota_period)
         VALUES ($2, $1, 'proposal_draft', '{}', 'succeeded', 'h', date_trunc('month', now())::date)",
        "INSERT INTO ai_quota_usage (workspace_id, period, reserved) VALUES ($1, date_trunc('month', now())::date, 1)
         ON CONFLICT DO NOTHING",
        "INSERT INTO usage_records (id, workspace_id, run_id, quantity, occurred_at) VALUES (gen_random_uuid(), $1, $2, 1, now())",
        "INSERT INTO audit_log (workspace_id, actor, action) VALUES ($1, 'test', 'fixture')",
        "INSERT INTO activity (workspace_id, kind, message) VALUES ($1, 'test', 'fixture')",
        "INSERT INTO stripe_events (id, type, created, workspace_id, outcome, payload)
         VALUES ('evt_' || replace($2::text, '-', ''), 'fixture', now(), $1, 'applied', '{}')",
        "INSERT INTO subscription_cancellations (stripe_subscription_id, workspace_id, stripe_customer_id, reason)
         VALUES ('sub_' || replace($2::text, '-', ''), $1, 'cus_x', 'fixture')",
        "INSERT INTO seat_syncs (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING",
        "INSERT INTO checkout_sessions (stripe_session_id, workspace_id, plan_id, url, expires_at)
         VALUES ('cs_' || replace($2::text, '-', ''), $1, 'pro', 'https://checkout.stripe.com/x', now() + interval '1 day')",
        "INSERT INTO users (id, issuer, subject) VALUES ($2, 'urn:saas:api-key', $2::text)",
        "INSERT INTO api_keys (id, workspace_id, name, role, display_prefix, secret_hash)
         VALUES ($2, $1, 'fixture', 'member', 'sak_fixture', sha256($2::text::bytea))",
        "INSERT INTO invitations (id, workspace_id, email, role, token_hash, expires_at)
         VALUES ($2, $1, 'fixture@invited.example', 'viewer', sha256(('inv' || $2::text)::bytea), now() + interval '7 days')",
        "INSERT INTO emails (id, workspace_id, to_address, template) VALUES ($2, $1, 'fixture@invited.example', 'fixture')",
        "INSERT INTO webhook_endpoints (id, workspace_id, url, events, secret)
         VALUES ($2, $1, 'https://hooks.example.test/fixture', '{project.created}', 'whsec_Zml4dHVyZQ==')",
        "INSERT INTO webhook_events (id, workspace_id, type, payload) VALUES ($2, $1, 'webhook.test', '{}')",
        "INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, event_id) VALUES ($2, $1, $2, $2)",
        "INSERT INTO webhook_attempts (id, workspace_id, delivery_id, status_code, latency_ms) VALUES ($2, $1, $2, 200, 1)",
        "INSERT INTO entitlement_overrides (id, workspace_id, entitlement, value, reason, granted_by, expires_at)
         VALUES ($2, $1, 'members', 60, 'fixture', 'operator:fixture', now() + interval '1 day')",
        "INSERT INTO workspace_exports (id, workspace_id, status, error) VALUES ($2, $1, 'failed', 'fixture')",
        "INSERT INTO realtime_connections (id, user_id) VALUES ($2::text, (SELECT created_by FROM workspaces WHERE id = $1))",
        "INSERT INTO realtime_subscriptions (connection_id, workspace_id, user_id)
         VALUES ($2::text, $1, (SELECT created_by FROM workspaces WHERE id = $1))",
        // A pending upload (which also gives the workspace its storage row) and a queued deletion.
        "INSERT INTO files (id, workspace_id, project_id, deliverable_id, name, content_type, size_bytes,
                                        upload_expires_at)
         SELECT $2, $1, d.project_id, d.id, 'fixture.pdf', 'application/pdf', 10, now() + interval '15 minutes'
         FROM deliverables d WHERE d.workspace_id = $1 ORDER BY d.id LIMIT 1",
        "INSERT INTO file_deletions (object_key, workspace_id) VALUES ('files/' || $1::text || '/' || $2::text, $1)",
    ];
    for statement in statements {
        sqlx::query(statement).bind(tenant.id).bind(run).execute(&owner).await.expect(statement);
    }
}

/// Gives a workspace a subscription as the billing worker would record it (tests only).
pub async fn subscribe(workspace_id: Uuid, plan: &str, status: &str) {
    sqlx::query(
        "INSERT INTO subscriptions (workspace_id, stripe_subscription_id, stripe_customer_id, plan_id, status,
                                    current_period_end, last_event_created, last_event_id)
         VALUES ($1, 'sub_' || replace($1::text, '-', ''), 'cus_' || replace($1::text, '-', ''), $2, $3,
                 now() + interval '30 days', now(), 'evt_fixture')
         ON CONFLICT (workspace_id) DO UPDATE SET plan_id = excluded.plan_id, status = excluded.status",
    )
    .bind(workspace_id)
    .bind(plan)
    .bind(status)
    .execute(&service_pool().await)
    .await
    .expect("insert subscription");
    sqlx::query("UPDATE workspaces SET stripe_customer_id = 'cus_' || replace(id::text, '-', '') WHERE id = $1 AND stripe_customer_id IS NULL")
        .bind(workspace_id)
        .execute(&service_pool().await)
        .await
        .expect("link customer");
}

/// The AWS SDK configuration for the local moto server that `scripts/test.sh` starts. Refuses
/// anything but a loopback endpoint, so no test can reach real AWS.
pub async fn local_aws() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at the local moto server (got {endpoint:?}); run the suite with scripts/test.sh"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// A fresh billing queue (Stripe events and seat syncs), as the reconciliation sends to.
pub async fn billing_queue() -> shared::queue::Queue {
    shared::queue::Queue::new(aws_sdk_sqs::Client::new(&local_aws().await), create_queue("billing", &[]).await)
}

/// The billing worker's settings against the Stripe at `stripe_base`.
pub fn billing_settings(stripe_base: &str, past_due_grace_days: i64) -> Vec<(&'static str, String)> {
    vec![
        ("STRIPE_SECRET_KEY", stripe::SECRET_KEY.to_owned()),
        ("STRIPE_API_BASE", stripe_base.to_owned()),
        ("BILLING_PAST_DUE_GRACE_DAYS", past_due_grace_days.to_string()),
    ]
}

/// The billing reconciliation (`app_billing`) against the Stripe at `stripe_base`, queueing on
/// `queue`, with its deployed 30-day lookback.
pub async fn reconciler(stripe_base: &str, queue: &shared::queue::Queue) -> billing_reconcile::Reconciler {
    let mut settings = billing_settings(stripe_base, 7);
    settings.push(("STRIPE_EVENTS_QUEUE_URL", queue.url().to_owned()));
    worker("app_billing", &settings).await
}

/// A fresh SQS queue in moto; returns its URL.
pub async fn create_queue(
    name_prefix: &str,
    attributes: &[(aws_sdk_sqs::types::QueueAttributeName, String)],
) -> String {
    let client = aws_sdk_sqs::Client::new(&local_aws().await);
    let mut request = client.create_queue().queue_name(format!("{name_prefix}-{}", Uuid::new_v4().simple()));
    for (name, value) in attributes {
        request = request.attributes(name.clone(), value);
    }
    request.send().await.expect("create queue in moto").queue_url().expect("queue url").to_owned()
}

/// A fresh S3 bucket in moto; returns its name.
pub async fn create_bucket(name_prefix: &str) -> String {
    let name = format!("{name_prefix}-{}", Uuid::new_v4().simple());
    local_aws().await;
    let client = shared::exports::client().await;
    client.create_bucket().bucket(&name).send().await.expect("create bucket in moto");
    name
}

/// An export worker (the `app_exporter` role) writing to `bucket` in moto, parts of S3's
/// smallest size.
pub async fn exporter(bucket: &str, queue: Option<&str>) -> export_worker::Exporter {
    let mut settings = vec![
        ("EXPORTS_BUCKET", bucket.to_owned()),
        ("FILES_BUCKET", files::BUCKET.to_owned()),
        ("EXPORT_PART_BYTES", export_worker::archive::MIN_PART_BYTES.to_string()),
    ];
    settings.extend(queue.map(|url| ("EXPORT_QUEUE_URL", url.to_owned())));
    worker("app_exporter", &settings).await
}

/// A worker built by its own constructor from settings, as its `main.rs` builds it on Lambda and
/// the local stack does: `role`'s login as `SERVICE_DATABASE_URL`, AWS at the environment's
/// endpoint (moto), then `settings`.
pub async fn worker<W: shared::runtime::FromSettings>(role: &str, settings: &[(&'static str, String)]) -> W {
    W::from_settings(&worker_settings(role, settings))
        .await
        .unwrap_or_else(|e| panic!("{} from its settings: {e}", std::any::type_name::<W>()))
}

/// Settings from name-value pairs (a later pair wins), as a function reads its environment.
pub fn settings(pairs: &[(&'static str, String)]) -> shared::config::Settings {
    let pairs = pairs.to_vec();
    shared::config::Settings::from_fn(move |name| {
        pairs.iter().rev().find(|(known, _)| *known == name).map(|(_, value)| value.clone())
    })
}

/// The Stripe webhook function as deployed, built from its settings: signed with `secrets`
/// (comma-separated), enqueueing on `queue_url`.
pub async fn stripe_webhook(secrets: &str, queue_url: &str, extra: &[(&'static str, String)]) -> Router {
    let mut pairs =
        vec![("STRIPE_WEBHOOK_SECRETS", secrets.to_owned()), ("STRIPE_EVENTS_QUEUE_URL", queue_url.to_owned())];
    pairs.extend(extra.iter().cloned());
    shared::runtime::app::<stripe_webhook::Function>(
        <stripe_webhook::WebhookState as shared::runtime::FromSettings>::from_settings(&settings(&pairs))
            .await
            .expect("the webhook from its settings"),
    )
}

/// A worker's settings: `role`'s login as `SERVICE_DATABASE_URL`, then `settings`. For the
/// constructors that also take what AWS would provide (the fan-out's WebSocket transport).
pub fn worker_settings(role: &str, settings: &[(&'static str, String)]) -> shared::config::Settings {
    let mut all = vec![("SERVICE_DATABASE_URL", database().worker_url(role))];
    all.extend(settings.iter().cloned());
    self::settings(&all)
}

/// The admin API with `dev-operator` as its one platform operator: one router for a test's
/// calls, as one deployed function serves them.
pub struct AdminApi {
    router: Router,
    /// A token of the operator.
    pub operator: String,
}

impl AdminApi {
    pub async fn new() -> Self {
        let mut settings = base_settings();
        settings.push(("ADMIN_SUBJECTS".into(), "dev-operator".into()));
        Self { router: admin_router(settings).await, operator: mint("dev-operator", None, Duration::from_secs(600)) }
    }

    /// `method uri` with `body` (JSON), as the holder of `token` (the operator's, or anyone's).
    pub async fn call(&self, token: &str, method: Method, uri: &str, body: Option<Value>) -> TestResponse {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("a request");
        respond(self.router.clone(), request).await
    }

    /// As the operator.
    pub async fn operate(&self, method: Method, uri: &str, body: Option<Value>) -> TestResponse {
        self.call(&self.operator, method, uri, body).await
    }
}

/// Sends `body` to the admin API as a platform operator (`dev-operator`).
pub async fn as_operator(method: Method, uri: &str, body: Value) -> TestResponse {
    AdminApi::new().await.operate(method, uri, Some(body)).await
}

/// Grants the workspace `entitlement` = `value` for an hour, as a platform operator does.
/// Answers the override granted.
pub async fn grant_override(workspace: Uuid, entitlement: &str, value: Value) -> Value {
    let expires_at = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a formattable time");
    let body = json!({"entitlement": entitlement, "value": value, "expires_at": expires_at, "reason": "Test"});
    as_operator(Method::POST, &format!("/v1/admin/workspaces/{workspace}/overrides"), body)
        .await
        .expect(StatusCode::CREATED)
        .clone()
}

//! The `admin` function: the platform operators' read surface over every tenant.
//!
//! An operator is a person whose token, from one of the configured OIDC issuers, carries the
//! `ADMIN_GROUP` group (`cognito:groups` or `groups`); for local development, also the subjects
//! in `ADMIN_SUBJECTS` of the development (HS256) issuer. Nothing a tenant can set makes anyone
//! an operator, and API keys never are. The function reads through its own database role
//! (`app_admin`: read-only policies over every table, secret columns not granted), from
//! `ADMIN_DATABASE_URL`. Its writes (suspension) are each audited with the operator as the
//! actor and their reason.

mod overrides;
mod overview;
mod suspension;
mod trial;

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use shared::ApiError;
use shared::auth::{Authenticator, Caller, bearer_token};
use shared::billing_sync::StripeState;
use shared::config::{AuthConfig, DatabaseConfig, Settings};
use shared::http::extract::Query;
use shared::http::pagination::{Page, PageRequest};
use shared::openapi::OpenApiRouter;
use shared::queue::Queue;
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

pub const FUNCTION: &str = "admin";

/// Who counts as an operator.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    /// The identity provider group of operators (from OIDC issuers only).
    pub group: Option<String>,
    /// Development-issuer subjects that are operators (local development).
    pub dev_subjects: Vec<String>,
    /// The development (HS256) issuer, whose subjects `dev_subjects` names.
    pub dev_issuer: Option<String>,
}

impl Operators {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, auth: &AuthConfig) -> Self {
        Self {
            group: lookup("ADMIN_GROUP").filter(|g| !g.trim().is_empty()),
            dev_subjects: lookup("ADMIN_SUBJECTS")
                .map(|s| s.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
            dev_issuer: auth.hs256.as_ref().map(|hs| hs.issuer.clone()),
        }
    }

    pub fn admits(&self, caller: &Caller) -> bool {
        if caller.api_key.is_some() {
            return false;
        }
        let by_group = self.group.as_ref().is_some_and(|group| caller.groups.contains(group));
        let by_subject =
            self.dev_issuer.as_deref() == Some(caller.issuer.as_str()) && self.dev_subjects.contains(&caller.subject);
        by_group || by_subject
    }
}

#[derive(Clone)]
pub struct AdminState(std::sync::Arc<Inner>);

pub struct Inner {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub operators: Operators,
    /// Stripe, for trial extensions (`None`: refused with 503).
    pub stripe: Option<StripeState>,
    /// The dead-letter queues whose depth the totals report, by name.
    pub dead_letter_queues: Vec<(String, Queue)>,
}

impl AdminState {
    pub fn new(pool: PgPool, auth: &AuthConfig, operators: Operators) -> Self {
        Self(std::sync::Arc::new(Inner {
            pool,
            auth: Authenticator::new(auth),
            operators,
            stripe: None,
            dead_letter_queues: Vec::new(),
        }))
    }

    /// Set while building, before the state is shared.
    fn inner_mut(&mut self) -> &mut Inner {
        std::sync::Arc::get_mut(&mut self.0).expect("the admin state is configured before it is shared")
    }

    pub fn with_stripe(mut self, stripe: StripeState) -> Self {
        self.inner_mut().stripe = Some(stripe);
        self
    }

    pub fn with_dead_letter_queues(mut self, queues: Vec<(String, Queue)>) -> Self {
        self.inner_mut().dead_letter_queues = queues;
        self
    }
}

/// `DEAD_LETTER_QUEUES`: `name=url` pairs, comma-separated.
pub fn parse_dead_letter_queues(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, url)| (name.trim().to_owned(), url.trim().to_owned()))
        .filter(|(name, url)| !name.is_empty() && !url.is_empty())
        .collect()
}

impl FromRef<AdminState> for PgPool {
    fn from_ref(state: &AdminState) -> PgPool {
        state.pool.clone()
    }
}

impl std::ops::Deref for AdminState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A verified operator (the request is refused otherwise: 401 without a valid token, 403 for
/// anyone else).
pub struct Operator(pub Caller);

impl<S> FromRequestParts<S> for Operator
where
    AdminState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AdminState::from_ref(state);
        let token = bearer_token(parts)?;
        let caller = state.auth.authenticate(token).await.map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        if !state.operators.admits(&caller) {
            tracing::warn!(issuer = %caller.issuer, subject = %caller.subject, "a non-operator called the admin API");
            return Err(ApiError::Denied {
                code: "not_an_operator",
                detail: "The admin API is for platform operators.".into(),
            });
        }
        tracing::Span::current().record("user_id", tracing::field::display(caller.user_id));
        Ok(Operator(caller))
    }
}

pub fn router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(overview::overview))
        .routes(routes!(totals))
        .routes(routes!(overrides::list, overrides::grant))
        .routes(routes!(overrides::revoke))
        .routes(routes!(suspension::suspend))
        .routes(routes!(suspension::unsuspend))
        .routes(routes!(trial::extend))
}

shared::http_function!(AdminState, |state| shared::http::finish_with(
    router().merge(shared::http::health::routes()),
    state,
    FUNCTION,
    16 * 1024
));

/// The reason every operator write must give (3 to 1000 characters, trimmed).
pub fn required_reason(text: &str) -> Result<&str, ApiError> {
    let text = text.trim();
    if !(3..=1000).contains(&text.chars().count()) {
        return Err(ApiError::validation("reason", "must say why, in 3 to 1000 characters"));
    }
    Ok(text)
}

/// How an operator is named in audit entries: `operator:<issuer>|<subject>`.
pub fn actor(operator: &Caller) -> String {
    format!("operator:{}|{}", operator.issuer, operator.subject)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    /// Part of a workspace's name, a member's e-mail, or a Stripe customer id (exact).
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct WorkspaceRow {
    id: Uuid,
    name: String,
    plan: String,
    subscription_status: Option<String>,
    stripe_customer_id: Option<String>,
    members: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// Workspaces by name, member e-mail or Stripe customer id (platform operators).
#[utoipa::path(get, path = "/v1/admin/workspaces", operation_id = "admin_workspaces_search", tag = "admin", params(SearchQuery), responses((status = 200, body = Page<WorkspaceRow>)))]
async fn search(
    State(state): State<AdminState>,
    _operator: Operator,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Page<WorkspaceRow>>, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::validation("q", "must be at most 200 characters"));
    }
    // LIKE's own characters in the search text are matched literally.
    let pattern = q.map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let rows = sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.id, w.name, app.effective_plan(w.id) AS "plan!", s.status AS "subscription_status?", w.stripe_customer_id,
                (SELECT count(*) FROM workspace_members m WHERE m.workspace_id = w.id) AS "members!", w.created_at
         FROM workspaces w LEFT JOIN subscriptions s ON s.workspace_id = w.id
         WHERE ($1::text IS NULL
                OR w.name ILIKE $2
                OR w.stripe_customer_id = $1
                OR EXISTS (SELECT 1 FROM workspace_members m JOIN users u ON u.id = m.user_id
                           WHERE m.workspace_id = w.id AND u.email ILIKE $2))
           AND ($3::uuid IS NULL OR w.id < $3)
         ORDER BY w.id DESC LIMIT $4"#,
        q,
        pattern,
        page.before,
        page.fetch_limit(),
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, &page, |w| w.id)))
}

#[derive(Serialize, ToSchema)]
struct Totals {
    workspaces: i64,
    by_plan: serde_json::Value,
    subscriptions_by_status: serde_json::Value,
    /// Monthly recurring revenue by currency, in its smallest unit: active and past-due
    /// subscriptions (not trials), from the prices Stripe last synced.
    mrr: serde_json::Value,
    /// Paying subscriptions whose amount is unknown (metered or tiered prices, or not synced
    /// since amounts were recorded): MRR leaves them out.
    mrr_unpriced_subscriptions: i64,
    /// Stripe events received in the last 24 hours, by outcome.
    stripe_events_last_day: serde_json::Value,
    /// Messages in each dead-letter queue (`null`: the queue could not be read).
    dead_lettered: serde_json::Map<String, serde_json::Value>,
}

/// Platform totals: workspaces by plan, subscriptions, MRR, Stripe events, dead-letter depths.
#[utoipa::path(get, path = "/v1/admin/totals", operation_id = "admin_totals", tag = "admin", responses((status = 200, body = Totals)))]
async fn totals(State(state): State<AdminState>, _operator: Operator) -> Result<Json<Totals>, ApiError> {
    let row = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM workspaces) AS "workspaces!",
                (SELECT coalesce(jsonb_object_agg(plan, n), '{}') FROM
                    (SELECT app.effective_plan(id) AS plan, count(*) AS n FROM workspaces GROUP BY 1) p) AS "by_plan!",
                (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
                    (SELECT status, count(*) AS n FROM subscriptions GROUP BY 1) s) AS "by_status!",
                (SELECT coalesce(jsonb_object_agg(currency, amount), '{}') FROM
                    (SELECT currency, sum(monthly_amount) AS amount FROM subscriptions
                     WHERE status IN ('active', 'past_due') AND monthly_amount IS NOT NULL AND currency IS NOT NULL
                     GROUP BY 1) m) AS "mrr!",
                (SELECT count(*) FROM subscriptions
                 WHERE status IN ('active', 'past_due') AND (monthly_amount IS NULL OR currency IS NULL)) AS "unpriced!",
                (SELECT coalesce(jsonb_object_agg(outcome, n), '{}') FROM
                    (SELECT outcome, count(*) AS n FROM stripe_events
                     WHERE received_at > now() - interval '1 day' GROUP BY 1) e) AS "events!""#,
    )
    .fetch_one(&state.pool)
    .await?;
    let (workspaces, by_plan, by_status, mrr, unpriced, events) =
        (row.workspaces, row.by_plan, row.by_status, row.mrr, row.unpriced, row.events);
    let depths = futures_util::future::join_all(state.dead_letter_queues.iter().map(|(name, queue)| async move {
        match queue.approximate_depth().await {
            Ok(depth) => (name.clone(), serde_json::json!(depth)),
            Err(error) => {
                tracing::warn!(queue = %name, %error, "could not read a dead-letter queue");
                (name.clone(), serde_json::Value::Null)
            }
        }
    }))
    .await;
    Ok(Json(Totals {
        workspaces,
        by_plan,
        subscriptions_by_status: by_status,
        mrr,
        mrr_unpriced_subscriptions: unpriced,
        stripe_events_last_day: events,
        dead_lettered: depths.into_iter().collect(),
    }))
}

/// Reads `ADMIN_DATABASE_URL` (an `app_admin` login), the `AUTH_*` settings, `ADMIN_GROUP`,
/// `ADMIN_SUBJECTS`, and optionally Stripe's key and the dead-letter queues to watch.
impl shared::runtime::FromSettings for AdminState {
    async fn from_settings(settings: &Settings) -> Result<Self, shared::runtime::Error> {
        let lookup = |name: &str| settings.get(name);
        let auth = AuthConfig::from_lookup(&lookup)?;
        let database = DatabaseConfig::from_lookup(&lookup, "ADMIN_DATABASE_URL")?;
        let pool = shared::db::connect_as(&database, FUNCTION).await?;
        let operators = Operators::from_lookup(lookup, &auth);
        let mut state = AdminState::new(pool, &auth, operators);
        if let Some(key) = settings.get("STRIPE_SECRET_KEY") {
            let api_base = settings.get("STRIPE_API_BASE");
            state = state.with_stripe(StripeState::new(&secrecy::SecretString::from(key), api_base.as_deref())?);
        }
        let queues = parse_dead_letter_queues(&settings.get("DEAD_LETTER_QUEUES").unwrap_or_default());
        if !queues.is_empty() {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let client = aws_sdk_sqs::Client::new(&config);
            state = state.with_dead_letter_queues(
                queues.into_iter().map(|(name, url)| (name, Queue::new(client.clone(), url))).collect(),
            );
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_come_from_the_group_or_the_development_subjects_only() {
        let operators = Operators {
            group: Some("platform-operators".into()),
            dev_subjects: vec!["dev-operator".into()],
            dev_issuer: Some("saas-local".into()),
        };
        let mut oidc = Caller::new("https://idp.example".into(), "alice".into(), None);
        assert!(!operators.admits(&oidc));
        oidc.groups = vec!["platform-operators".into()];
        assert!(operators.admits(&oidc));
        assert!(operators.admits(&Caller::new("saas-local".into(), "dev-operator".into(), None)));
        assert!(!operators.admits(&Caller::new("https://idp.example".into(), "dev-operator".into(), None)));
        assert!(!Operators::default().admits(&oidc));
    }

    #[test]
    fn dead_letter_queues_are_name_url_pairs() {
        assert_eq!(
            parse_dead_letter_queues(" stripe-events=https://sqs/1 ,email=https://sqs/2,broken,=x"),
            vec![("stripe-events".into(), "https://sqs/1".into()), ("email".into(), "https://sqs/2".into())]
        );
    }
}

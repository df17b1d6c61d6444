//! The PostgreSQL pool and the only way HTTP handlers reach the database: a transaction that
//! first tells row-level security who the caller is.

#[cfg(feature = "migrations")]
pub mod migrate;
mod opening;
mod rate_limiter;

use std::ops::{Deref, DerefMut};

use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::caller::Caller;
use crate::config::DatabaseConfig;
use crate::error::ApiError;

pub use opening::{Cost, Entry, PREPARE, Scope};
pub use rate_limiter::{LEASE_LIFETIME, LeaseScope, MOST_PER_LEASE, RateLimiter, Ticket};

/// Builds the pool once per execution environment. A Lambda environment serves one request at
/// a time, so a couple of connections is plenty; idle ones are closed before RDS would drop them
/// while the environment is frozen. Every connection is ready to open requests ([`TenantTx`]).
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    pool(config, None).await
}

/// Prepares the statements that open a request on a new connection (one round trip, when the
/// connection is opened, not on a request's path). A pool whose connections did not run this
/// cannot open a [`TenantTx`]; `connect` runs it on every connection.
pub async fn prepare_opening(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(opening::PREPARE).execute(conn).await.map(|_| ())
}

/// As `connect`, for a worker: every change it makes is audited as `actor` (a session setting
/// the audit trigger reads when no user or API key is acting).
pub async fn connect_as(config: &DatabaseConfig, actor: &str) -> Result<PgPool, sqlx::Error> {
    pool(config, Some(actor)).await
}

/// How a pool's connections are opened: the URL (its host replaced by the proxy's, when one is
/// configured), the statement timeout, generic plans and, for a worker, the audit actor.
pub fn connect_options(config: &DatabaseConfig, actor: Option<&str>) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options: PgConnectOptions = config.url.expose_secret().parse()?;
    if let Some(host) = &config.host_override {
        options = options.host(host);
    }
    let statement_timeout = config.statement_timeout.as_millis().to_string();
    // Generic plans: the statements are prepared once per connection and their custom plans
    // would be rebuilt on every execution, because row-level security's filters make the
    // planner's estimate of a generic plan look worse than it is. Planning cost about as much as
    // running a list page; the generic plans walk the same indexes.
    let options = options
        .application_name("saas-backend")
        .options([("statement_timeout", statement_timeout.as_str()), ("plan_cache_mode", "force_generic_plan")]);
    Ok(match actor {
        Some(actor) => options.options([("app.actor", actor)]),
        // An API request reads a page. Under a generic plan the planner cannot see the page's
        // tenant, so in a skewed mix (hundreds of small tenants, one with 20,000 projects) it
        // estimates a handful of rows and prefers a bitmap scan of the whole tenant and a sort
        // over walking the page's index and stopping at the page (4.7 ms against 0.07 ms for
        // that tenant's first page). Without bitmap scans the ordered index walk is what is left.
        None => options.options([("enable_bitmapscan", "off")]),
    })
}

async fn pool(config: &DatabaseConfig, actor: Option<&str>) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(config, actor)?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(std::time::Duration::from_secs(240))
        // A connection idle for a while (a frozen Lambda environment, a database failover) is
        // checked before use; a warm request skips that extra round trip.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > std::time::Duration::from_secs(10) {
                    use sqlx::Connection as _;
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    // Only the API's pools open requests; a worker's role need not see the opening's functions.
    let pool = match actor {
        None => pool.after_connect(|conn, _| Box::pin(prepare_opening(conn))),
        Some(_) => pool,
    };
    // Opening the first connection during init shortens the first request.
    pool.connect_with(options).await
}

/// A transaction scoped to one caller: `app.user_id` is set (transaction-local) before any other
/// statement, and the caller's user row exists. Dropping it without `commit` rolls back.
///
/// The transaction is opened by hand, not with sqlx's `Transaction`, because sqlx's `begin`
/// discards the rows of its statement, and the request's first statement answers the caller's
/// access: BEGIN and that statement go in one round trip. What `Transaction` does on drop is
/// done here too: a rollback, run before the connection is returned to the pool.
pub struct TenantTx {
    /// Present until `commit` or drop.
    conn: Option<PoolConnection<Postgres>>,
}

impl TenantTx {
    /// One round trip: BEGIN, the caller's identity and their user row (written only when it is
    /// missing or the e-mail changed). Not counted against a rate limit: for a request's later
    /// transactions, and tools.
    #[tracing::instrument(name = "db.begin", skip_all)]
    pub async fn begin(pool: &PgPool, caller: &Caller) -> Result<Self, ApiError> {
        Ok(Self::open(pool, None, caller, None).await?.0)
    }

    /// As `begin`, for a route outside any workspace (one's workspace list, creating one,
    /// accepting an invitation): counted against the caller's own rate limit, through the
    /// instance's `limiter` (an API key's against its workspace's and its own).
    #[tracing::instrument(name = "db.begin", skip_all)]
    pub async fn begin_counted(pool: &PgPool, limiter: &RateLimiter, caller: &Caller) -> Result<Self, ApiError> {
        Ok(Self::open(pool, Some(limiter), caller, None).await?.0)
    }

    /// As `begin`, and in the same round trip enters `workspace` for the rest of the transaction
    /// (the row-level security policies read what entering learned) and answers the caller's
    /// access to it and to `project`. A caller without access enters nothing. The request is
    /// counted against its rate limits first (429 when one is spent), from a lease the
    /// instance's `limiter` holds or one taken in the same round trip.
    #[tracing::instrument(name = "db.enter", skip_all)]
    pub async fn enter(
        pool: &PgPool,
        limiter: &RateLimiter,
        caller: &Caller,
        workspace: Uuid,
        project: Option<Uuid>,
        cost: Cost,
    ) -> Result<(Self, Entry), ApiError> {
        let scope = Scope { workspace, project, cost };
        let (tx, entry) = Self::open(pool, Some(limiter), caller, Some(scope)).await?;
        let entry = entry.ok_or_else(|| ApiError::Internal("the first statement answered no access row".into()))?;
        Ok((tx, entry))
    }

    /// Opens the transaction; with a `limiter`, the request is counted (unless its scope says a
    /// first transaction already was).
    async fn open(
        pool: &PgPool,
        limiter: Option<&RateLimiter>,
        caller: &Caller,
        scope: Option<Scope>,
    ) -> Result<(Self, Option<Entry>), ApiError> {
        let limiter = limiter.filter(|_| scope.is_none_or(|scope| scope.cost != Cost::AlreadyCounted));
        let mut asking = match limiter {
            None => None,
            Some(limiter) => match limiter.take(lease_scope(caller, scope.as_ref())).await {
                Ticket::Spent(quotas) => {
                    crate::context::record_quotas(quotas);
                    None
                }
                Ticket::Ask(asking) => Some(asking),
            },
        };
        let request_id = crate::context::current_request_id();
        // A pooled connection can have died while idle (the database restarted or failed over):
        // the opening is sent again on another one, until the pool has replaced every dead
        // connection it held. A lost connection's transaction is rolled back by the server, so
        // only a lease taken just before the break can be taken twice (and its tokens lost).
        let mut attempts = pool.options().get_max_connections() + 1;
        loop {
            let lease = asking.as_ref().map(|a| opening::LeaseAsked { returned: a.returned, most: a.most });
            let batch = opening::batch(caller, scope.as_ref(), lease, request_id.as_deref());
            // Held by the transaction before BEGIN is sent: if this future is dropped or the
            // batch fails, the drop below rolls back whatever was opened.
            let mut tx = Self { conn: Some(pool.acquire().await?) };
            match sqlx::raw_sql(sqlx::AssertSqlSafe(batch.as_str())).fetch_all(&mut *tx).await {
                Ok(rows) => {
                    let opened = opening::interpret(&rows)?;
                    // The lease is kept first, whatever the answer: a request refused for its
                    // key still leaves the tokens leased for it to the instance.
                    let retry_after = match (asking, opened.lease) {
                        (Some(asking), Some(lease)) => {
                            crate::context::record_quotas(asking.settle(lease.granted, &lease.quotas));
                            lease.retry_after
                        }
                        _ => None,
                    };
                    // A key that no longer works is refused as such, before any rate limit.
                    let entry = opened.entry?;
                    if let Some(retry_after) = retry_after {
                        return Err(opening::rate_limited(retry_after));
                    }
                    return Ok((tx, entry));
                }
                Err(error) if attempts > 1 && crate::error::is_connection_lost(&error) => {
                    attempts -= 1;
                    tracing::info!(%error, "the pooled connection was lost; opening the request on another");
                    if let Some(asking) = asking.as_mut() {
                        asking.forget_returned();
                    }
                    if let Some(mut conn) = tx.conn.take() {
                        conn.close_on_drop();
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    pub async fn commit(mut self) -> Result<(), ApiError> {
        let committed = sqlx::raw_sql("COMMIT").execute(&mut *self).await;
        // Committed or failed, the transaction is over (a failed COMMIT rolls back); the
        // connection goes back to the pool as it is.
        self.conn.take();
        committed.map(|_| ()).map_err(ApiError::from)
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                        tracing::warn!(%error, "rollback failed; closing the connection");
                        conn.close_on_drop();
                    }
                });
            }
            // No runtime to roll back on: the connection is closed, which ends the transaction.
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// Whose rate limits a request spends: a key's, or a person's in the workspace (or outside any).
fn lease_scope(caller: &Caller, scope: Option<&Scope>) -> LeaseScope {
    LeaseScope {
        user: caller.user_id,
        key: caller.api_key.as_ref().map(|key| (key.id, key.secret_hash)),
        workspace: scope.map(|scope| scope.workspace),
        expensive: scope.is_some_and(|scope| scope.cost == Cost::Expensive),
    }
}

const HELD: &str = "a TenantTx holds its connection until commit or drop";

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect(HELD)
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect(HELD)
    }
}

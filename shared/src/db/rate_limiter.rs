//! Rate limits by lease: the instance's share of the buckets in PostgreSQL.
//!
//! The buckets in the database are the truth every instance shares, but writing to one on every
//! request cost about as much as the request's page. So an instance (a Lambda execution
//! environment; the local stack process) takes several tokens at once
//! (`app.lease_rate_limit`, in the request's opening batch) and spends them in memory; a request
//! that finds a token here opens its transaction without touching a bucket. A lease lives a few
//! seconds; its unspent tokens go back to the buckets with the next lease of the same caller.
//!
//! One caller's leases are taken one at a time per instance (the others wait for it and spend
//! what it brought), so an instance refuses only when the database has nothing left for it and
//! it holds nothing itself: through one instance, N + k requests at a limit of N admit exactly N.
//! Across instances the limit still holds; a caller may be refused early by at most the tokens
//! other instances hold at that moment (each lease a tenth of what was left, at most
//! [`MOST_PER_LEASE`], one near the limit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::context::Quota;

/// The most tokens one lease takes.
pub const MOST_PER_LEASE: u32 = 32;
/// How long an instance may spend a lease's tokens.
pub const LEASE_LIFETIME: Duration = Duration::from_secs(5);
/// Past this many callers, the ones whose leases are over are forgotten.
const CALLERS_REMEMBERED: usize = 4096;

/// Whose budget a request spends: the same scope always maps to the same buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseScope {
    pub user: Uuid,
    /// A key's id and the hash of the secret presented with it: a wrong secret never spends the
    /// key's tokens (the database leases nothing to it).
    pub key: Option<(Uuid, [u8; 32])>,
    pub workspace: Option<Uuid>,
    pub expensive: bool,
}

/// One instance's leases, shared by every request it serves.
pub struct RateLimiter {
    callers: Mutex<HashMap<LeaseScope, Arc<AsyncMutex<Option<Lease>>>>>,
    most: u32,
    lifetime: Duration,
}

struct Lease {
    /// Tokens not spent yet.
    tokens: u32,
    taken_at: Instant,
    /// The buckets as the lease left them.
    quotas: Vec<Quota>,
}

impl Lease {
    fn live(&self, now: Instant, lifetime: Duration) -> bool {
        now.duration_since(self.taken_at) < lifetime
    }

    /// The buckets as this caller sees them: what the database had left, and what the lease
    /// still holds.
    fn quotas(&self, now: Instant) -> Vec<Quota> {
        let elapsed = u32::try_from(now.duration_since(self.taken_at).as_secs()).unwrap_or(u32::MAX);
        self.quotas
            .iter()
            .map(|q| Quota {
                policy: q.policy.clone(),
                quota: q.quota,
                remaining: q.remaining.saturating_add(self.tokens).min(q.quota),
                reset: q.reset.saturating_sub(elapsed),
            })
            .collect()
    }
}

/// What a request gets from its instance's leases.
pub enum Ticket {
    /// A token spent from a live lease; the request's limits as they stand.
    Spent(Vec<Quota>),
    /// None here: the database is asked for a lease (handing back `returned`, taking at most
    /// `most`), and the answer settled with [`Asking::settle`]. The caller's other requests wait.
    Ask(Asking),
}

/// A lease being asked for; dropping it unsettled (the opening failed) forgets the tokens it
/// would have handed back, which only ever makes the limit stricter for a while.
pub struct Asking {
    lease: OwnedMutexGuard<Option<Lease>>,
    pub returned: u32,
    pub most: u32,
}

impl Asking {
    /// Keeps what the database granted (one token is this request's) and answers the request's
    /// limits. Nothing granted (refused, or a caller who is not counted) keeps nothing.
    pub fn settle(mut self, granted: u32, quotas: &[Quota]) -> Vec<Quota> {
        if granted == 0 {
            return quotas.to_vec();
        }
        let lease = Lease { tokens: granted - 1, taken_at: Instant::now(), quotas: quotas.to_vec() };
        let answered = lease.quotas(lease.taken_at);
        *self.lease = Some(lease);
        answered
    }

    /// Hands back nothing: the tokens were already sent in an opening whose fate is unknown (a
    /// lost connection), and handing them back twice would let more through than the limit.
    pub fn forget_returned(&mut self) {
        self.returned = 0;
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(MOST_PER_LEASE, LEASE_LIFETIME)
    }
}

impl RateLimiter {
    /// Leases of at most `most` tokens (one counts every request in the database), spent for at
    /// most `lifetime`.
    pub fn new(most: u32, lifetime: Duration) -> Self {
        Self { callers: Mutex::new(HashMap::new()), most: most.max(1), lifetime }
    }

    /// Spends a token of the caller's live lease, or answers that the database must be asked.
    pub async fn take(&self, scope: LeaseScope) -> Ticket {
        let caller = self.caller(scope);
        let mut lease = caller.lock_owned().await;
        let now = Instant::now();
        if let Some(held) = lease.as_mut().filter(|l| l.tokens > 0 && l.live(now, self.lifetime)) {
            held.tokens -= 1;
            return Ticket::Spent(held.quotas(now));
        }
        let returned = lease.take().map_or(0, |over| over.tokens);
        Ticket::Ask(Asking { lease, returned, most: self.most })
    }

    /// The tokens this instance holds in live leases: what another instance's callers can be
    /// refused early by.
    pub fn held(&self) -> u32 {
        let now = Instant::now();
        let callers = self.callers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        callers
            .values()
            .filter_map(|caller| {
                caller.try_lock().ok().and_then(|l| l.as_ref().map(|l| (l.live(now, self.lifetime), l.tokens)))
            })
            .filter_map(|(live, tokens)| live.then_some(tokens))
            .sum()
    }

    fn caller(&self, scope: LeaseScope) -> Arc<AsyncMutex<Option<Lease>>> {
        let mut callers = self.callers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if callers.len() >= CALLERS_REMEMBERED && !callers.contains_key(&scope) {
            let now = Instant::now();
            // A lease in use, or still live, is kept; the tokens of one forgotten are not handed
            // back, and come back to the bucket as it refills.
            callers.retain(|_, caller| {
                caller.try_lock().map_or(true, |l| l.as_ref().is_some_and(|l| l.live(now, self.lifetime)))
            });
        }
        callers.entry(scope).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> LeaseScope {
        LeaseScope { user: Uuid::now_v7(), key: None, workspace: Some(Uuid::now_v7()), expensive: false }
    }

    fn quota(remaining: u32) -> Vec<Quota> {
        vec![Quota { policy: "workspace".into(), quota: 300, remaining, reset: 9 }]
    }

    fn asking(ticket: Ticket) -> Asking {
        match ticket {
            Ticket::Ask(asking) => asking,
            Ticket::Spent(_) => panic!("spent from a lease where none was"),
        }
    }

    #[tokio::test]
    async fn a_lease_is_spent_one_token_per_request_then_asked_for_again() {
        let limiter = RateLimiter::default();
        let caller = scope();
        let first = asking(limiter.take(caller).await);
        assert_eq!((first.returned, first.most), (0, MOST_PER_LEASE));
        assert_eq!(first.settle(3, &quota(200))[0].remaining, 202, "the two tokens held count as left");
        assert_eq!(limiter.held(), 2);
        for left in [201, 200] {
            match limiter.take(caller).await {
                Ticket::Spent(quotas) => assert_eq!(quotas[0].remaining, left),
                Ticket::Ask(_) => panic!("the lease had tokens"),
            }
        }
        assert_eq!(asking(limiter.take(caller).await).returned, 0, "a spent lease hands nothing back");
        assert!(matches!(limiter.take(scope()).await, Ticket::Ask(_)), "another caller has no lease");
    }

    #[tokio::test]
    async fn an_expired_lease_hands_its_tokens_back_with_the_next() {
        let limiter = RateLimiter::new(8, Duration::from_millis(20));
        let caller = scope();
        asking(limiter.take(caller).await).settle(8, &quota(100));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(limiter.held(), 0, "an expired lease holds nothing");
        let next = asking(limiter.take(caller).await);
        assert_eq!(next.returned, 7);
        next.settle(0, &quota(0));
        assert_eq!(asking(limiter.take(caller).await).returned, 0, "handed back once");
    }

    #[tokio::test]
    async fn a_callers_concurrent_requests_wait_for_one_lease_and_spend_it() {
        let limiter = Arc::new(RateLimiter::default());
        let caller = scope();
        let first = asking(limiter.take(caller).await);
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { matches!(limiter.take(caller).await, Ticket::Spent(_)) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "the second request waits while the lease is asked for");
        first.settle(2, &quota(50));
        assert!(waiting.await.unwrap(), "and spends what the first brought");
    }
}

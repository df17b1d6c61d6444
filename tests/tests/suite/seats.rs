//! Seats, against the local Stripe: a per-seat plan is bought for the workspace's billable seats
//! (members and pending member invitations), and its quantity follows every change through the
//! billing queue, converging on the right count however the changes and the syncs interleave.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use futures::future::join_all;
use integration_tests::stripe::{LocalBilling, local_stripe_events as events};
use integration_tests::{TestUser, billing_queue, owner_pool};
use serde_json::{Value, json};
use uuid::Uuid;

/// The local billing setup, with the billing queue the frequent pass fills.
struct Seats {
    billing: LocalBilling,
    queue: shared::queue::Queue,
}

impl std::ops::Deref for Seats {
    type Target = LocalBilling;
    fn deref(&self) -> &LocalBilling {
        &self.billing
    }
}

impl Seats {
    async fn new(label: &str) -> Self {
        Self { billing: LocalBilling::start(label).await, queue: billing_queue().await }
    }

    /// The frequent pass and the billing worker, until no seat sync is pending.
    async fn sync_until_settled(&self) {
        for _ in 0..20 {
            self.worker.enqueue_seat_syncs(&self.queue).await.unwrap();
            let drained =
                self.queue.drain_once(0, |event| billing_worker::handle_batch(&self.worker, event)).await.unwrap();
            assert_eq!(drained.failed, 0);
            if drained.received == 0 && !self.pending().await {
                return;
            }
        }
        panic!("seat syncs did not settle");
    }

    async fn pending(&self) -> bool {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM seat_syncs WHERE workspace_id = $1 AND wanted_version > synced_version)",
        )
        .bind(self.ws)
        .fetch_one(&owner_pool().await)
        .await
        .unwrap()
    }

    /// The subscription as the local Stripe holds it.
    async fn in_stripe(&self) -> Value {
        let url = format!("{}/v1/subscriptions/{}", self.base, self.subscription_id().await);
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    async fn add_member(&self, user: &TestUser) {
        self.app.add_member(&self.owner, self.ws, user, "member").await;
    }
}

fn quantity(subscription: &Value) -> i64 {
    subscription["items"]["data"][0]["quantity"].as_i64().unwrap()
}

#[tokio::test]
async fn a_per_seat_checkout_buys_every_billable_seat() {
    let t = Seats::new("seats-checkout").await;
    let member = t.app.user("seats-checkout-member").await;
    t.add_member(&member).await;
    let session = t.checkout("team").await;
    // The owner and the member.
    assert_eq!(session["seats"], 2, "{session}");
    t.apply_events().await;
    assert_eq!(quantity(&t.in_stripe().await), 2);
    let billing = t.billing().await;
    assert_eq!(billing["plan"], "team");
    assert_eq!(billing["seats"], json!({"purchased": 2, "billable": 2, "max": 200}), "{billing}");
    assert_eq!(billing["entitlements"]["limits"]["members"], 2, "the member limit is the purchased quantity");
    // Nothing to sync: the checkout bought the right count.
    assert!(!t.pending().await);

    // A plan that is not per seat has no seats, and its checkout buys one.
    let flat = Seats::new("seats-flat").await;
    let session = flat.checkout("pro").await;
    assert_eq!(session["seats"], Value::Null);
    assert_eq!(flat.billing().await["seats"], Value::Null);
}

#[tokio::test]
async fn the_quantity_converges_under_twenty_concurrent_member_changes() {
    let t = Seats::new("seats-converge").await;
    // On Pro first, with four members; the upgrade to Team is bought for every seat.
    t.checkout("pro").await;
    t.apply_events().await;
    let app = &t.app;
    let early: Vec<TestUser> =
        join_all((0..4).map(|i| async move { app.user(&format!("seats-early-{i}")).await })).await;
    for user in &early {
        t.add_member(user).await;
    }
    t.change_plan(json!({"plan": "team"})).await;
    assert_eq!(quantity(&t.in_stripe().await), 5, "the upgrade asks for the owner and four members");
    t.apply_events().await;
    assert_eq!(t.billing().await["seats"]["purchased"], 5);
    assert!(!t.pending().await, "nothing changed since the upgrade");

    // Twenty changes at once: twelve members added, five invited, three removed, while the
    // frequent pass and three billing workers keep syncing.
    let newcomers: Vec<TestUser> =
        join_all((0..12).map(|i| async move { app.user(&format!("seats-new-{i}")).await })).await;
    let (owner, ws) = (&t.owner, t.ws);
    let changes = async {
        // Each joins as people do: invited, then accepting.
        let adds = newcomers.iter().map(|user| {
            let path = format!("/v1/workspaces/{ws}/invitations");
            let body = json!({"email": user.email, "role": "member"});
            async move {
                let invited = app.post(owner, &path, body).await;
                if !invited.status.is_success() {
                    return invited.status;
                }
                let token = integration_tests::invitation_token(invited.id()).await;
                app.post(user, "/v1/invitations/accept", json!({"token": token})).await.status
            }
        });
        let invites = (0..5).map(|i| {
            let path = format!("/v1/workspaces/{ws}/invitations");
            let body =
                json!({"email": format!("seat-invite-{i}-{}@test.example", Uuid::new_v4().simple()), "role": "viewer"});
            async move { app.post(owner, &path, body).await.status }
        });
        let removals = early[..3].iter().map(|user| {
            let path = format!("/v1/workspaces/{ws}/members/{}", user.id);
            async move { app.delete(owner, &path).await.status }
        });
        let mut all: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = StatusCode> + Send + '_>>> = Vec::new();
        all.extend(adds.map(|f| Box::pin(f) as _));
        all.extend(invites.map(|f| Box::pin(f) as _));
        all.extend(removals.map(|f| Box::pin(f) as _));
        assert_eq!(all.len(), 20);
        join_all(all).await
    };
    let done = AtomicBool::new(false);
    let syncing = async {
        while !done.load(Ordering::SeqCst) {
            t.worker.enqueue_seat_syncs(&t.queue).await.unwrap();
            let drains = (0..3).map(|_| t.queue.drain_once(0, |event| billing_worker::handle_batch(&t.worker, event)));
            for drained in join_all(drains).await {
                assert_eq!(drained.unwrap().failed, 0);
            }
        }
    };
    let statuses = async {
        let statuses = changes.await;
        done.store(true, Ordering::SeqCst);
        statuses
    };
    let (statuses, ()) = tokio::join!(statuses, syncing);
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    t.sync_until_settled().await;

    // 1 owner + 4 early - 3 removed + 12 added + 5 invited.
    assert_eq!(quantity(&t.in_stripe().await), 19);
    t.apply_events().await;
    let billing = t.billing().await;
    assert_eq!(billing["seats"], json!({"purchased": 19, "billable": 19, "max": 200}), "{billing}");
    assert_eq!(billing["entitlements"]["limits"]["members"], 19);
    assert!(!t.pending().await, "the webhook's quantity is the count: no further sync");
    let pool = owner_pool().await;
    let trail: Vec<String> =
        sqlx::query_scalar("SELECT message FROM activity WHERE workspace_id = $1 AND message LIKE 'Seats changed%'")
            .bind(t.ws)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!trail.is_empty(), "seat changes are on the activity trail");

    // A redelivered sync (the worker stopped after Stripe answered, before it committed) sends
    // the same idempotency key: Stripe replays its answer and nothing changes twice.
    let before = events(&t.base).await.len();
    sqlx::query(
        "UPDATE seat_syncs SET wanted_version = wanted_version + 1, synced_quantity = 18 WHERE workspace_id = $1",
    )
    .bind(t.ws)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(t.worker.sync_seats(t.ws).await.unwrap(), billing_worker::SeatSync::Set { quantity: 19 });
    let after_first = events(&t.base).await.len();
    assert_eq!(after_first, before + 1, "one update in Stripe");
    // As if that commit had never happened.
    sqlx::query(
        "UPDATE seat_syncs SET synced_version = synced_version - 1, synced_quantity = 18 WHERE workspace_id = $1",
    )
    .bind(t.ws)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(t.worker.sync_seats(t.ws).await.unwrap(), billing_worker::SeatSync::Set { quantity: 19 });
    assert_eq!(events(&t.base).await.len(), after_first, "the replayed key changed nothing");
    t.apply_events().await;

    // An invitation that expires (no trigger sees it) releases its seat at the reconciliation.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query(
        "UPDATE invitations SET expires_at = now() - interval '1 second'
         WHERE id = (SELECT id FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL LIMIT 1)",
    )
    .bind(t.ws)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(!t.pending().await);
    let reconciler = integration_tests::reconciler(&t.base, &t.queue).await;
    let report = reconciler.run().await.unwrap();
    assert_eq!(report.seats_to_sync, vec![t.ws]);
    t.sync_until_settled().await;
    assert_eq!(quantity(&t.in_stripe().await), 18);
}

#[tokio::test]
async fn a_sync_for_a_workspace_that_left_the_per_seat_plan_sends_nothing() {
    let t = Seats::new("seats-left").await;
    t.checkout("team").await;
    t.apply_events().await;
    let member = t.app.user("seats-left-member").await;
    t.add_member(&member).await;
    assert!(t.pending().await, "a member added on Team asks for a sync");
    // Before the sync runs, the workspace moves to Studio (flat): the sync sends nothing.
    t.change_plan(json!({"plan": "studio"})).await;
    t.apply_events().await;
    let before = events(&t.base).await.len();
    assert_eq!(t.worker.sync_seats(t.ws).await.unwrap(), billing_worker::SeatSync::NotPerSeat);
    assert_eq!(events(&t.base).await.len(), before);
    assert_eq!(quantity(&t.in_stripe().await), 1, "a flat plan is bought once");
    // Portal invitations take no seat; nothing is asked on a flat plan either way.
    assert!(!t.pending().await);
}

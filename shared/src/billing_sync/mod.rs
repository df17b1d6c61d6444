//! Syncing Stripe's billing state into the database: the billing worker applies webhook events
//! with it (reading each subscription's current state from Stripe), and reconciliation repairs
//! missed events and drifted state through the same path.

pub mod apply;
pub mod cancellations;
pub mod event;
pub mod reconcile;
pub mod seats;
mod setup;
pub mod stripe_state;

pub use apply::{ApplyError, Cause, Difference, Outcome, Synced, Worker};
pub use cancellations::CancellationReport;
pub use reconcile::{Drift, ReconcileReport, Reconciliation, Repair};
pub use seats::{SeatSync, SeatSyncMessage};
pub use setup::SetupError;
pub use stripe_state::{StripeReadError, StripeState};

/// The event types the worker acts on; reconciliation replays exactly these.
pub const HANDLED_EVENT_TYPES: [&str; 11] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.deleted",
    "customer.subscription.pending_update_applied",
];

-- Billing truth comes from Stripe's current state, not from an event's snapshot: the worker
-- treats an event as a signal, reads the subscription from Stripe and stores that.

-- The event that last caused a sync is kept for the trail, but it no longer orders anything, and
-- a row repaired by reconciliation has no event at all.
ALTER TABLE subscriptions ALTER COLUMN last_event_created DROP NOT NULL;
ALTER TABLE subscriptions ALTER COLUMN last_event_id DROP NOT NULL;
COMMENT ON COLUMN subscriptions.last_event_id IS 'the Stripe event that last caused a sync (NULL: reconciliation)';
-- When Stripe created the subscription: between two subscriptions of one workspace in the same
-- state of life, the newer one is the workspace's.
ALTER TABLE subscriptions ADD COLUMN stripe_created timestamptz;
-- When this row last matched Stripe's state.
ALTER TABLE subscriptions ADD COLUMN synced_at timestamptz NOT NULL DEFAULT now();

-- Events that named no workspace we knew are kept with their customer, and applied once that
-- customer is linked (by the next event for it, or by reconciliation).
ALTER TABLE stripe_events ADD COLUMN stripe_customer_id text;
CREATE INDEX stripe_events_unlinked_idx ON stripe_events (stripe_customer_id, created) WHERE outcome = 'unlinked';

-- Deleting a workspace ends its Stripe subscription. The delete itself cannot call Stripe (the
-- API functions link no Stripe code, and a transaction must not wait on it), so a trigger that
-- no delete path can skip records the cancellation in the same transaction, and the billing
-- reconciliation's frequent pass sends it to Stripe (an outbox).
CREATE TABLE subscription_cancellations (
    stripe_subscription_id text PRIMARY KEY,
    -- The deleted workspace: kept for the record, no longer a foreign key.
    workspace_id           uuid NOT NULL,
    stripe_customer_id     text NOT NULL,
    reason                 text NOT NULL,
    requested_at           timestamptz NOT NULL DEFAULT now(),
    canceled_at            timestamptz,
    attempts               integer NOT NULL DEFAULT 0,
    last_error             text
);
CREATE INDEX subscription_cancellations_pending_idx ON subscription_cancellations (requested_at)
    WHERE canceled_at IS NULL;
CREATE INDEX subscription_cancellations_workspace_idx ON subscription_cancellations (workspace_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON subscription_cancellations TO app_service;
GRANT SELECT, UPDATE (canceled_at, attempts, last_error) ON subscription_cancellations TO app_billing;
ALTER TABLE subscription_cancellations ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscription_cancellations FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON subscription_cancellations TO app_service USING (true) WITH CHECK (true);
CREATE POLICY billing_all ON subscription_cancellations TO app_billing USING (true) WITH CHECK (true);

CREATE FUNCTION app.cancel_subscription_with_workspace() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    INSERT INTO public.subscription_cancellations (stripe_subscription_id, workspace_id, stripe_customer_id, reason)
    SELECT s.stripe_subscription_id, s.workspace_id, s.stripe_customer_id, 'workspace deleted'
    FROM public.subscriptions s
    WHERE s.workspace_id = OLD.id AND s.status NOT IN ('canceled', 'incomplete_expired')
    ON CONFLICT (stripe_subscription_id) DO NOTHING;
    RETURN OLD;
END
$$;
REVOKE EXECUTE ON FUNCTION app.cancel_subscription_with_workspace() FROM PUBLIC;
ALTER FUNCTION app.cancel_subscription_with_workspace() OWNER TO app_service;
CREATE TRIGGER workspaces_cancel_subscription BEFORE DELETE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION app.cancel_subscription_with_workspace();

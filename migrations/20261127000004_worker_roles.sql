-- One database role per worker, each with only the tables it works on, so a bug or a
-- compromised dependency in one worker cannot read what it has no business with (the billing
-- worker never sees a comment; the usage worker never sees a subscription). app_service keeps
-- its reach for the local tools and owns the policy helpers, as before; no worker uses it.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_billing NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE app_usage NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE app_sweeper NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_billing, app_usage, app_sweeper;

-- billing-worker and billing-reconcile: subscriptions and their events, the workspace's Stripe
-- customer (and the row lock that serializes a workspace's billing), checkout sessions (marked
-- used), the trails (appended to), the plan catalog and the entitlement it derives.
GRANT SELECT, UPDATE (stripe_customer_id) ON workspaces TO app_billing;
GRANT SELECT, INSERT, UPDATE ON subscriptions, stripe_events TO app_billing;
GRANT SELECT, UPDATE (completed_at) ON checkout_sessions TO app_billing;
GRANT INSERT ON audit_log, activity TO app_billing;
GRANT SELECT ON plans TO app_billing;
GRANT EXECUTE ON FUNCTION app.effective_plan(uuid) TO app_billing;
CREATE POLICY billing_all ON workspaces TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY billing_all ON subscriptions TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY billing_all ON stripe_events TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY billing_all ON checkout_sessions TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY billing_append ON audit_log FOR INSERT TO app_billing WITH CHECK (true);
CREATE POLICY billing_append ON activity FOR INSERT TO app_billing WITH CHECK (true);
CREATE POLICY billing_read ON plans FOR SELECT TO app_billing USING (true);

-- usage-worker: usage records (marked reported) and the workspace's Stripe customer.
GRANT SELECT, UPDATE (reported_at, stripe_customer_id) ON usage_records TO app_usage;
GRANT SELECT ON workspaces TO app_usage;
CREATE POLICY usage_all ON usage_records TO app_usage USING (true) WITH CHECK (true);
CREATE POLICY usage_read ON workspaces FOR SELECT TO app_usage USING (true);

-- ai-sweeper: abandoned runs (failed), their quota reservations (released), unreported usage
-- (re-enqueued), and which workspaces have a Stripe customer.
GRANT SELECT, UPDATE (status, finished_at, error) ON ai_runs TO app_sweeper;
GRANT SELECT, UPDATE (reserved) ON ai_quota_usage TO app_sweeper;
GRANT SELECT, UPDATE (enqueued_at) ON usage_records TO app_sweeper;
GRANT SELECT ON workspaces TO app_sweeper;
CREATE POLICY sweeper_all ON ai_runs TO app_sweeper USING (true) WITH CHECK (true);
CREATE POLICY sweeper_all ON ai_quota_usage TO app_sweeper USING (true) WITH CHECK (true);
CREATE POLICY sweeper_all ON usage_records TO app_sweeper USING (true) WITH CHECK (true);
CREATE POLICY sweeper_read ON workspaces FOR SELECT TO app_sweeper USING (true);

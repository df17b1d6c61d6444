-- Billing: plans and their limits, the Stripe customer of a workspace, its synced subscription,
-- the Stripe events applied, and the audit and activity trails of plan changes.

-- Plan limits live here so the database can enforce them; shared/src/plans.rs holds the same
-- catalog (features, Stripe lookup keys) and a test keeps the two in step. NULL = unlimited.
CREATE TABLE plans (
    id                text PRIMARY KEY,
    max_projects      integer,
    max_members       integer,
    ai_runs_per_month integer NOT NULL
);
INSERT INTO plans (id, max_projects, max_members, ai_runs_per_month) VALUES
    ('free', 3, 2, 0),
    ('pro', 50, 10, 500),
    ('studio', NULL, 50, 5000);

ALTER TABLE workspaces ADD COLUMN stripe_customer_id text;
ALTER TABLE workspaces ADD CONSTRAINT workspaces_stripe_customer_key UNIQUE (stripe_customer_id);

-- The workspace's Stripe subscription as the webhooks last described it. `status` is Stripe's
-- text, kept as is so a status added by a newer API version is stored (and grants nothing).
CREATE TABLE subscriptions (
    workspace_id           uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    stripe_subscription_id text NOT NULL,
    stripe_customer_id     text NOT NULL,
    plan_id                text NOT NULL REFERENCES plans (id),
    status                 text NOT NULL,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean NOT NULL DEFAULT false,
    -- Until when a past_due subscription keeps its plan (set by the worker from its grace period).
    grace_until            timestamptz,
    -- The newest Stripe event applied to this row: (created, id) orders events, so deliveries
    -- in any order converge on the state of the newest event.
    last_event_created     timestamptz NOT NULL,
    last_event_id          text NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_stripe_subscription_key UNIQUE (stripe_subscription_id)
);
CREATE INDEX subscriptions_customer_idx ON subscriptions (stripe_customer_id);

-- Every Stripe event the worker has seen. Recorded in the transaction that applies it, so a
-- redelivered event finds its id here and changes nothing. Not tenant data: service role only.
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    created      timestamptz NOT NULL,
    workspace_id uuid REFERENCES workspaces (id) ON DELETE SET NULL,
    outcome      text NOT NULL,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_workspace_idx ON stripe_events (workspace_id);

CREATE TABLE audit_log (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    actor        text NOT NULL,
    action       text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_workspace_idx ON audit_log (workspace_id, created_at DESC);

CREATE TABLE activity (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    message      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_workspace_idx ON activity (workspace_id, created_at DESC);

GRANT SELECT ON plans, subscriptions, audit_log, activity TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON plans, subscriptions, stripe_events, audit_log, activity TO app_service;

-- The plan a workspace is entitled to now: its subscription's plan while active or trialing,
-- or past_due within the grace period; otherwise free.
CREATE FUNCTION app.effective_plan(p_workspace uuid) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT coalesce((
        SELECT s.plan_id FROM public.subscriptions s
        WHERE s.workspace_id = p_workspace
          AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND s.grace_until > now()))
    ), 'free')
$$;

-- Plan limits, enforced at insert. The workspace row is locked first (NO KEY UPDATE, which does
-- not block foreign-key checks), so concurrent inserts are counted one after another and a
-- limit of N admits exactly N rows.
CREATE FUNCTION app.enforce_plan_limit() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    plan text;
    allowed integer;
    used bigint;
BEGIN
    PERFORM 1 FROM public.workspaces w WHERE w.id = NEW.workspace_id FOR NO KEY UPDATE;
    plan := app.effective_plan(NEW.workspace_id);
    IF TG_TABLE_NAME = 'projects' THEN
        SELECT p.max_projects INTO allowed FROM public.plans p WHERE p.id = plan;
        SELECT count(*) INTO used FROM public.projects x WHERE x.workspace_id = NEW.workspace_id;
        IF allowed IS NOT NULL AND used >= allowed THEN
            RAISE EXCEPTION 'the % plan allows % projects', plan, allowed
                USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_projects';
        END IF;
    ELSE
        SELECT p.max_members INTO allowed FROM public.plans p WHERE p.id = plan;
        SELECT count(*) INTO used FROM public.workspace_members x WHERE x.workspace_id = NEW.workspace_id;
        IF allowed IS NOT NULL AND used >= allowed THEN
            RAISE EXCEPTION 'the % plan allows % members', plan, allowed
                USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_members';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER projects_plan_limit BEFORE INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION app.enforce_plan_limit();
CREATE TRIGGER workspace_members_plan_limit BEFORE INSERT ON workspace_members
    FOR EACH ROW EXECUTE FUNCTION app.enforce_plan_limit();

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.effective_plan(uuid) TO app_api, app_service;
ALTER FUNCTION app.effective_plan(uuid) OWNER TO app_service;
ALTER FUNCTION app.enforce_plan_limit() OWNER TO app_service;

ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE plans FORCE ROW LEVEL SECURITY;
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
ALTER TABLE stripe_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE stripe_events FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
ALTER TABLE activity ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity FORCE ROW LEVEL SECURITY;

CREATE POLICY plans_read ON plans FOR SELECT TO app_api USING (true);
CREATE POLICY service_all ON plans TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON subscriptions TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON stripe_events TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON audit_log TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON activity TO app_service USING (true) WITH CHECK (true);

-- Members of a workspace read its billing state and trails; only workers write them.
CREATE POLICY subscriptions_select ON subscriptions FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));
CREATE POLICY audit_log_select ON audit_log FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY activity_select ON activity FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));

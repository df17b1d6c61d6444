-- Baseline 3/7: what a workspace pays for and what that allows. The plan catalog, entitlement
-- overrides, the Stripe subscription as last synced, open Checkout Sessions, the Stripe events
-- applied, and two outboxes the billing worker drains: cancellations owed to Stripe and seat
-- counts to sync.
--
-- The rules (which plan is in force, which override, which limit, whether a feature is on) are
-- one-row SQL table functions that PostgreSQL inlines into the statement reading them, so the
-- request opening and the rate limiter pay an index probe for them, not a nested call. The
-- projects and members limits are enforced here, by triggers, under the workspace row's lock.
-- docs/billing.md has the lifecycle.

-- The SQL bodies of billable_seats read tables of later files:
-- PostgreSQL checks them when they are first called instead of here.
SET LOCAL check_function_bodies = off;

-- Tables

-- Plan limits live here so the database can enforce them; shared/src/plans.rs holds the same
-- catalog (features, Stripe lookup keys) and a test keeps the two in step. NULL = unlimited.
CREATE TABLE public.plans (
    id text NOT NULL,
    max_projects integer,
    max_members integer,
    ai_runs_per_month integer NOT NULL,
    requests_per_minute integer DEFAULT 300 NOT NULL,
    expensive_per_minute integer DEFAULT 20 NOT NULL,
    per_seat boolean DEFAULT false NOT NULL,
    ai_tools boolean DEFAULT false NOT NULL,
    client_portal boolean DEFAULT false NOT NULL,
    api_access boolean DEFAULT false NOT NULL,
    webhooks boolean DEFAULT false NOT NULL,
    CONSTRAINT plans_pkey PRIMARY KEY (id)
);

INSERT INTO public.plans (id, max_projects, max_members, ai_runs_per_month, requests_per_minute, expensive_per_minute, per_seat, ai_tools, client_portal, api_access, webhooks) VALUES
    ('free', 3, 2, 0, 300, 20, false, false, false, false, false),
    ('pro', 50, 10, 500, 1200, 60, false, true, true, false, true),
    ('studio', NULL, 50, 5000, 6000, 300, false, true, true, true, true),
    ('team', NULL, 200, 2000, 3000, 150, true, true, true, true, true);

-- The workspace's Stripe subscription as the webhooks last described it. `status` is Stripe's
-- text, kept as is so a status added by a newer API version is stored (and grants nothing).
CREATE TABLE public.subscriptions (
    workspace_id uuid NOT NULL,
    stripe_subscription_id text NOT NULL,
    stripe_customer_id text NOT NULL,
    plan_id text NOT NULL,
    status text NOT NULL,
    current_period_end timestamp with time zone,
    cancel_at_period_end boolean DEFAULT false NOT NULL,
    grace_until timestamp with time zone,
    last_event_created timestamp with time zone,
    last_event_id text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    stripe_created timestamp with time zone,
    synced_at timestamp with time zone DEFAULT now() NOT NULL,
    monthly_amount bigint,
    currency text,
    trial_end timestamp with time zone,
    stripe_item_id text,
    quantity integer,
    CONSTRAINT subscriptions_pkey PRIMARY KEY (workspace_id),
    CONSTRAINT subscriptions_stripe_subscription_key UNIQUE (stripe_subscription_id),
    CONSTRAINT subscriptions_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.plans(id),
    CONSTRAINT subscriptions_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
COMMENT ON COLUMN public.subscriptions.last_event_id IS 'the Stripe event that last caused a sync (NULL: reconciliation)';
COMMENT ON COLUMN public.subscriptions.monthly_amount IS 'sum of the items'' unit_amount x quantity, per month (yearly / 12, ...); NULL if Stripe did not say';
CREATE INDEX subscriptions_customer_idx ON public.subscriptions USING btree (stripe_customer_id);

-- Every Stripe event the worker has seen. Recorded in the transaction that applies it, so a
-- redelivered event finds its id here and changes nothing. Not tenant data: service role only.
CREATE TABLE public.stripe_events (
    id text NOT NULL,
    type text NOT NULL,
    created timestamp with time zone NOT NULL,
    workspace_id uuid,
    outcome text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    stripe_customer_id text,
    CONSTRAINT stripe_events_pkey PRIMARY KEY (id),
    CONSTRAINT stripe_events_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE SET NULL
);
CREATE INDEX stripe_events_unlinked_idx ON public.stripe_events USING btree (stripe_customer_id, created) WHERE (outcome = 'unlinked'::text);
CREATE INDEX stripe_events_workspace_idx ON public.stripe_events USING btree (workspace_id);

-- Open Checkout Sessions, so concurrent checkouts of one workspace and plan converge on one
-- session (and one subscription) instead of each getting its own that could be paid.
CREATE TABLE public.checkout_sessions (
    stripe_session_id text NOT NULL,
    workspace_id uuid NOT NULL,
    plan_id text NOT NULL,
    url text NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    completed_at timestamp with time zone,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT checkout_sessions_pkey PRIMARY KEY (stripe_session_id),
    CONSTRAINT checkout_sessions_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT checkout_sessions_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.plans(id),
    CONSTRAINT checkout_sessions_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX checkout_sessions_open_idx ON public.checkout_sessions USING btree (workspace_id, plan_id, expires_at DESC) WHERE (completed_at IS NULL);

-- Deleting a workspace ends its Stripe subscription. The delete itself cannot call Stripe (the
-- API functions link no Stripe code, and a transaction must not wait on it), so a trigger that
-- no delete path can skip records the cancellation in the same transaction, and the billing
-- reconciliation's frequent pass sends it to Stripe (an outbox).
CREATE TABLE public.subscription_cancellations (
    stripe_subscription_id text NOT NULL,
    workspace_id uuid NOT NULL,
    stripe_customer_id text NOT NULL,
    reason text NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    canceled_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    CONSTRAINT subscription_cancellations_pkey PRIMARY KEY (stripe_subscription_id)
);
CREATE INDEX subscription_cancellations_pending_idx ON public.subscription_cancellations USING btree (requested_at) WHERE (canceled_at IS NULL);
CREATE INDEX subscription_cancellations_workspace_idx ON public.subscription_cancellations USING btree (workspace_id);

CREATE TABLE public.entitlement_overrides (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    entitlement text NOT NULL,
    value integer,
    reason text NOT NULL,
    granted_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    revoked_by text,
    revoke_reason text,
    CONSTRAINT entitlement_overrides_entitlement CHECK ((entitlement = ANY (ARRAY['projects'::text, 'members'::text, 'ai_runs_per_month'::text, 'requests_per_minute'::text, 'expensive_per_minute'::text, 'ai_tools'::text, 'client_portal'::text, 'api_access'::text, 'webhooks'::text]))),
    CONSTRAINT entitlement_overrides_reason_length CHECK (((char_length(reason) >= 3) AND (char_length(reason) <= 1000))),
    CONSTRAINT entitlement_overrides_revoke_reason_length CHECK ((char_length(revoke_reason) <= 1000)),
    CONSTRAINT entitlement_overrides_value CHECK (((value IS NULL) OR (value >= 0))),
    CONSTRAINT entitlement_overrides_value_kind CHECK (
CASE
    WHEN (entitlement = ANY (ARRAY['ai_tools'::text, 'client_portal'::text, 'api_access'::text, 'webhooks'::text])) THEN (value = ANY (ARRAY[0, 1]))
    WHEN (entitlement = ANY (ARRAY['requests_per_minute'::text, 'expensive_per_minute'::text])) THEN (value >= 1)
    WHEN (entitlement = 'ai_runs_per_month'::text) THEN (value IS NOT NULL)
    ELSE true
END),
    CONSTRAINT entitlement_overrides_pkey PRIMARY KEY (id),
    CONSTRAINT entitlement_overrides_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX entitlement_overrides_workspace_idx ON public.entitlement_overrides USING btree (workspace_id, entitlement, created_at DESC) WHERE (revoked_at IS NULL);

CREATE TABLE public.seat_syncs (
    workspace_id uuid NOT NULL,
    wanted_version bigint DEFAULT 1 NOT NULL,
    synced_version bigint DEFAULT 0 NOT NULL,
    synced_quantity integer,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    enqueued_at timestamp with time zone,
    synced_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    CONSTRAINT seat_syncs_pkey PRIMARY KEY (workspace_id),
    CONSTRAINT seat_syncs_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX seat_syncs_pending_idx ON public.seat_syncs USING btree (requested_at) WHERE (wanted_version > synced_version);

-- Functions

CREATE FUNCTION app.plan_in_force(p_workspace uuid) RETURNS TABLE(plan_id text)
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((
        SELECT s.plan_id FROM public.subscriptions s
        WHERE s.workspace_id = p_workspace
          AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND s.grace_until > pg_catalog.now()))
    ), 'free')
$$;
ALTER FUNCTION app.plan_in_force(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.plan_in_force(p_workspace uuid) FROM PUBLIC;

CREATE FUNCTION app.effective_plan(p_workspace uuid) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    RETURN (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f);
END
$$;
ALTER FUNCTION app.effective_plan(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.effective_plan(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.effective_plan(p_workspace uuid) TO app_api;
GRANT ALL ON FUNCTION app.effective_plan(p_workspace uuid) TO app_billing;
GRANT ALL ON FUNCTION app.effective_plan(p_workspace uuid) TO app_webhooks;
GRANT ALL ON FUNCTION app.effective_plan(p_workspace uuid) TO app_fanout;
GRANT ALL ON FUNCTION app.effective_plan(p_workspace uuid) TO app_admin;

CREATE FUNCTION app.override_in_force(p_workspace uuid, p_entitlement text) RETURNS TABLE(value integer)
    LANGUAGE sql STABLE
    AS $$
    SELECT x.value FROM public.entitlement_overrides x
    WHERE x.workspace_id = p_workspace AND x.entitlement = p_entitlement
      AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now()
    ORDER BY x.created_at DESC LIMIT 1
$$;
ALTER FUNCTION app.override_in_force(p_workspace uuid, p_entitlement text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.override_in_force(p_workspace uuid, p_entitlement text) FROM PUBLIC;

-- A limit in force: an override in force wins, even one without a value (no limit); otherwise
-- the plan's limit. Inlined like the rule it reads.
CREATE FUNCTION app.limit_in_force(p_workspace uuid, p_entitlement text, p_plan_limit integer) RETURNS TABLE(value integer)
    LANGUAGE sql STABLE
    AS $$
    SELECT CASE WHEN o.overridden THEN o.value ELSE p_plan_limit END
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (SELECT true AS overridden, x.value
                       FROM app.override_in_force(p_workspace, p_entitlement) x) o ON true
$$;
ALTER FUNCTION app.limit_in_force(p_workspace uuid, p_entitlement text, p_plan_limit integer) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.limit_in_force(p_workspace uuid, p_entitlement text, p_plan_limit integer) FROM PUBLIC;

CREATE FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer) RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    RETURN (SELECT l.value FROM app.limit_in_force(p_workspace, p_entitlement, p_plan_limit) l);
END
$$;
ALTER FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer) TO app_api;
GRANT ALL ON FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer) TO app_admin;

CREATE FUNCTION app.enforce_plan_limit() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    plan text;
    allowed integer;
    used bigint;
BEGIN
    IF TG_TABLE_NAME = 'invitations' THEN
        -- A portal invitation takes no seat. (NEW.role is read only here: projects have none.)
        IF NEW.client_id IS NOT NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    PERFORM 1 FROM public.workspaces w WHERE w.id = NEW.workspace_id FOR NO KEY UPDATE;
    plan := app.effective_plan(NEW.workspace_id);
    IF TG_TABLE_NAME = 'projects' THEN
        SELECT p.max_projects INTO allowed FROM public.plans p WHERE p.id = plan;
        allowed := app.effective_limit(NEW.workspace_id, 'projects', allowed);
        SELECT count(*) INTO used FROM public.projects x WHERE x.workspace_id = NEW.workspace_id;
        IF allowed IS NOT NULL AND used >= allowed THEN
            RAISE EXCEPTION 'the workspace may have % projects', allowed
                USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_projects';
        END IF;
    ELSE
        SELECT p.max_members INTO allowed FROM public.plans p WHERE p.id = plan;
        allowed := app.effective_limit(NEW.workspace_id, 'members', allowed);
        SELECT (SELECT count(*) FROM public.workspace_members x WHERE x.workspace_id = NEW.workspace_id)
             + (SELECT count(*) FROM public.invitations i
                WHERE i.workspace_id = NEW.workspace_id AND i.role IS NOT NULL
                  AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now())
        INTO used;
        IF allowed IS NOT NULL AND used >= allowed THEN
            RAISE EXCEPTION 'the workspace may have % members', allowed
                USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_members';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION app.enforce_plan_limit() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.enforce_plan_limit() FROM PUBLIC;

CREATE FUNCTION app.cancel_subscription_with_workspace() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
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
ALTER FUNCTION app.cancel_subscription_with_workspace() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.cancel_subscription_with_workspace() FROM PUBLIC;

-- Every entitlement's override in force, read through the same rule: the entitlements with an
-- unrevoked grant, each answered by `app.override_in_force` (an expired grant answers nothing).
CREATE FUNCTION app.overrides_in_force(p_workspace uuid) RETURNS TABLE(overrides jsonb)
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((
        SELECT pg_catalog.jsonb_object_agg(e.entitlement, o.value)
        FROM (SELECT DISTINCT x.entitlement FROM public.entitlement_overrides x
              WHERE x.workspace_id = p_workspace AND x.revoked_at IS NULL) e,
             LATERAL app.override_in_force(p_workspace, e.entitlement) o), '{}'::jsonb)
$$;
ALTER FUNCTION app.overrides_in_force(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.overrides_in_force(p_workspace uuid) FROM PUBLIC;

CREATE FUNCTION app.active_overrides(p_workspace uuid) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    RETURN (SELECT f.overrides FROM app.overrides_in_force(p_workspace) f);
END
$$;
ALTER FUNCTION app.active_overrides(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.active_overrides(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.active_overrides(p_workspace uuid) TO app_api;
GRANT ALL ON FUNCTION app.active_overrides(p_workspace uuid) TO app_admin;
GRANT ALL ON FUNCTION app.active_overrides(p_workspace uuid) TO app_webhooks;
GRANT ALL ON FUNCTION app.active_overrides(p_workspace uuid) TO app_fanout;

-- A workspace's billable seats: its members and its pending (unexpired) member invitations; at
-- least one, as a subscription's quantity must be. The definer's rights let the billing worker
-- count without reading members or invitations; the API asks through
-- app.workspace_billable_seats, for its caller's own workspaces only.
CREATE FUNCTION app.billable_seats(p_workspace uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT greatest(1, (
        (SELECT count(*) FROM public.workspace_members m WHERE m.workspace_id = p_workspace)
      + (SELECT count(*) FROM public.invitations i
         WHERE i.workspace_id = p_workspace AND i.role IS NOT NULL
           AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > pg_catalog.now())
    )::integer)
$$;
ALTER FUNCTION app.billable_seats(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.billable_seats(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.billable_seats(p_workspace uuid) TO app_billing;

-- The count for the API (checkout, plan changes, the billing summary, where members do not see
-- the invitations themselves): for the caller's own workspaces only, NULL for any other.
CREATE FUNCTION app.workspace_billable_seats(p_workspace uuid) RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member,viewer}')) THEN
        RETURN NULL;
    END IF;
    RETURN app.billable_seats(p_workspace);
END
$$;
ALTER FUNCTION app.workspace_billable_seats(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.workspace_billable_seats(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.workspace_billable_seats(p_workspace uuid) TO app_api;

-- Raises the wanted version of a workspace on a per-seat plan (a live subscription of one).
CREATE FUNCTION app.want_seat_sync(p_workspace uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    INSERT INTO public.seat_syncs AS s (workspace_id)
    SELECT sub.workspace_id
    FROM public.subscriptions sub
    JOIN public.plans p ON p.id = sub.plan_id
    -- The workspace itself may be going (a cascade from its deletion): nothing to sync then.
    JOIN public.workspaces w ON w.id = sub.workspace_id
    WHERE sub.workspace_id = p_workspace AND p.per_seat
      AND sub.status NOT IN ('canceled', 'incomplete_expired')
    ON CONFLICT (workspace_id) DO UPDATE
        SET wanted_version = s.wanted_version + 1, requested_at = pg_catalog.now();
END
$$;
ALTER FUNCTION app.want_seat_sync(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.want_seat_sync(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.want_seat_sync(p_workspace uuid) TO app_billing;

CREATE FUNCTION app.seats_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A portal invitation takes no seat.
        IF TG_TABLE_NAME = 'invitations' AND OLD.role IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM app.want_seat_sync(OLD.workspace_id);
    ELSE
        IF TG_TABLE_NAME = 'invitations' AND NEW.role IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM app.want_seat_sync(NEW.workspace_id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.seats_changed() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.seats_changed() FROM PUBLIC;

CREATE FUNCTION app.feature_in_force(p_workspace uuid, p_feature text) RETURNS TABLE(enabled boolean)
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(
        (SELECT coalesce(o.value, 0) > 0 FROM app.override_in_force(p_workspace, p_feature) o),
        (SELECT CASE p_feature WHEN 'ai_tools' THEN p.ai_tools WHEN 'client_portal' THEN p.client_portal
                               WHEN 'api_access' THEN p.api_access WHEN 'webhooks' THEN p.webhooks END
         FROM public.plans p WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f)),
        false)
$$;
ALTER FUNCTION app.feature_in_force(p_workspace uuid, p_feature text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.feature_in_force(p_workspace uuid, p_feature text) FROM PUBLIC;

-- Triggers

CREATE TRIGGER projects_plan_limit BEFORE INSERT ON public.projects FOR EACH ROW EXECUTE FUNCTION app.enforce_plan_limit();
CREATE TRIGGER workspace_members_plan_limit BEFORE INSERT ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION app.enforce_plan_limit();

CREATE TRIGGER workspace_members_seats AFTER INSERT OR DELETE ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION app.seats_changed();

CREATE TRIGGER workspaces_cancel_subscription BEFORE DELETE ON public.workspaces FOR EACH ROW EXECUTE FUNCTION app.cancel_subscription_with_workspace();

-- Row-level security, policies and grants

ALTER TABLE public.checkout_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.checkout_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_all ON public.checkout_sessions TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY checkout_sessions_insert ON public.checkout_sessions FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY checkout_sessions_select ON public.checkout_sessions FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.checkout_sessions TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT ON TABLE public.checkout_sessions TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.checkout_sessions TO app_service;
GRANT SELECT ON TABLE public.checkout_sessions TO app_billing;
GRANT SELECT ON TABLE public.checkout_sessions TO app_admin;
GRANT SELECT(stripe_session_id) ON TABLE public.checkout_sessions TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.checkout_sessions TO app_exporter;
GRANT SELECT(plan_id) ON TABLE public.checkout_sessions TO app_exporter;
GRANT SELECT(url) ON TABLE public.checkout_sessions TO app_exporter;
GRANT SELECT(expires_at) ON TABLE public.checkout_sessions TO app_exporter;
GRANT UPDATE(completed_at) ON TABLE public.checkout_sessions TO app_billing;
GRANT SELECT(completed_at) ON TABLE public.checkout_sessions TO app_exporter;
GRANT SELECT(created_by) ON TABLE public.checkout_sessions TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.checkout_sessions TO app_exporter;

ALTER TABLE public.seat_syncs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.seat_syncs FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_all ON public.seat_syncs TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.seat_syncs TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.seat_syncs TO app_service;
GRANT SELECT,INSERT ON TABLE public.seat_syncs TO app_billing;
GRANT SELECT ON TABLE public.seat_syncs TO app_admin;
GRANT SELECT ON TABLE public.seat_syncs TO app_exporter;
GRANT UPDATE(wanted_version) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(synced_version) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(synced_quantity) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(requested_at) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(enqueued_at) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(synced_at) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(attempts) ON TABLE public.seat_syncs TO app_billing;
GRANT UPDATE(last_error) ON TABLE public.seat_syncs TO app_billing;

ALTER TABLE public.stripe_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.stripe_events FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_all ON public.stripe_events TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.stripe_events TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.stripe_events TO app_service;
GRANT SELECT,INSERT,UPDATE ON TABLE public.stripe_events TO app_billing;
GRANT SELECT ON TABLE public.stripe_events TO app_admin;
GRANT SELECT(id) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(type) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(created) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(outcome) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(payload) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(received_at) ON TABLE public.stripe_events TO app_exporter;
GRANT SELECT(stripe_customer_id) ON TABLE public.stripe_events TO app_exporter;

ALTER TABLE public.subscription_cancellations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.subscription_cancellations FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_all ON public.subscription_cancellations TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.subscription_cancellations TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.subscription_cancellations TO app_service;
GRANT SELECT ON TABLE public.subscription_cancellations TO app_billing;
GRANT SELECT ON TABLE public.subscription_cancellations TO app_admin;
GRANT SELECT(stripe_subscription_id) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT SELECT(stripe_customer_id) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT SELECT(reason) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT SELECT(requested_at) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT UPDATE(canceled_at) ON TABLE public.subscription_cancellations TO app_billing;
GRANT SELECT(canceled_at) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT UPDATE(attempts) ON TABLE public.subscription_cancellations TO app_billing;
GRANT SELECT(attempts) ON TABLE public.subscription_cancellations TO app_exporter;
GRANT UPDATE(last_error) ON TABLE public.subscription_cancellations TO app_billing;
GRANT SELECT(last_error) ON TABLE public.subscription_cancellations TO app_exporter;

ALTER TABLE public.subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_all ON public.subscriptions TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.subscriptions TO app_service USING (true) WITH CHECK (true);
CREATE POLICY subscriptions_select ON public.subscriptions FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
GRANT SELECT ON TABLE public.subscriptions TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.subscriptions TO app_service;
GRANT SELECT,INSERT,UPDATE ON TABLE public.subscriptions TO app_billing;
GRANT SELECT ON TABLE public.subscriptions TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(stripe_subscription_id) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(stripe_customer_id) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(plan_id) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(status) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(current_period_end) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(cancel_at_period_end) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(grace_until) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(last_event_created) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(last_event_id) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(stripe_created) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(synced_at) ON TABLE public.subscriptions TO app_exporter;

ALTER TABLE public.plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.plans FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_read ON public.plans FOR SELECT TO app_billing USING (true);
CREATE POLICY plans_read ON public.plans FOR SELECT TO app_api USING (true);
CREATE POLICY service_all ON public.plans TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.plans TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.plans TO app_service;
GRANT SELECT ON TABLE public.plans TO app_billing;
GRANT SELECT ON TABLE public.plans TO app_admin;

ALTER TABLE public.entitlement_overrides ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.entitlement_overrides FORCE ROW LEVEL SECURITY;
CREATE POLICY members_read ON public.entitlement_overrides FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY service_all ON public.entitlement_overrides TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.entitlement_overrides TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.entitlement_overrides TO app_service;
GRANT SELECT,INSERT ON TABLE public.entitlement_overrides TO app_admin;
GRANT SELECT(id) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(entitlement) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(value) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(reason) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(granted_by) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT SELECT(expires_at) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT UPDATE(revoked_at) ON TABLE public.entitlement_overrides TO app_admin;
GRANT SELECT(revoked_at) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT UPDATE(revoked_by) ON TABLE public.entitlement_overrides TO app_admin;
GRANT SELECT(revoked_by) ON TABLE public.entitlement_overrides TO app_exporter;
GRANT UPDATE(revoke_reason) ON TABLE public.entitlement_overrides TO app_admin;
GRANT SELECT(revoke_reason) ON TABLE public.entitlement_overrides TO app_exporter;

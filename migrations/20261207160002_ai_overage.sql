-- AI runs beyond the quota, billed instead of refused, on plans that allow it: the database
-- decides, in the statement that reserves a run, whether it is one of the quota's (never billed)
-- or an overage run (billed through its own Stripe meter), and stops overage at the workspace's
-- spending cap.

-- Whether a plan admits runs past its quota (overridable like a feature: 1 on, 0 off).
ALTER TABLE public.plans ADD COLUMN ai_overage boolean DEFAULT false NOT NULL;
UPDATE public.plans SET ai_overage = (id <> 'free');

ALTER TABLE public.entitlement_overrides DROP CONSTRAINT entitlement_overrides_entitlement;
ALTER TABLE public.entitlement_overrides ADD CONSTRAINT entitlement_overrides_entitlement CHECK ((entitlement = ANY (ARRAY[
    'projects'::text, 'members'::text, 'ai_runs_per_month'::text, 'requests_per_minute'::text,
    'expensive_per_minute'::text, 'storage_mb'::text, 'file_size_mb'::text, 'ai_tools'::text,
    'client_portal'::text, 'api_access'::text, 'webhooks'::text, 'ai_overage'::text])));
ALTER TABLE public.entitlement_overrides DROP CONSTRAINT entitlement_overrides_value_kind;
ALTER TABLE public.entitlement_overrides ADD CONSTRAINT entitlement_overrides_value_kind CHECK (
CASE
    WHEN (entitlement = ANY (ARRAY['ai_tools'::text, 'client_portal'::text, 'api_access'::text, 'webhooks'::text, 'ai_overage'::text])) THEN (value = ANY (ARRAY[0, 1]))
    WHEN (entitlement = ANY (ARRAY['requests_per_minute'::text, 'expensive_per_minute'::text])) THEN (value >= 1)
    WHEN (entitlement = ANY (ARRAY['ai_runs_per_month'::text, 'storage_mb'::text])) THEN (value IS NOT NULL)
    WHEN (entitlement = 'file_size_mb'::text) THEN (value BETWEEN 1 AND 5120)
    ELSE true
END);

CREATE OR REPLACE FUNCTION app.feature_in_force(p_workspace uuid, p_feature text) RETURNS TABLE(enabled boolean)
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(
        (SELECT coalesce(o.value, 0) > 0 FROM app.override_in_force(p_workspace, p_feature) o),
        (SELECT CASE p_feature WHEN 'ai_tools' THEN p.ai_tools WHEN 'client_portal' THEN p.client_portal
                               WHEN 'api_access' THEN p.api_access WHEN 'webhooks' THEN p.webhooks
                               WHEN 'ai_overage' THEN p.ai_overage END
         FROM public.plans p WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f)),
        false)
$$;

-- The workspace's spending cap on overage, per quota window, in the subscription's currency's
-- smallest unit: NULL, no cap; 0, no overage at all.
ALTER TABLE public.workspaces
    ADD COLUMN ai_overage_cap bigint,
    ADD CONSTRAINT workspaces_ai_overage_cap CHECK (ai_overage_cap >= 0);
COMMENT ON COLUMN public.workspaces.ai_overage_cap IS 'most the AI runs beyond the quota may cost per quota window, in the currency''s smallest unit; NULL: no cap';

-- What one overage run costs, from the subscription's metered overage price (Stripe's record):
-- without it overage cannot be billed, so none is admitted.
ALTER TABLE public.subscriptions ADD COLUMN overage_unit_amount numeric;
COMMENT ON COLUMN public.subscriptions.overage_unit_amount IS 'the metered AI overage price''s unit_amount_decimal; NULL when the subscription has no such item';
GRANT SELECT(overage_unit_amount) ON TABLE public.subscriptions TO app_exporter;

-- Overage runs of each window, beside the quota's.
ALTER TABLE public.ai_quota_usage
    ADD COLUMN overage integer DEFAULT 0 NOT NULL,
    ADD CONSTRAINT ai_quota_usage_overage CHECK (overage >= 0);
GRANT SELECT(overage) ON TABLE public.ai_quota_usage TO app_exporter;
GRANT UPDATE(overage) ON TABLE public.ai_quota_usage TO app_sweeper;

ALTER TABLE public.ai_runs ADD COLUMN overage boolean DEFAULT false NOT NULL;
GRANT SELECT(overage) ON TABLE public.ai_runs TO app_exporter;
ALTER TABLE public.usage_records ADD COLUMN overage boolean DEFAULT false NOT NULL;
GRANT SELECT(overage) ON TABLE public.usage_records TO app_exporter;

-- The overage runs the workspace's cap allows per window: NULL when unlimited, 0 when the plan
-- admits none, the subscription has no overage price, or the cap is 0. Only for the caller's
-- own workspaces (NULL for any other).
CREATE FUNCTION app.ai_overage_allowance(p_workspace uuid) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT CASE
        WHEN NOT (SELECT f.enabled FROM app.feature_in_force(p_workspace, 'ai_overage') f) THEN 0
        WHEN s.overage_unit_amount IS NULL OR s.overage_unit_amount <= 0 THEN 0
        WHEN w.ai_overage_cap IS NULL THEN NULL
        ELSE pg_catalog.floor(w.ai_overage_cap / s.overage_unit_amount)::bigint
    END
    FROM public.workspaces w
    LEFT JOIN public.subscriptions s ON s.workspace_id = w.id
        AND s.status = ANY (ARRAY['active'::text, 'trialing'::text, 'past_due'::text])
    WHERE w.id = p_workspace AND p_workspace = ANY (app.member_workspace_ids())
$$;
ALTER FUNCTION app.ai_overage_allowance(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.ai_overage_allowance(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.ai_overage_allowance(p_workspace uuid) TO app_api;

-- Reserves one run of the window: one of the quota's while it lasts, then an overage run while
-- the plan admits them and the cap allows; refused (NULL window) past both. The window's row is
-- locked while deciding, so concurrent reservations are counted one after another.
DROP FUNCTION app.reserve_ai_run(p_workspace uuid);
CREATE FUNCTION app.reserve_ai_run(p_workspace uuid, OUT window_start date, OUT overage boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    allowed integer;
    overage_allowed bigint;
    used record;
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(p_workspace);
    allowed := coalesce(app.effective_limit(p_workspace, 'ai_runs_per_month', allowed), 0);
    overage_allowed := app.ai_overage_allowance(p_workspace);
    window_start := app.ai_quota_period(p_workspace);
    INSERT INTO public.ai_quota_usage (workspace_id, period, reserved) VALUES (p_workspace, window_start, 0)
    ON CONFLICT (workspace_id, period) DO NOTHING;
    SELECT q.reserved, q.overage INTO used FROM public.ai_quota_usage q
    WHERE q.workspace_id = p_workspace AND q.period = window_start FOR UPDATE;
    IF used.reserved < allowed THEN
        UPDATE public.ai_quota_usage SET reserved = reserved + 1 WHERE workspace_id = p_workspace AND period = window_start;
        overage := false;
    ELSIF overage_allowed IS NULL OR used.overage < overage_allowed THEN
        UPDATE public.ai_quota_usage SET overage = ai_quota_usage.overage + 1 WHERE workspace_id = p_workspace AND period = window_start;
        overage := true;
    ELSE
        window_start := NULL;
        overage := NULL;
    END IF;
END
$$;
ALTER FUNCTION app.reserve_ai_run(p_workspace uuid, OUT window_start date, OUT overage boolean) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.reserve_ai_run(p_workspace uuid, OUT window_start date, OUT overage boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION app.reserve_ai_run(p_workspace uuid, OUT window_start date, OUT overage boolean) TO app_api;

-- Gives back what a failed run reserved: an overage run, or one of the quota's.
DROP FUNCTION app.release_ai_run(p_workspace uuid, p_period date);
CREATE FUNCTION app.release_ai_run(p_workspace uuid, p_period date, p_overage boolean) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.ai_quota_usage
    SET reserved = reserved - CASE WHEN p_overage THEN 0 ELSE 1 END,
        overage = overage - CASE WHEN p_overage THEN 1 ELSE 0 END
    WHERE workspace_id = p_workspace AND period = p_period
      AND CASE WHEN p_overage THEN overage > 0 ELSE reserved > 0 END;
END
$$;
ALTER FUNCTION app.release_ai_run(p_workspace uuid, p_period date, p_overage boolean) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.release_ai_run(p_workspace uuid, p_period date, p_overage boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION app.release_ai_run(p_workspace uuid, p_period date, p_overage boolean) TO app_api;

-- The 80% and 100% mails, of the quota and now of the spending cap: each once per window.
CREATE OR REPLACE FUNCTION app.mail_ai_quota() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    allowed integer;
    cap bigint;
    unit numeric;
    currency text;
    threshold integer;
BEGIN
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(NEW.workspace_id);
    allowed := app.effective_limit(NEW.workspace_id, 'ai_runs_per_month', allowed);
    IF coalesce(allowed, 0) > 0 AND NEW.reserved IS DISTINCT FROM (CASE WHEN TG_OP = 'UPDATE' THEN OLD.reserved END) THEN
        FOREACH threshold IN ARRAY ARRAY[80, 100] LOOP
            IF NEW.reserved * 100 >= allowed * threshold
               AND (TG_OP = 'INSERT' OR OLD.reserved * 100 < allowed * threshold) THEN
                PERFORM app.mail_workspace_managers(
                    NEW.workspace_id, 'ai_quota',
                    pg_catalog.jsonb_build_object('percent', threshold, 'limit', allowed),
                    'ai_quota:' || threshold || ':' || NEW.workspace_id || ':' || NEW.period);
            END IF;
        END LOOP;
    END IF;
    SELECT w.ai_overage_cap, s.overage_unit_amount, s.currency INTO cap, unit, currency
    FROM public.workspaces w
    LEFT JOIN public.subscriptions s ON s.workspace_id = w.id
    WHERE w.id = NEW.workspace_id;
    IF TG_OP = 'UPDATE' AND cap > 0 AND unit > 0 AND NEW.overage > OLD.overage THEN
        FOREACH threshold IN ARRAY ARRAY[80, 100] LOOP
            -- 80%: what the overage cost passed 80% of the cap; 100%: the cap admits no more runs.
            IF (threshold = 80 AND NEW.overage * unit * 100 >= cap * 80 AND OLD.overage * unit * 100 < cap * 80)
               OR (threshold = 100 AND NEW.overage >= pg_catalog.floor(cap / unit) AND OLD.overage < pg_catalog.floor(cap / unit)) THEN
                PERFORM app.mail_workspace_managers(
                    NEW.workspace_id, 'ai_spending_cap',
                    pg_catalog.jsonb_build_object('percent', threshold, 'cap', cap, 'currency', currency,
                                                  'spent', pg_catalog.round(NEW.overage * unit)::bigint,
                                                  'runs', NEW.overage),
                    'ai_spending_cap:' || threshold || ':' || NEW.workspace_id || ':' || NEW.period);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER ai_quota_mail ON public.ai_quota_usage;
CREATE TRIGGER ai_quota_mail AFTER INSERT OR UPDATE OF reserved, overage ON public.ai_quota_usage FOR EACH ROW EXECUTE FUNCTION app.mail_ai_quota();

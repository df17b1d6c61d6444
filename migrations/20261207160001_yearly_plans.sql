-- Yearly plans: each paid plan is sold monthly and yearly (two Stripe lookup keys); the interval
-- changes what is charged and when, never what the plan entitles to. The AI quota follows the
-- subscription's billing period instead of the calendar month.

-- What a checkout sells: the interval beside the plan, so an open session is reused only for
-- the same plan at the same interval.
ALTER TABLE public.checkout_sessions
    ADD COLUMN billing_interval text DEFAULT 'month' NOT NULL,
    ADD CONSTRAINT checkout_sessions_billing_interval CHECK (billing_interval = ANY (ARRAY['month'::text, 'year'::text]));
GRANT SELECT(billing_interval) ON TABLE public.checkout_sessions TO app_exporter;
DROP INDEX public.checkout_sessions_open_idx;
CREATE INDEX checkout_sessions_open_idx ON public.checkout_sessions USING btree (workspace_id, plan_id, billing_interval, expires_at DESC) WHERE (completed_at IS NULL);

-- What the synced subscription renews at: its interval, the start of its current period (the
-- AI quota's anchor) and what each renewal charges (prices x quantities, per period).
ALTER TABLE public.subscriptions
    ADD COLUMN billing_interval text,
    ADD COLUMN current_period_start timestamp with time zone,
    ADD COLUMN period_amount bigint,
    ADD CONSTRAINT subscriptions_billing_interval CHECK (billing_interval = ANY (ARRAY['month'::text, 'year'::text]));
COMMENT ON COLUMN public.subscriptions.billing_interval IS 'the plan price''s recurring interval; NULL if Stripe did not say or it is neither month nor year';
COMMENT ON COLUMN public.subscriptions.period_amount IS 'what each renewal charges before prorations, discounts and tax: the items'' unit_amount x quantity; NULL if the items'' intervals differ or an amount is missing';
GRANT SELECT(billing_interval) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(current_period_start) ON TABLE public.subscriptions TO app_exporter;
GRANT SELECT(period_amount) ON TABLE public.subscriptions TO app_exporter;

-- The AI quota's window now: a month of the live subscription's billing period, counted from the
-- period's start (a yearly subscription has twelve monthly windows, a monthly one its period),
-- or the calendar month without one. Its first day keys `ai_quota_usage`. Invoker's rights: a
-- caller learns only what it may read of the subscription.
CREATE FUNCTION app.ai_quota_period(p_workspace uuid) RETURNS date
    LANGUAGE sql STABLE
    SET search_path TO ''
    SET "TimeZone" TO 'UTC'
    AS $$
    SELECT coalesce(
        (SELECT (s.current_period_start
                 + pg_catalog.make_interval(months => (
                       pg_catalog.date_part('year', pg_catalog.age(pg_catalog.now(), s.current_period_start)) * 12
                     + pg_catalog.date_part('month', pg_catalog.age(pg_catalog.now(), s.current_period_start)))::integer))::date
         FROM public.subscriptions s
         WHERE s.workspace_id = p_workspace
           AND s.status = ANY (ARRAY['active'::text, 'trialing'::text, 'past_due'::text])
           AND s.current_period_start <= pg_catalog.now() AND s.current_period_end > pg_catalog.now()),
        pg_catalog.date_trunc('month', pg_catalog.now())::date)
$$;
ALTER FUNCTION app.ai_quota_period(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.ai_quota_period(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.ai_quota_period(p_workspace uuid) TO app_api;
GRANT ALL ON FUNCTION app.ai_quota_period(p_workspace uuid) TO app_admin;

-- Reserves one run of the window's quota; the window's first day when reserved, NULL when the
-- quota is used up. The window is decided here, in the reserving statement, so a run can never
-- be counted against a window the database did not choose.
DROP FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date);
CREATE FUNCTION app.reserve_ai_run(p_workspace uuid) RETURNS date
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    allowed integer;
    window_start date;
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(p_workspace);
    allowed := app.effective_limit(p_workspace, 'ai_runs_per_month', allowed);
    window_start := app.ai_quota_period(p_workspace);
    INSERT INTO public.ai_quota_usage AS q (workspace_id, period, reserved)
    SELECT p_workspace, window_start, 1 WHERE coalesce(allowed, 0) >= 1
    ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = q.reserved + 1 WHERE q.reserved < allowed;
    IF FOUND THEN
        RETURN window_start;
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.reserve_ai_run(p_workspace uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.reserve_ai_run(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.reserve_ai_run(p_workspace uuid) TO app_api;

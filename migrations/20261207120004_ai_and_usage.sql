-- Baseline 4/7: AI tool runs, the quota each workspace reserves from per month, and the usage
-- records that are the outbox of metered billing (written with a run's success, reported to
-- Stripe by the usage worker, re-sent by the sweeper until Stripe has them).

-- Tables

CREATE TABLE public.ai_runs (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    project_id uuid,
    tool text NOT NULL,
    input jsonb NOT NULL,
    status text NOT NULL,
    output text,
    error text,
    model text,
    input_tokens integer,
    output_tokens integer,
    idempotency_key text,
    request_hash text NOT NULL,
    quota_period date NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT ai_runs_status CHECK ((status = ANY (ARRAY['pending'::text, 'succeeded'::text, 'failed'::text]))),
    CONSTRAINT ai_runs_idempotency_key UNIQUE (workspace_id, idempotency_key),
    CONSTRAINT ai_runs_pkey PRIMARY KEY (id),
    CONSTRAINT ai_runs_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT ai_runs_project_fkey FOREIGN KEY (project_id, workspace_id) REFERENCES public.projects(id, workspace_id) ON DELETE SET NULL (project_id),
    CONSTRAINT ai_runs_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX ai_runs_pending_idx ON public.ai_runs USING btree (created_at) WHERE (status = 'pending'::text);
CREATE INDEX ai_runs_project_idx ON public.ai_runs USING btree (project_id) WHERE (project_id IS NOT NULL);
CREATE INDEX ai_runs_workspace_idx ON public.ai_runs USING btree (workspace_id, id DESC);

CREATE TABLE public.ai_quota_usage (
    workspace_id uuid NOT NULL,
    period date NOT NULL,
    reserved integer DEFAULT 0 NOT NULL,
    CONSTRAINT ai_quota_usage_reserved CHECK ((reserved >= 0)),
    CONSTRAINT ai_quota_usage_pkey PRIMARY KEY (workspace_id, period),
    CONSTRAINT ai_quota_usage_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);

-- One row per successful run: written with the run's success, then sent to the usage queue.
-- If sending fails, the sweeper sends it again; `reported_at` is set once Stripe has it.
CREATE TABLE public.usage_records (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    run_id uuid NOT NULL,
    quantity integer NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    enqueued_at timestamp with time zone,
    reported_at timestamp with time zone,
    stripe_customer_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT usage_records_quantity CHECK ((quantity > 0)),
    CONSTRAINT usage_records_pkey PRIMARY KEY (id),
    CONSTRAINT usage_records_run_key UNIQUE (run_id),
    CONSTRAINT usage_records_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.ai_runs(id) ON DELETE CASCADE,
    CONSTRAINT usage_records_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX usage_records_unreported_idx ON public.usage_records USING btree (created_at) WHERE (reported_at IS NULL);
CREATE INDEX usage_records_workspace_idx ON public.usage_records USING btree (workspace_id);

-- Functions

-- The AI allowance: the plan's, or the override's.
CREATE FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    allowed integer;
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(p_workspace);
    allowed := app.effective_limit(p_workspace, 'ai_runs_per_month', allowed);
    INSERT INTO public.ai_quota_usage AS q (workspace_id, period, reserved)
    SELECT p_workspace, p_period, 1 WHERE coalesce(allowed, 0) >= 1
    ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = q.reserved + 1 WHERE q.reserved < allowed;
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date) FROM PUBLIC;
GRANT ALL ON FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date) TO app_api;

-- Gives back the reservation of a run that failed.
CREATE FUNCTION app.release_ai_run(p_workspace uuid, p_period date) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.ai_quota_usage SET reserved = reserved - 1
    WHERE workspace_id = p_workspace AND period = p_period AND reserved > 0;
END
$$;
ALTER FUNCTION app.release_ai_run(p_workspace uuid, p_period date) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.release_ai_run(p_workspace uuid, p_period date) FROM PUBLIC;
GRANT ALL ON FUNCTION app.release_ai_run(p_workspace uuid, p_period date) TO app_api;

-- Row-level security, policies and grants

ALTER TABLE public.ai_quota_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.ai_quota_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY ai_quota_usage_select ON public.ai_quota_usage FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY service_all ON public.ai_quota_usage TO app_service USING (true) WITH CHECK (true);
CREATE POLICY sweeper_all ON public.ai_quota_usage TO app_sweeper USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.ai_quota_usage TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.ai_quota_usage TO app_service;
GRANT SELECT ON TABLE public.ai_quota_usage TO app_sweeper;
GRANT SELECT ON TABLE public.ai_quota_usage TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.ai_quota_usage TO app_exporter;
GRANT SELECT(period) ON TABLE public.ai_quota_usage TO app_exporter;
GRANT UPDATE(reserved) ON TABLE public.ai_quota_usage TO app_sweeper;
GRANT SELECT(reserved) ON TABLE public.ai_quota_usage TO app_exporter;

ALTER TABLE public.ai_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.ai_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY ai_runs_insert ON public.ai_runs FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY ai_runs_select ON public.ai_runs FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY ai_runs_update ON public.ai_runs FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.ai_runs TO app_service USING (true) WITH CHECK (true);
CREATE POLICY sweeper_all ON public.ai_runs TO app_sweeper USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,UPDATE ON TABLE public.ai_runs TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.ai_runs TO app_service;
GRANT SELECT ON TABLE public.ai_runs TO app_sweeper;
GRANT SELECT ON TABLE public.ai_runs TO app_admin;
GRANT SELECT(id) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(project_id) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(tool) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(input) ON TABLE public.ai_runs TO app_exporter;
GRANT UPDATE(status) ON TABLE public.ai_runs TO app_sweeper;
GRANT SELECT(status) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(output) ON TABLE public.ai_runs TO app_exporter;
GRANT UPDATE(error) ON TABLE public.ai_runs TO app_sweeper;
GRANT SELECT(error) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(model) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(input_tokens) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(output_tokens) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(idempotency_key) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(request_hash) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(quota_period) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(created_by) ON TABLE public.ai_runs TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.ai_runs TO app_exporter;
GRANT UPDATE(finished_at) ON TABLE public.ai_runs TO app_sweeper;
GRANT SELECT(finished_at) ON TABLE public.ai_runs TO app_exporter;

ALTER TABLE public.usage_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.usage_records FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON public.usage_records TO app_service USING (true) WITH CHECK (true);
CREATE POLICY sweeper_all ON public.usage_records TO app_sweeper USING (true) WITH CHECK (true);
CREATE POLICY usage_all ON public.usage_records TO app_usage USING (true) WITH CHECK (true);
CREATE POLICY usage_records_insert ON public.usage_records FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY usage_records_select ON public.usage_records FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY usage_records_update ON public.usage_records FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
GRANT SELECT,INSERT,UPDATE ON TABLE public.usage_records TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.usage_records TO app_service;
GRANT SELECT ON TABLE public.usage_records TO app_usage;
GRANT SELECT ON TABLE public.usage_records TO app_sweeper;
GRANT SELECT ON TABLE public.usage_records TO app_admin;
GRANT SELECT(id) ON TABLE public.usage_records TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.usage_records TO app_exporter;
GRANT SELECT(run_id) ON TABLE public.usage_records TO app_exporter;
GRANT SELECT(quantity) ON TABLE public.usage_records TO app_exporter;
GRANT SELECT(occurred_at) ON TABLE public.usage_records TO app_exporter;
GRANT UPDATE(enqueued_at) ON TABLE public.usage_records TO app_sweeper;
GRANT SELECT(enqueued_at) ON TABLE public.usage_records TO app_exporter;
GRANT UPDATE(reported_at) ON TABLE public.usage_records TO app_usage;
GRANT SELECT(reported_at) ON TABLE public.usage_records TO app_exporter;
GRANT UPDATE(stripe_customer_id) ON TABLE public.usage_records TO app_usage;
GRANT SELECT(stripe_customer_id) ON TABLE public.usage_records TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.usage_records TO app_exporter;

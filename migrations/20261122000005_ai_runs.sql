-- AI tool runs, their monthly quota, and usage records (the outbox of metered billing).

CREATE TABLE ai_runs (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id      uuid,
    tool            text NOT NULL,
    input           jsonb NOT NULL,
    status          text NOT NULL CONSTRAINT ai_runs_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    output          text,
    error           text,
    model           text,
    input_tokens    integer,
    output_tokens   integer,
    -- The client's Idempotency-Key, and a hash of the request it came with.
    idempotency_key text,
    request_hash    text NOT NULL,
    -- The month whose quota this run reserved (released if it fails).
    quota_period    date NOT NULL,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT ai_runs_idempotency_key UNIQUE (workspace_id, idempotency_key),
    CONSTRAINT ai_runs_project_fkey FOREIGN KEY (project_id, workspace_id)
        REFERENCES projects (id, workspace_id) ON DELETE SET NULL (project_id)
);
CREATE INDEX ai_runs_workspace_idx ON ai_runs (workspace_id, id DESC);
CREATE INDEX ai_runs_pending_idx ON ai_runs (created_at) WHERE status = 'pending';
CREATE INDEX ai_runs_project_idx ON ai_runs (project_id) WHERE project_id IS NOT NULL;

CREATE TABLE ai_quota_usage (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    period       date NOT NULL,
    reserved     integer NOT NULL DEFAULT 0 CONSTRAINT ai_quota_usage_reserved CHECK (reserved >= 0),
    CONSTRAINT ai_quota_usage_pkey PRIMARY KEY (workspace_id, period)
);

-- One row per successful run: written with the run's success, then sent to the usage queue.
-- If sending fails, the sweeper sends it again; `reported_at` is set once Stripe has it.
CREATE TABLE usage_records (
    id                 uuid PRIMARY KEY, -- also the meter event's identifier at Stripe
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    run_id             uuid NOT NULL REFERENCES ai_runs (id) ON DELETE CASCADE,
    quantity           integer NOT NULL CONSTRAINT usage_records_quantity CHECK (quantity > 0),
    occurred_at        timestamptz NOT NULL,
    enqueued_at        timestamptz,
    reported_at        timestamptz,
    stripe_customer_id text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_records_run_key UNIQUE (run_id)
);
CREATE INDEX usage_records_unreported_idx ON usage_records (created_at) WHERE reported_at IS NULL;
CREATE INDEX usage_records_workspace_idx ON usage_records (workspace_id);

GRANT SELECT, INSERT, UPDATE ON ai_runs, usage_records TO app_api;
GRANT SELECT ON ai_quota_usage TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON ai_runs, ai_quota_usage, usage_records TO app_service;

-- Reserves one run of the workspace's monthly quota, atomically: the conflicting row's lock
-- serializes concurrent reservations, and the WHERE sees the latest count, so a limit of N
-- admits exactly N. False when the quota is used up. Only members who may run tools reserve.
CREATE FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    allowed integer;
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(p_workspace);
    INSERT INTO public.ai_quota_usage AS q (workspace_id, period, reserved)
    SELECT p_workspace, p_period, 1 WHERE coalesce(allowed, 0) >= 1
    ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = q.reserved + 1 WHERE q.reserved < allowed;
    RETURN FOUND;
END
$$;

-- Gives back the reservation of a run that failed.
CREATE FUNCTION app.release_ai_run(p_workspace uuid, p_period date) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin,member}')) THEN
        RAISE EXCEPTION 'only owners, admins and members run AI tools' USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.ai_quota_usage SET reserved = reserved - 1
    WHERE workspace_id = p_workspace AND period = p_period AND reserved > 0;
END
$$;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reserve_ai_run(uuid, date), app.release_ai_run(uuid, date) TO app_api, app_service;
ALTER FUNCTION app.reserve_ai_run(uuid, date) OWNER TO app_service;
ALTER FUNCTION app.release_ai_run(uuid, date) OWNER TO app_service;

ALTER TABLE ai_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_runs FORCE ROW LEVEL SECURITY;
ALTER TABLE ai_quota_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai_quota_usage FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_records FORCE ROW LEVEL SECURITY;

CREATE POLICY service_all ON ai_runs TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON ai_quota_usage TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON usage_records TO app_service USING (true) WITH CHECK (true);

-- Members read their workspace's runs and usage; those who may run tools write runs.
CREATE POLICY ai_runs_select ON ai_runs FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));
CREATE POLICY ai_runs_insert ON ai_runs FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY ai_runs_update ON ai_runs FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY ai_quota_usage_select ON ai_quota_usage FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));
CREATE POLICY usage_records_select ON usage_records FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));
CREATE POLICY usage_records_insert ON usage_records FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY usage_records_update ON usage_records FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));

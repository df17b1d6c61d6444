-- Entitlement overrides: an operator grants a workspace a higher limit than its plan's, until
-- a date, with a reason. The database's limit triggers resolve the limit through them, under
-- the same workspace row lock, so a granted limit holds under concurrency like a plan's.
-- (Limits the database enforces: projects and members.)

CREATE TABLE entitlement_overrides (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    entitlement   text NOT NULL CONSTRAINT entitlement_overrides_entitlement CHECK (entitlement IN ('projects', 'members')),
    -- The limit while the override lasts; NULL is unlimited.
    value         integer CONSTRAINT entitlement_overrides_value CHECK (value IS NULL OR value >= 0),
    reason        text NOT NULL CONSTRAINT entitlement_overrides_reason_length CHECK (char_length(reason) BETWEEN 3 AND 1000),
    granted_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoked_by    text,
    revoke_reason text CONSTRAINT entitlement_overrides_revoke_reason_length CHECK (char_length(revoke_reason) <= 1000)
);
CREATE INDEX entitlement_overrides_workspace_idx ON entitlement_overrides (workspace_id, entitlement, created_at DESC)
    WHERE revoked_at IS NULL;

GRANT SELECT ON entitlement_overrides TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON entitlement_overrides TO app_service;
GRANT SELECT, INSERT, UPDATE (revoked_at, revoked_by, revoke_reason) ON entitlement_overrides TO app_admin;
ALTER TABLE entitlement_overrides ENABLE ROW LEVEL SECURITY;
ALTER TABLE entitlement_overrides FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON entitlement_overrides TO app_service USING (true) WITH CHECK (true);
CREATE POLICY admin_all ON entitlement_overrides TO app_admin USING (true) WITH CHECK (true);
-- A workspace's members see what they were granted (owners read it next to their plan).
CREATE POLICY members_read ON entitlement_overrides FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON entitlement_overrides
    FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');

-- The limit in force: the newest unexpired, unrevoked override's, else the plan's.
CREATE FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT CASE WHEN o.id IS NULL THEN p_plan_limit ELSE o.value END
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT x.id, x.value FROM public.entitlement_overrides x
        WHERE x.workspace_id = p_workspace AND x.entitlement = p_entitlement
          AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now()
        ORDER BY x.created_at DESC LIMIT 1) o ON true
$$;
REVOKE EXECUTE ON FUNCTION app.effective_limit(uuid, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.effective_limit(uuid, text, integer) TO app_api, app_admin;
ALTER FUNCTION app.effective_limit(uuid, text, integer) OWNER TO app_service;

CREATE OR REPLACE FUNCTION app.enforce_plan_limit() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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

-- Entitlement overrides for every entitlement: the AI runs allowance, the rate limits and the
-- plan features join the projects and members limits. A feature override is 1 (granted) or 0
-- (withheld); the AI allowance and the rate limits cannot be unlimited.

ALTER TABLE entitlement_overrides DROP CONSTRAINT entitlement_overrides_entitlement;
ALTER TABLE entitlement_overrides ADD CONSTRAINT entitlement_overrides_entitlement CHECK (entitlement IN (
    'projects', 'members', 'ai_runs_per_month', 'requests_per_minute', 'expensive_per_minute',
    'ai_tools', 'client_portal', 'api_access', 'webhooks'));
ALTER TABLE entitlement_overrides ADD CONSTRAINT entitlement_overrides_value_kind CHECK (
    CASE
        WHEN entitlement IN ('ai_tools', 'client_portal', 'api_access', 'webhooks') THEN value IN (0, 1)
        WHEN entitlement IN ('requests_per_minute', 'expensive_per_minute') THEN value >= 1
        WHEN entitlement = 'ai_runs_per_month' THEN value IS NOT NULL
        ELSE true
    END);

-- A workspace's overrides in force, newest per entitlement: {"api_access": 1, "projects": null}.
-- PL/pgSQL, as app.effective_plan: its query keeps its plan for the session, where a SQL-language
-- SECURITY DEFINER function is planned on every call (this one runs in contacts' and keys' first
-- statement).
CREATE FUNCTION app.active_overrides(p_workspace uuid) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    RETURN coalesce((
        SELECT pg_catalog.jsonb_object_agg(o.entitlement, o.value)
        FROM (SELECT DISTINCT ON (x.entitlement) x.entitlement, x.value
              FROM public.entitlement_overrides x
              WHERE x.workspace_id = p_workspace AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now()
              ORDER BY x.entitlement, x.created_at DESC) o), '{}');
END
$$;
REVOKE EXECUTE ON FUNCTION app.active_overrides(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.active_overrides(uuid) TO app_api, app_admin, app_webhooks, app_fanout;
ALTER FUNCTION app.active_overrides(uuid) OWNER TO app_service;

-- The limit in force, likewise in PL/pgSQL now that it runs in the AI reservation and the rate
-- limiter too.
CREATE OR REPLACE FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer)
    RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    o public.entitlement_overrides;
BEGIN
    SELECT * INTO o FROM public.entitlement_overrides x
    WHERE x.workspace_id = p_workspace AND x.entitlement = p_entitlement
      AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now()
    ORDER BY x.created_at DESC LIMIT 1;
    IF o.id IS NULL THEN
        RETURN p_plan_limit;
    END IF;
    RETURN o.value;
END
$$;

-- The AI allowance: the plan's, or the override's.
CREATE OR REPLACE FUNCTION app.reserve_ai_run(p_workspace uuid, p_period date) RETURNS boolean
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
    allowed := app.effective_limit(p_workspace, 'ai_runs_per_month', allowed);
    INSERT INTO public.ai_quota_usage AS q (workspace_id, period, reserved)
    SELECT p_workspace, p_period, 1 WHERE coalesce(allowed, 0) >= 1
    ON CONFLICT (workspace_id, period) DO UPDATE SET reserved = q.reserved + 1 WHERE q.reserved < allowed;
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION app.mail_ai_quota() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    allowed integer;
    threshold integer;
BEGIN
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(NEW.workspace_id);
    allowed := app.effective_limit(NEW.workspace_id, 'ai_runs_per_month', allowed);
    IF coalesce(allowed, 0) = 0 THEN
        RETURN NULL;
    END IF;
    FOREACH threshold IN ARRAY ARRAY[80, 100] LOOP
        IF NEW.reserved * 100 >= allowed * threshold
           AND (TG_OP = 'INSERT' OR OLD.reserved * 100 < allowed * threshold) THEN
            PERFORM app.mail_workspace_managers(
                NEW.workspace_id, 'ai_quota',
                pg_catalog.jsonb_build_object('percent', threshold, 'limit', allowed),
                'ai_quota:' || threshold || ':' || NEW.workspace_id || ':' || NEW.period);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- The rate limits: the plan's, or the override's (a key's own limit stays at most that).
CREATE OR REPLACE FUNCTION app.take_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid,
                                    p_expensive boolean)
    RETURNS TABLE (rate_policy text, quota integer, remaining integer, reset_seconds integer,
                   allowed boolean, retry_after integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    ws uuid := p_workspace;
    key_limit integer;
    plan_limit integer;
    expensive_limit integer;
    names text[];
    buckets text[];
    limits integer[];
    tats timestamptz[] := '{}';
    window_length constant interval := interval '60 seconds';
    emission interval;
    current_tat timestamptz;
    next_tat timestamptz;
    longest_wait interval := interval '0';
    i integer;
BEGIN
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    IF p_key IS NOT NULL THEN
        SELECT a.workspace_id, a.requests_per_minute INTO ws, key_limit FROM public.api_keys a
        WHERE a.id = p_key AND a.secret_hash = p_secret_hash AND a.revoked_at IS NULL
          AND (a.expires_at IS NULL OR a.expires_at > now());
        IF NOT FOUND OR (p_workspace IS NOT NULL AND p_workspace <> ws) THEN
            RETURN;
        END IF;
        UPDATE public.api_keys a SET last_used_at = now()
        WHERE a.id = p_key AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute');
    ELSIF ws IS NULL THEN
        -- A person outside any workspace (their workspace list, creating one, accepting an
        -- invitation): their own bucket, at the free plan's rate.
        IF p_user IS NULL THEN
            RETURN;
        END IF;
    ELSIF NOT (
        EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.workspace_id = ws AND m.user_id = p_user)
        OR EXISTS (SELECT 1 FROM public.client_contacts c WHERE c.workspace_id = ws AND c.user_id = p_user)) THEN
        RETURN;
    END IF;
    SELECT p.requests_per_minute, p.expensive_per_minute INTO plan_limit, expensive_limit
    FROM public.plans p WHERE p.id = coalesce(app.effective_plan(ws), 'free');
    -- One index probe per request; the overrides are read only for a workspace that has one.
    IF ws IS NOT NULL AND EXISTS (
        SELECT 1 FROM public.entitlement_overrides x
        WHERE x.workspace_id = ws AND x.revoked_at IS NULL AND x.expires_at > now()) THEN
        plan_limit := app.effective_limit(ws, 'requests_per_minute', plan_limit);
        expensive_limit := app.effective_limit(ws, 'expensive_per_minute', expensive_limit);
    END IF;
    IF ws IS NULL THEN
        names := ARRAY['user'];
        buckets := ARRAY['user:' || p_user];
    ELSE
        names := ARRAY['workspace'];
        buckets := ARRAY['workspace:' || ws];
    END IF;
    limits := ARRAY[plan_limit];
    IF p_key IS NOT NULL THEN
        names := names || 'api_key'::text;
        buckets := buckets || ('api_key:' || p_key);
        limits := limits || least(coalesce(key_limit, plan_limit), plan_limit);
    END IF;
    IF p_expensive AND ws IS NOT NULL THEN
        names := names || 'expensive'::text;
        buckets := buckets || ('expensive:' || ws);
        limits := limits || expensive_limit;
    END IF;
    -- Each bucket locked in turn, always in the same order (so two requests never wait on each
    -- other crosswise). A missing one is created first, so concurrent first requests queue on
    -- its row like the others.
    FOR i IN 1 .. pg_catalog.array_length(buckets, 1) LOOP
        SELECT r.tat INTO current_tat FROM public.rate_limit_buckets r WHERE r.bucket = buckets[i] FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO public.rate_limit_buckets (bucket, tat) VALUES (buckets[i], '-infinity')
            ON CONFLICT (bucket) DO NOTHING;
            SELECT r.tat INTO current_tat FROM public.rate_limit_buckets r WHERE r.bucket = buckets[i] FOR UPDATE;
        END IF;
        -- At least a microsecond (interval precision), whatever the limit.
        emission := greatest(window_length / limits[i], interval '1 microsecond');
        next_tat := greatest(current_tat, now()) + emission;
        tats := tats || next_tat;
        longest_wait := greatest(longest_wait, next_tat - now() - window_length);
    END LOOP;
    allowed := longest_wait <= interval '0';
    retry_after := CASE WHEN allowed THEN 0
                        ELSE pg_catalog.ceil(extract(epoch FROM longest_wait))::integer END;
    FOR i IN 1 .. pg_catalog.array_length(buckets, 1) LOOP
        emission := greatest(window_length / limits[i], interval '1 microsecond');
        IF allowed THEN
            UPDATE public.rate_limit_buckets r SET tat = tats[i] WHERE r.bucket = buckets[i];
            next_tat := tats[i];
        ELSE
            next_tat := tats[i] - emission;
        END IF;
        rate_policy := names[i];
        quota := limits[i];
        remaining := greatest(0, pg_catalog.floor(extract(epoch FROM (window_length - greatest(next_tat - now(), interval '0')))
                                                  / extract(epoch FROM emission)))::integer;
        reset_seconds := pg_catalog.ceil(extract(epoch FROM greatest(next_tat - now(), interval '0')))::integer;
        RETURN NEXT;
    END LOOP;
END
$$;

-- The request's first statement also answers a contact's or a key's feature overrides (the
-- portal, API access), so the access check needs no further statement.
DROP FUNCTION app.begin_request(uuid, text, text, text, text, uuid, uuid);
CREATE FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text,
                                  p_request_id text, p_workspace uuid, p_project uuid)
    RETURNS TABLE (member_role text, is_contact boolean, contact_plan text, contact_overrides jsonb,
                   project_visible boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    role public.member_role;
    clients uuid[];
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'no caller identity' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_catalog.set_config('app.user_id', p_user::text, true),
            pg_catalog.set_config('app.request_id', coalesce(p_request_id, ''), true);
    -- As app.ensure_user: a known user with an unchanged e-mail writes nothing.
    IF NOT EXISTS (SELECT 1 FROM public.users u
                   WHERE u.id = p_user AND (p_email IS NULL OR u.email IS NOT DISTINCT FROM p_email)) THEN
        INSERT INTO public.users AS u (id, issuer, subject, email)
        VALUES (p_user, p_issuer, p_subject, p_email)
        ON CONFLICT (id) DO UPDATE
            SET email = excluded.email, updated_at = now()
            WHERE excluded.email IS NOT NULL AND u.email IS DISTINCT FROM excluded.email;
    END IF;
    IF p_workspace IS NULL THEN
        RETURN;
    END IF;

    SELECT m.role INTO role FROM public.workspace_members m
    WHERE m.workspace_id = p_workspace AND m.user_id = p_user;
    -- A member reads the whole workspace; client links matter only to a non-member.
    IF role IS NULL THEN
        SELECT pg_catalog.array_agg(c.client_id) INTO clients FROM public.client_contacts c
        WHERE c.workspace_id = p_workspace AND c.user_id = p_user;
    END IF;
    member_role := role::text;
    is_contact := clients IS NOT NULL;
    IF role IS NULL AND clients IS NULL THEN
        project_visible := false;
        RETURN NEXT;
        RETURN;
    END IF;
    IF role IS NULL THEN
        contact_plan := app.effective_plan(p_workspace);
        contact_overrides := app.active_overrides(p_workspace);
    END IF;
    project_visible := p_project IS NULL OR EXISTS (
        SELECT 1 FROM public.projects p
        WHERE p.workspace_id = p_workspace AND p.id = p_project
          AND (role IS NOT NULL OR p.client_id = ANY (clients)));
    PERFORM pg_catalog.set_config('app.entered_user', p_user::text, true),
            pg_catalog.set_config('app.entered_workspace', p_workspace::text, true),
            pg_catalog.set_config('app.entered_role', coalesce(role::text, ''), true),
            pg_catalog.set_config('app.entered_clients', coalesce(clients::text, ''), true);
    -- A suspended workspace is read, never written: the rest of the request's transaction is
    -- read-only, so every write path fails the same way (and the API answers 403
    -- workspace_suspended).
    IF EXISTS (SELECT 1 FROM public.workspaces w WHERE w.id = p_workspace AND w.suspended_at IS NOT NULL) THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    RETURN NEXT;
END
$$;
REVOKE EXECUTE ON FUNCTION app.begin_request(uuid, text, text, text, text, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, text, text, text, text, uuid, uuid) TO app_api, app_service;
ALTER FUNCTION app.begin_request(uuid, text, text, text, text, uuid, uuid) OWNER TO app_service;

DROP FUNCTION app.begin_key_request(uuid, bytea, text, uuid, uuid);
CREATE FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text,
                                      p_workspace uuid, p_project uuid)
    RETURNS TABLE (key_state text, key_workspace uuid, member_role text, key_plan text, key_overrides jsonb,
                   project_visible boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    k public.api_keys;
BEGIN
    SELECT * INTO k FROM public.api_keys a WHERE a.id = p_key AND a.secret_hash = p_secret_hash;
    key_state := CASE
        WHEN k.id IS NULL THEN 'unknown'
        WHEN k.revoked_at IS NOT NULL THEN 'revoked'
        WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired'
        WHEN p_workspace IS NOT NULL AND p_workspace <> k.workspace_id THEN 'other_workspace'
        WHEN EXISTS (SELECT 1 FROM public.workspaces w WHERE w.id = k.workspace_id AND w.suspended_at IS NOT NULL)
            THEN 'suspended'
        ELSE 'active'
    END;
    project_visible := false;
    IF key_state <> 'active' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    key_workspace := k.workspace_id;
    member_role := k.role::text;
    key_plan := app.effective_plan(k.workspace_id);
    key_overrides := app.active_overrides(k.workspace_id);
    project_visible := p_project IS NULL OR EXISTS (
        SELECT 1 FROM public.projects p WHERE p.workspace_id = k.workspace_id AND p.id = p_project);
    PERFORM pg_catalog.set_config('app.user_id', k.id::text, true),
            pg_catalog.set_config('app.api_key_id', k.id::text, true),
            pg_catalog.set_config('app.request_id', coalesce(p_request_id, ''), true),
            pg_catalog.set_config('app.entered_user', k.id::text, true),
            pg_catalog.set_config('app.entered_workspace', k.workspace_id::text, true),
            pg_catalog.set_config('app.entered_role', k.role::text, true),
            pg_catalog.set_config('app.entered_clients', '', true);
    RETURN NEXT;
END
$$;
REVOKE EXECUTE ON FUNCTION app.begin_key_request(uuid, bytea, text, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_key_request(uuid, bytea, text, uuid, uuid) TO app_api;
ALTER FUNCTION app.begin_key_request(uuid, bytea, text, uuid, uuid) OWNER TO app_service;

-- API keys (a workspace's machine principals) and request rate limits per plan and per key.

-- Requests per minute a workspace may make, and the stricter budget of expensive routes (AI
-- runs, checkout), by plan.
ALTER TABLE plans
    ADD COLUMN requests_per_minute  integer NOT NULL DEFAULT 300,
    ADD COLUMN expensive_per_minute integer NOT NULL DEFAULT 20;
UPDATE plans SET requests_per_minute = 300, expensive_per_minute = 20 WHERE id = 'free';
UPDATE plans SET requests_per_minute = 1200, expensive_per_minute = 60 WHERE id = 'pro';
UPDATE plans SET requests_per_minute = 6000, expensive_per_minute = 300 WHERE id = 'studio';

-- A key acts as its own principal: it has a user row (so what it creates names it, as
-- `created_by` or a comment's author) but no membership; its role comes from here.
CREATE TABLE api_keys (
    id                    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    workspace_id          uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                  text NOT NULL CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    role                  member_role NOT NULL CONSTRAINT api_keys_role CHECK (role <> 'owner'),
    -- The first characters of the key, for people to recognise it; not a secret.
    display_prefix        text NOT NULL,
    -- SHA-256 of the whole key. The key itself is never stored.
    secret_hash           bytea NOT NULL CONSTRAINT api_keys_secret_hash_key UNIQUE,
    -- The key's own limit (at most its plan's); NULL is the plan's.
    requests_per_minute   integer CONSTRAINT api_keys_requests_per_minute CHECK (requests_per_minute > 0),
    created_by            uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    last_used_at          timestamptz,
    expires_at            timestamptz,
    revoked_at            timestamptz
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id, id DESC);

GRANT SELECT, UPDATE (revoked_at) ON api_keys TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO app_service;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON api_keys TO app_service USING (true) WITH CHECK (true);
-- Owners and admins see and revoke their workspace's keys; creation goes through
-- app.create_api_key (a key needs its user row, which no policy lets the API write).
CREATE POLICY api_keys_select ON api_keys FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY api_keys_update ON api_keys FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'secret_hash', 'last_used_at');

-- Creates a key in the entered workspace for an owner or admin (a person or an admin key), with
-- its user row. Its role may not be owner (the table refuses it), so it never exceeds its
-- creator's.
CREATE FUNCTION app.create_api_key(p_id uuid, p_workspace uuid, p_name text, p_role public.member_role,
                                   p_display_prefix text, p_secret_hash bytea, p_expires_at timestamptz,
                                   p_requests_per_minute integer) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF NOT p_workspace = ANY (app.workspaces_with_role('{owner,admin}')) THEN
        RAISE EXCEPTION 'only owners and admins create API keys' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.users (id, issuer, subject, email) VALUES (p_id, 'urn:saas:api-key', p_id::text, NULL);
    INSERT INTO public.api_keys (id, workspace_id, name, role, display_prefix, secret_hash, expires_at,
                                 requests_per_minute, created_by)
    VALUES (p_id, p_workspace, p_name, p_role, p_display_prefix, p_secret_hash, p_expires_at,
            p_requests_per_minute, app.current_user_id());
END
$$;

-- A request made with an API key: as app.begin_request, for the key's principal. Answers the
-- key's state (`active`, or why it is refused: `unknown`, `revoked`, `expired`), and for an
-- active key its workspace, role and plan (API access is a plan feature), and whether it can see
-- `p_project`. An active key always enters its own workspace; a route naming another workspace
-- enters nothing (`other_workspace`).
CREATE FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text,
                                      p_workspace uuid, p_project uuid)
    RETURNS TABLE (key_state text, key_workspace uuid, member_role text, key_plan text, project_visible boolean)
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

-- A key is no user: it may not create workspaces (it acts inside its own only).
CREATE OR REPLACE FUNCTION app.create_workspace(p_id uuid, p_name text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    caller uuid := app.current_user_id();
BEGIN
    IF caller IS NULL OR nullif(pg_catalog.current_setting('app.api_key_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'no person to own the workspace' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.workspaces (id, name, created_by) VALUES (p_id, p_name, caller);
    INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (p_id, caller, 'owner');
END
$$;

-- Rate limits: one generic cell rate algorithm (GCRA) bucket per limit, holding its theoretical
-- arrival time. Unlogged: a crash forgets recent counts, which only ever lets a little more
-- through, and updating it writes no WAL.
CREATE UNLOGGED TABLE rate_limit_buckets (
    bucket text PRIMARY KEY,
    tat    timestamptz NOT NULL
);
REVOKE ALL ON rate_limit_buckets FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_buckets TO app_service;
ALTER TABLE rate_limit_buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_limit_buckets FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON rate_limit_buckets TO app_service USING (true) WITH CHECK (true);

-- Takes one request from every limit that applies to it, or from none: the workspace's plan
-- limit, the key's own (at most the plan's), and the expensive routes' budget. Runs in a short
-- transaction of its own before the request's (same round trip), so a bucket's row lock is held
-- for microseconds, not for the request. Counts only a caller who may use the workspace (a
-- member, a client contact, or a valid key of it): a stranger cannot spend a workspace's budget.
-- Answers one row per limit: its name, quota per minute, requests left, seconds until it is
-- full again, and for the whole request whether it is allowed and else when to retry.
CREATE FUNCTION app.take_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid,
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

REVOKE EXECUTE ON FUNCTION app.create_api_key(uuid, uuid, text, public.member_role, text, bytea, timestamptz, integer),
    app.begin_key_request(uuid, bytea, text, uuid, uuid),
    app.take_rate_limit(uuid, uuid, bytea, uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.create_api_key(uuid, uuid, text, public.member_role, text, bytea, timestamptz, integer),
    app.begin_key_request(uuid, bytea, text, uuid, uuid),
    app.take_rate_limit(uuid, uuid, bytea, uuid, boolean) TO app_api;
ALTER FUNCTION app.create_api_key(uuid, uuid, text, public.member_role, text, bytea, timestamptz, integer) OWNER TO app_service;
ALTER FUNCTION app.begin_key_request(uuid, bytea, text, uuid, uuid) OWNER TO app_service;
ALTER FUNCTION app.take_rate_limit(uuid, uuid, bytea, uuid, boolean) OWNER TO app_service;

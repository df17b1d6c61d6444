-- A request's opening with fewer statements and no nested calls, and a contact's page without a
-- probe per row.
--
-- 1. The plan rule and the overrides rule become one-row SQL table functions that PostgreSQL
--    inlines into the statement that reads them (`app.plan_in_force`, `app.overrides_in_force`:
--    LANGUAGE sql, STABLE, no SECURITY DEFINER, no SET, fully qualified; a scalar SQL function
--    with a subquery is never inlined, a table function read in FROM is). Inside the SECURITY
--    DEFINER functions of a request's opening they cost an index probe, not a nested SECURITY
--    DEFINER call (a search_path save and restore, a PL/pgSQL frame and a statement of its own
--    each). `app.effective_plan` and `app.active_overrides` keep their signatures and grants and
--    read them, so each rule is written once. Only their owner (app_service) executes them:
--    every caller is a function app_service owns.
-- 2. `app.begin_request` answers a member in one statement (the probes and the settings
--    together; a member's project probe too, which was a statement of its own), and a non-member
--    in one more: their clients, the workspace's plan and overrides (whether the portal is open
--    to them) and whether the route's project is one of theirs. Before, a contact took a
--    statement, two nested calls, another statement and the settings' statement.
-- 3. What the opening learned is kept for the policies, as the workspace entered already is:
--    a contact's project checked visible is entered (`app.entered_project`), and the item
--    policies (milestones, deliverables, comments) accept that project's rows before probing
--    `projects` for each row. A page of one project's comments no longer makes one probe per
--    comment. The probe stays for every other row, so what a contact sees is unchanged.
-- 4. The rate limiter reads the plan through the inline rules too (every request pays it), and
--    so does an API key's opening.

CREATE FUNCTION app.plan_in_force(p_workspace uuid) RETURNS TABLE (plan_id text)
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce((
        SELECT s.plan_id FROM public.subscriptions s
        WHERE s.workspace_id = p_workspace
          AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND s.grace_until > pg_catalog.now()))
    ), 'free')
$$;
REVOKE EXECUTE ON FUNCTION app.plan_in_force(uuid) FROM PUBLIC;
ALTER FUNCTION app.plan_in_force(uuid) OWNER TO app_service;

CREATE FUNCTION app.overrides_in_force(p_workspace uuid) RETURNS TABLE (overrides jsonb)
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce((
        SELECT pg_catalog.jsonb_object_agg(o.entitlement, o.value)
        FROM (SELECT DISTINCT ON (x.entitlement) x.entitlement, x.value
              FROM public.entitlement_overrides x
              WHERE x.workspace_id = p_workspace AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now()
              ORDER BY x.entitlement, x.created_at DESC) o), '{}'::jsonb)
$$;
REVOKE EXECUTE ON FUNCTION app.overrides_in_force(uuid) FROM PUBLIC;
ALTER FUNCTION app.overrides_in_force(uuid) OWNER TO app_service;

CREATE OR REPLACE FUNCTION app.effective_plan(p_workspace uuid) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    RETURN (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f);
END
$$;

CREATE OR REPLACE FUNCTION app.active_overrides(p_workspace uuid) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    RETURN (SELECT f.overrides FROM app.overrides_in_force(p_workspace) f);
END
$$;

-- The project a client contact's request entered (checked visible to them by the opening), if it
-- was entered with the workspace: `app.entered_workspace()` holds the rule binding what was
-- entered to the current caller.
CREATE FUNCTION app.entered_project() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN app.entered_workspace() IS NOT NULL
                THEN nullif(pg_catalog.current_setting('app.entered_project', true), '')::uuid
           END
$$;
REVOKE EXECUTE ON FUNCTION app.entered_project() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.entered_project() TO app_api;

DROP POLICY milestones_select ON milestones;
CREATE POLICY milestones_select ON milestones FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR project_id = (SELECT app.entered_project())
    OR EXISTS (SELECT 1 FROM public.projects p
               WHERE p.id = milestones.project_id AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[]))
);

DROP POLICY deliverables_select ON deliverables;
CREATE POLICY deliverables_select ON deliverables FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND (project_id = (SELECT app.entered_project())
                            OR EXISTS (SELECT 1 FROM public.projects p
                                       WHERE p.id = deliverables.project_id
                                         AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[]))))
);

DROP POLICY comments_select ON comments;
CREATE POLICY comments_select ON comments FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND (project_id = (SELECT app.entered_project())
                            OR EXISTS (SELECT 1 FROM public.projects p
                                       WHERE p.id = comments.project_id
                                         AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[]))))
);

CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text,
                                             p_request_id text, p_workspace uuid, p_project uuid)
    RETURNS TABLE (member_role text, is_contact boolean, contact_plan text, contact_overrides jsonb,
                   project_visible boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    known boolean;
    role public.member_role;
    clients uuid[];
    suspended boolean;
    visible boolean;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'no caller identity' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- One statement for a member: whether the user row is known as it is (a known user with an
    -- unchanged e-mail writes nothing), the caller's role, the workspace's suspension, a member's
    -- access to the route's project, and the settings for a member or for nobody (empty entered
    -- settings enter nothing: a caller without access, or a route outside any workspace). The
    -- OFFSET 0 keeps each probe one subplan run once (a flattened subquery would copy it into
    -- every setting that reads it); the CASE runs the project probe only for a member.
    SELECT s.known, s.role, s.suspended, s.visible
    INTO known, role, suspended, visible
    FROM (SELECT r.known, r.role, r.suspended,
                 CASE WHEN p_project IS NULL THEN true
                      WHEN r.role IS NULL THEN NULL
                      ELSE EXISTS (SELECT 1 FROM public.projects p
                                   WHERE p.workspace_id = p_workspace AND p.id = p_project) END AS visible
          FROM (SELECT EXISTS (SELECT 1 FROM public.users u
                               WHERE u.id = p_user AND (p_email IS NULL OR u.email IS NOT DISTINCT FROM p_email)) AS known,
                       (SELECT m.role FROM public.workspace_members m
                        WHERE m.workspace_id = p_workspace AND m.user_id = p_user) AS role,
                       EXISTS (SELECT 1 FROM public.workspaces w
                               WHERE w.id = p_workspace AND w.suspended_at IS NOT NULL) AS suspended
                OFFSET 0) r
          OFFSET 0) s,
         LATERAL (SELECT pg_catalog.set_config('app.user_id', p_user::text, true),
                         pg_catalog.set_config('app.request_id', coalesce(p_request_id, ''), true),
                         pg_catalog.set_config('app.entered_user', p_user::text, true),
                         pg_catalog.set_config('app.entered_workspace', CASE WHEN s.role IS NOT NULL THEN p_workspace::text ELSE '' END, true),
                         pg_catalog.set_config('app.entered_role', coalesce(s.role::text, ''), true),
                         pg_catalog.set_config('app.entered_clients', '', true),
                         pg_catalog.set_config('app.entered_project', '', true)) settings;
    IF NOT known THEN
        INSERT INTO public.users AS u (id, issuer, subject, email)
        VALUES (p_user, p_issuer, p_subject, p_email)
        ON CONFLICT (id) DO UPDATE
            SET email = excluded.email, updated_at = now()
            WHERE excluded.email IS NOT NULL AND u.email IS DISTINCT FROM excluded.email;
    END IF;
    IF p_workspace IS NULL THEN
        RETURN;
    END IF;
    IF role IS NULL THEN
        -- A non-member: their client links, and for a contact the workspace's plan and overrides
        -- (whether the portal is open to them) and whether the route's project is one of their
        -- clients'. The inline rules' subqueries run only when a CASE reaches them (for a
        -- stranger, who has no client links, the plan and overrides stay NULL).
        SELECT pg_catalog.array_agg(c.client_id),
               CASE WHEN pg_catalog.count(*) > 0 THEN (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f) END,
               CASE WHEN pg_catalog.count(*) > 0 THEN (SELECT f.overrides FROM app.overrides_in_force(p_workspace) f) END,
               p_project IS NULL OR coalesce(pg_catalog.bool_or(p.id IS NOT NULL), false)
        INTO clients, contact_plan, contact_overrides, visible
        FROM public.client_contacts c
        LEFT JOIN public.projects p
               ON p_project IS NOT NULL AND p.id = p_project AND p.workspace_id = p_workspace
              AND p.client_id = c.client_id
        WHERE c.workspace_id = p_workspace AND c.user_id = p_user;
        IF clients IS NULL THEN
            is_contact := false;
            project_visible := false;
            RETURN NEXT;
            RETURN;
        END IF;
        -- A contact enters the workspace with their clients, and a project checked visible to
        -- them, for the item policies.
        PERFORM pg_catalog.set_config('app.entered_workspace', p_workspace::text, true),
                pg_catalog.set_config('app.entered_clients', clients::text, true),
                pg_catalog.set_config('app.entered_project', CASE WHEN visible THEN coalesce(p_project::text, '') ELSE '' END, true);
    END IF;
    member_role := role::text;
    is_contact := clients IS NOT NULL;
    project_visible := visible;
    -- A suspended workspace is read, never written: the rest of the request's transaction is
    -- read-only, so every write path fails the same way (and the API answers 403
    -- workspace_suspended).
    IF suspended THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    RETURN NEXT;
END
$$;

-- An API key's opening: its plan, overrides and project check in one statement through the
-- inline rules (two nested calls and a statement before); otherwise unchanged.
CREATE OR REPLACE FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text, p_workspace uuid,
                                                 p_project uuid)
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
    SELECT f.plan_id, o.overrides,
           p_project IS NULL OR EXISTS (SELECT 1 FROM public.projects p
                                        WHERE p.workspace_id = k.workspace_id AND p.id = p_project)
    INTO key_plan, key_overrides, project_visible
    FROM app.plan_in_force(k.workspace_id) f, app.overrides_in_force(k.workspace_id) o;
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

-- Unchanged but for the plan, read through the inline rule (see 1. above).
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
    bucket_key text;
BEGIN
    IF p_key IS NULL AND NOT (p_expensive AND ws IS NOT NULL) THEN
        -- One bucket: the workspace's (a member or client contact of it), or a person's own
        -- outside any workspace (at the free plan's rate). A stranger spends nothing.
        SELECT CASE WHEN ws IS NOT NULL AND EXISTS (
                        SELECT 1 FROM public.entitlement_overrides x
                        WHERE x.workspace_id = ws AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now())
                    THEN app.effective_limit(ws, 'requests_per_minute', p.requests_per_minute)
                    ELSE p.requests_per_minute END
        INTO plan_limit
        FROM public.plans p
        WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(ws) f)
          AND p_user IS NOT NULL
          AND (ws IS NULL
               OR EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.workspace_id = ws AND m.user_id = p_user)
               OR EXISTS (SELECT 1 FROM public.client_contacts c WHERE c.workspace_id = ws AND c.user_id = p_user));
        IF NOT FOUND THEN
            RETURN;
        END IF;
        rate_policy := CASE WHEN ws IS NULL THEN 'user' ELSE 'workspace' END;
        bucket_key := rate_policy || ':' || coalesce(ws, p_user);
        quota := plan_limit;
        -- At least a microsecond (interval precision), whatever the limit.
        emission := greatest(window_length / plan_limit, interval '1 microsecond');
        -- The row lock ON CONFLICT takes is held to this short transaction's end; the new
        -- arrival time is written only when it is within the window (the request is allowed).
        -- The bucket table is unlogged, so this transaction writes no WAL and its commit waits
        -- for no flush (pg_stat_wal: no sync per commit) without setting synchronous_commit.
        INSERT INTO public.rate_limit_buckets AS r (bucket, tat)
        SELECT bucket_key, pg_catalog.now() + emission
        WHERE emission <= window_length
        ON CONFLICT (bucket) DO UPDATE SET tat = greatest(r.tat, pg_catalog.now()) + emission
            WHERE greatest(r.tat, pg_catalog.now()) + emission <= pg_catalog.now() + window_length
        RETURNING r.tat INTO next_tat;
        allowed := FOUND;
        IF allowed THEN
            retry_after := 0;
        ELSE
            SELECT greatest(r.tat, pg_catalog.now()) INTO next_tat FROM public.rate_limit_buckets r
            WHERE r.bucket = bucket_key;
            next_tat := coalesce(next_tat, pg_catalog.now());
            retry_after := pg_catalog.ceil(extract(epoch FROM next_tat + emission - pg_catalog.now() - window_length))::integer;
        END IF;
        remaining := greatest(0, pg_catalog.floor(extract(epoch FROM (window_length - greatest(next_tat - pg_catalog.now(), interval '0')))
                                                  / extract(epoch FROM emission)))::integer;
        reset_seconds := pg_catalog.ceil(extract(epoch FROM greatest(next_tat - pg_catalog.now(), interval '0')))::integer;
        RETURN NEXT;
        RETURN;
    END IF;

    -- Several buckets (a key's, an expensive route's): all or nothing, as before. A key's
    -- last_used_at is a logged write, whose commit need not wait for a flush either.
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
    ELSIF NOT (
        EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.workspace_id = ws AND m.user_id = p_user)
        OR EXISTS (SELECT 1 FROM public.client_contacts c WHERE c.workspace_id = ws AND c.user_id = p_user)) THEN
        RETURN;
    END IF;
    SELECT p.requests_per_minute, p.expensive_per_minute INTO plan_limit, expensive_limit
    FROM public.plans p WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(ws) f);
    -- One index probe per request; the overrides are read only for a workspace that has one.
    IF ws IS NOT NULL AND EXISTS (
        SELECT 1 FROM public.entitlement_overrides x
        WHERE x.workspace_id = ws AND x.revoked_at IS NULL AND x.expires_at > now()) THEN
        plan_limit := app.effective_limit(ws, 'requests_per_minute', plan_limit);
        expensive_limit := app.effective_limit(ws, 'expensive_per_minute', expensive_limit);
    END IF;
    names := ARRAY['workspace'];
    buckets := ARRAY['workspace:' || ws];
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

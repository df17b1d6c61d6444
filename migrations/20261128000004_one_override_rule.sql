-- One override rule, read inline wherever a single entitlement's override decides something.
--
-- "The override in force for an entitlement" (the latest one granted that is neither revoked nor
-- expired) lived in `app.effective_limit`, a PL/pgSQL SECURITY DEFINER function: every caller paid
-- a nested call (a search_path save and restore, a PL/pgSQL frame and a statement of its own).
-- It becomes `app.override_in_force(workspace, entitlement)`, a one-row SQL table function that
-- PostgreSQL inlines into the statement reading it, like `app.plan_in_force` (LANGUAGE sql,
-- STABLE, no SECURITY DEFINER, no SET, fully qualified; only its owner executes it).
--
-- 1. `app.limit_in_force(workspace, entitlement, plan limit)`, inlined too, holds "an override
--    in force wins, even one without a value (no limit); otherwise the plan's limit".
--    `app.effective_limit` keeps its signature and grants (the plan-limit triggers and the AI
--    quota call it) and reads it. `app.overrides_in_force` (every entitlement's override, for
--    the plan an API key or the application reads), which held its own copy of the rule, reads
--    `app.override_in_force` too.
-- 2. The rate limiter reads the limits inline: a workspace with any override paid an existence
--    probe and then a nested call per request for its request budget (two for an expensive
--    route); now it pays one index probe per budget, in the statement that reads the plan.
-- 3. A client contact's opening reads the one override the portal's gate decides on
--    (`client_portal`) instead of aggregating every override of the workspace (a sort, a unique
--    and an aggregate initialised on every call). The application reads only `client_portal`
--    from what the contact's opening answers (`Access::from_entry`).

CREATE FUNCTION app.override_in_force(p_workspace uuid, p_entitlement text) RETURNS TABLE (value integer)
    LANGUAGE sql STABLE
AS $$
    SELECT x.value FROM public.entitlement_overrides x
    WHERE x.workspace_id = p_workspace AND x.entitlement = p_entitlement
      AND x.revoked_at IS NULL AND x.expires_at > pg_catalog.now()
    ORDER BY x.created_at DESC LIMIT 1
$$;
REVOKE EXECUTE ON FUNCTION app.override_in_force(uuid, text) FROM PUBLIC;
ALTER FUNCTION app.override_in_force(uuid, text) OWNER TO app_service;

-- Every entitlement's override in force, read through the same rule: the entitlements with an
-- unrevoked grant, each answered by `app.override_in_force` (an expired grant answers nothing).
CREATE OR REPLACE FUNCTION app.overrides_in_force(p_workspace uuid) RETURNS TABLE (overrides jsonb)
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce((
        SELECT pg_catalog.jsonb_object_agg(e.entitlement, o.value)
        FROM (SELECT DISTINCT x.entitlement FROM public.entitlement_overrides x
              WHERE x.workspace_id = p_workspace AND x.revoked_at IS NULL) e,
             LATERAL app.override_in_force(p_workspace, e.entitlement) o), '{}'::jsonb)
$$;

-- A limit in force: an override in force wins, even one without a value (no limit); otherwise
-- the plan's limit. Inlined like the rule it reads.
CREATE FUNCTION app.limit_in_force(p_workspace uuid, p_entitlement text, p_plan_limit integer)
    RETURNS TABLE (value integer)
    LANGUAGE sql STABLE
AS $$
    SELECT CASE WHEN o.overridden THEN o.value ELSE p_plan_limit END
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (SELECT true AS overridden, x.value
                       FROM app.override_in_force(p_workspace, p_entitlement) x) o ON true
$$;
REVOKE EXECUTE ON FUNCTION app.limit_in_force(uuid, text, integer) FROM PUBLIC;
ALTER FUNCTION app.limit_in_force(uuid, text, integer) OWNER TO app_service;

CREATE OR REPLACE FUNCTION app.effective_limit(p_workspace uuid, p_entitlement text, p_plan_limit integer)
    RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    RETURN (SELECT l.value FROM app.limit_in_force(p_workspace, p_entitlement, p_plan_limit) l);
END
$$;

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
        -- A non-member: their client links, and for a contact the workspace's plan and its
        -- client_portal override, if any (whether the portal is open to them) and whether the route's project is one of their
        -- clients'. The inline rules' subqueries run only when a CASE reaches them (for a
        -- stranger, who has no client links, the plan and overrides stay NULL).
        SELECT pg_catalog.array_agg(c.client_id),
               CASE WHEN pg_catalog.count(*) > 0 THEN (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f) END,
               CASE WHEN pg_catalog.count(*) > 0
                    THEN (SELECT pg_catalog.jsonb_build_object('client_portal', o.value)
                          FROM app.override_in_force(p_workspace, 'client_portal') o) END,
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

-- Unchanged but for the limits, read through the inline rule (see 2. above).
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
        SELECT (SELECT l.value FROM app.limit_in_force(ws, 'requests_per_minute', p.requests_per_minute) l)
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
    SELECT (SELECT l.value FROM app.limit_in_force(ws, 'requests_per_minute', p.requests_per_minute) l),
           (SELECT l.value FROM app.limit_in_force(ws, 'expensive_per_minute', p.expensive_per_minute) l)
    INTO plan_limit, expensive_limit
    FROM public.plans p
    WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(ws) f);
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

-- The two statements that open every API request, with fewer statements inside them.
--
-- Inside a PL/pgSQL function each SQL statement is a separate executor start and finish (plan
-- lookup, snapshot, expression setup): on a warm request that overhead, not the index probes, was
-- most of the cost of `app.take_rate_limit` and `app.begin_request` (perf, pgbench). Both now
-- answer exactly what they answered before, in fewer statements:
--
-- * `app.take_rate_limit`: the common case (one bucket: a person on a standard route) is one
--   statement for "may this caller spend this budget, and what is it" and one conditional
--   upsert of the bucket (GCRA: the new theoretical arrival time is written only when it is
--   within the window, under the row's lock, so N + k concurrent requests at a limit of N still
--   let exactly N through). Several buckets (an API key, an expensive route) keep the general
--   all-or-nothing loop.
-- * `app.begin_request`: one statement for the user row check, the caller's role and the
--   workspace's suspension, one for the transaction-local settings; the rest only when needed (a
--   non-member's client links, a new user or e-mail, a project to check, a contact's plan).
--   Merging further does not pay: every subquery of a statement is set up when it starts, even
--   one a CASE never reaches, so a member would pay for the client lookup.

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
        WHERE p.id = coalesce(app.effective_plan(ws), 'free')
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
    FROM public.plans p WHERE p.id = coalesce(app.effective_plan(ws), 'free');
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
    entered boolean;
BEGIN
    IF p_user IS NULL THEN
        RAISE EXCEPTION 'no caller identity' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Whether the user row is known as it is (a known user with an unchanged e-mail writes
    -- nothing), the caller's role in the workspace and whether it is suspended; a non-member's
    -- client links after (a member reads the whole workspace, and never pays for that lookup).
    SELECT EXISTS (SELECT 1 FROM public.users u
                   WHERE u.id = p_user AND (p_email IS NULL OR u.email IS NOT DISTINCT FROM p_email)),
           (SELECT m.role FROM public.workspace_members m WHERE m.workspace_id = p_workspace AND m.user_id = p_user),
           EXISTS (SELECT 1 FROM public.workspaces w WHERE w.id = p_workspace AND w.suspended_at IS NOT NULL)
    INTO known, role, suspended;
    IF role IS NULL AND p_workspace IS NOT NULL THEN
        SELECT pg_catalog.array_agg(c.client_id) INTO clients FROM public.client_contacts c
        WHERE c.workspace_id = p_workspace AND c.user_id = p_user;
    END IF;
    entered := role IS NOT NULL OR clients IS NOT NULL;
    -- The identity, and the workspace entered (empty settings enter nothing: a caller without
    -- access, or a route outside any workspace).
    PERFORM pg_catalog.set_config('app.user_id', p_user::text, true),
            pg_catalog.set_config('app.request_id', coalesce(p_request_id, ''), true),
            pg_catalog.set_config('app.entered_user', p_user::text, true),
            pg_catalog.set_config('app.entered_workspace', CASE WHEN entered THEN p_workspace::text ELSE '' END, true),
            pg_catalog.set_config('app.entered_role', coalesce(role::text, ''), true),
            pg_catalog.set_config('app.entered_clients', coalesce(clients::text, ''), true);
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
    member_role := role::text;
    is_contact := clients IS NOT NULL;
    IF NOT entered THEN
        project_visible := false;
        RETURN NEXT;
        RETURN;
    END IF;
    IF role IS NULL THEN
        contact_plan := app.effective_plan(p_workspace);
        contact_overrides := app.active_overrides(p_workspace);
    END IF;
    IF p_project IS NULL THEN
        project_visible := true;
    ELSE
        project_visible := EXISTS (
            SELECT 1 FROM public.projects p
            WHERE p.workspace_id = p_workspace AND p.id = p_project
              AND (role IS NOT NULL OR p.client_id = ANY (clients)));
    END IF;
    -- A suspended workspace is read, never written: the rest of the request's transaction is
    -- read-only, so every write path fails the same way (and the API answers 403
    -- workspace_suspended).
    IF suspended THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    RETURN NEXT;
END
$$;

-- Baseline 5/7: how a request is let in and what it leaves behind. API keys (a workspace's
-- machine principals), the rate-limit buckets, the request opening (app.begin_request and
-- app.begin_key_request, the first statement of every API request), and the audit log.
--
-- The opening enters the workspace the route names: it reads the caller's role and client links
-- there once, answers them to the application and keeps them as transaction-local settings
-- bound to the caller's id, which the policy helpers read. The rate limiter is GCRA over one row
-- per bucket, written only when a request is admitted. Every change to tenant data writes one
-- audit row from a trigger in the same transaction, into an append-only, per-workspace hash
-- chain. docs/tenancy.md, docs/api.md and docs/activity-and-audit.md have the details.

-- Tables

CREATE TABLE public.audit_log (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    workspace_id uuid NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    seq bigint NOT NULL,
    table_name text,
    row_id text,
    changes jsonb,
    request_id text,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_position_key UNIQUE (workspace_id, seq)
);

-- The head of each workspace's chain: the last position and hash. Locked by the insert that
-- extends it, so a workspace's audited writes take their positions one after another.
CREATE TABLE public.audit_chain_heads (
    workspace_id uuid NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT audit_chain_heads_pkey PRIMARY KEY (workspace_id)
);

-- A key acts as its own principal: it has a user row (so what it creates names it, as
-- `created_by` or a comment's author) but no membership; its role comes from here.
CREATE TABLE public.api_keys (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    name text NOT NULL,
    role public.member_role NOT NULL,
    display_prefix text NOT NULL,
    secret_hash bytea NOT NULL,
    requests_per_minute integer,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT api_keys_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT api_keys_requests_per_minute CHECK ((requests_per_minute > 0)),
    CONSTRAINT api_keys_role CHECK ((role <> 'owner'::public.member_role)),
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_secret_hash_key UNIQUE (secret_hash),
    CONSTRAINT api_keys_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT api_keys_id_fkey FOREIGN KEY (id) REFERENCES public.users(id) ON DELETE CASCADE,
    CONSTRAINT api_keys_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX api_keys_workspace_idx ON public.api_keys USING btree (workspace_id, id DESC);

CREATE UNLOGGED TABLE public.rate_limit_buckets (
    bucket text NOT NULL,
    tat timestamp with time zone NOT NULL,
    CONSTRAINT rate_limit_buckets_pkey PRIMARY KEY (bucket)
);

-- Functions

CREATE FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text, p_request_id text, p_workspace uuid, p_project uuid) RETURNS TABLE(member_role text, is_contact boolean, contact_plan text, contact_overrides jsonb, project_visible boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
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
ALTER FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text, p_request_id text, p_workspace uuid, p_project uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text, p_request_id text, p_workspace uuid, p_project uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text, p_request_id text, p_workspace uuid, p_project uuid) TO app_api;

-- The hash of one audit row: its predecessor's hash and every field, in a fixed text form (UTC
-- time to the microsecond, jsonb's normalized text, unit separators between fields).
CREATE FUNCTION app.audit_hash(prev bytea, r public.audit_log) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO ''
    AS $$
    SELECT pg_catalog.sha256(prev || pg_catalog.convert_to(pg_catalog.concat_ws(pg_catalog.chr(31),
        r.workspace_id::text, r.seq::text,
        pg_catalog.to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        r.actor, r.action, coalesce(r.table_name, ''), coalesce(r.row_id, ''),
        coalesce(r.changes::text, ''), coalesce(r.details::text, ''), coalesce(r.request_id, '')), 'UTF8'))
$$;
REVOKE ALL ON FUNCTION app.audit_hash(prev bytea, r public.audit_log) FROM PUBLIC;
GRANT ALL ON FUNCTION app.audit_hash(prev bytea, r public.audit_log) TO app_audit;
GRANT ALL ON FUNCTION app.audit_hash(prev bytea, r public.audit_log) TO app_service;

-- Extends the workspace's chain with the row being inserted (every insert into audit_log goes
-- through here, the workers' own entries included): its position, its predecessor's hash, its
-- hash.
CREATE FUNCTION app.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    head public.audit_chain_heads;
BEGIN
    -- The workspace row first, as the plan-limit triggers and the billing worker take it, so
    -- every audited transaction takes the two locks in the same order and none waits on another
    -- crosswise. (A deleted workspace's row is gone: nothing to lock.)
    PERFORM 1 FROM public.workspaces w WHERE w.id = NEW.workspace_id FOR NO KEY UPDATE;
    INSERT INTO public.audit_chain_heads (workspace_id, seq, hash) VALUES (NEW.workspace_id, 0, '\x')
    ON CONFLICT (workspace_id) DO NOTHING;
    SELECT * INTO head FROM public.audit_chain_heads h WHERE h.workspace_id = NEW.workspace_id FOR UPDATE;
    NEW.created_at := now();
    NEW.request_id := coalesce(NEW.request_id, nullif(pg_catalog.current_setting('app.request_id', true), ''));
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.hash := app.audit_hash(head.hash, NEW);
    UPDATE public.audit_chain_heads h SET seq = NEW.seq, hash = NEW.hash WHERE h.workspace_id = NEW.workspace_id;
    RETURN NEW;
END
$$;
ALTER FUNCTION app.audit_chain() OWNER TO app_audit;
REVOKE ALL ON FUNCTION app.audit_chain() FROM PUBLIC;

CREATE FUNCTION app.audit_log_is_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION app.audit_log_is_append_only() FROM PUBLIC;

-- A head moves only when an entry is appended (the chain trigger, running as app_audit).
CREATE FUNCTION app.audit_head_moves_by_appending() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
BEGIN
    IF current_user <> 'app_audit' THEN
        RAISE EXCEPTION 'an audit chain head moves only by appending' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.audit_head_moves_by_appending() FROM PUBLIC;

-- One audit row per changed row of a tenant table. Arguments: the key column(s) naming the row
-- (comma-separated), then any columns never to be recorded (secrets). An UPDATE that changes
-- nothing is not recorded. Rows deleted by a cascade (a project's items when the project is
-- deleted, everything when a workspace is) are covered by the audited delete that caused them.
CREATE FUNCTION app.audit_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN pg_catalog.to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN pg_catalog.to_jsonb(NEW) END;
    subject jsonb := coalesce(new_row, old_row);
    hidden text[] := TG_ARGV[1:];
    recorded jsonb;
BEGIN
    IF TG_OP = 'DELETE' AND pg_catalog.pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT pg_catalog.jsonb_object_agg(n.key, pg_catalog.jsonb_build_object('old', o.value, 'new', n.value))
        INTO recorded
        FROM pg_catalog.jsonb_each(new_row) n JOIN pg_catalog.jsonb_each(old_row) o ON o.key = n.key
        WHERE n.value IS DISTINCT FROM o.value AND n.key <> ALL (hidden);
        IF recorded IS NULL THEN
            RETURN NULL;
        END IF;
    ELSE
        SELECT pg_catalog.jsonb_object_agg(f.key, pg_catalog.jsonb_build_object(
                   CASE TG_OP WHEN 'INSERT' THEN 'new' ELSE 'old' END, f.value))
        INTO recorded
        FROM pg_catalog.jsonb_each(subject) f
        WHERE f.key <> ALL (hidden);
    END IF;
    INSERT INTO public.audit_log (workspace_id, actor, action, table_name, row_id, changes, request_id)
    VALUES (
        coalesce(subject ->> 'workspace_id', subject ->> 'id')::uuid,
        app.current_actor(),
        TG_TABLE_NAME || '.' || pg_catalog.lower(TG_OP),
        TG_TABLE_NAME,
        (SELECT pg_catalog.string_agg(subject ->> k, '/') FROM pg_catalog.unnest(pg_catalog.string_to_array(TG_ARGV[0], ',')) k),
        recorded,
        nullif(pg_catalog.current_setting('app.request_id', true), ''));
    RETURN NULL;
END
$$;
ALTER FUNCTION app.audit_change() OWNER TO app_audit;
REVOKE ALL ON FUNCTION app.audit_change() FROM PUBLIC;

-- Verifies a workspace's chain from its first row: positions without gaps, each row's
-- predecessor hash, each row's own hash, and the head. Answers how many rows were checked and
-- the first broken link (NULL when the chain is whole).
CREATE FUNCTION app.verify_audit_chain(p_workspace uuid) RETURNS TABLE(checked bigint, first_broken_seq bigint, first_broken_id uuid, problem text)
    LANGUAGE plpgsql STABLE
    SET search_path TO ''
    AS $$
DECLARE
    r public.audit_log;
    expected_seq bigint := 0;
    prev bytea := '\x';
    head public.audit_chain_heads;
BEGIN
    checked := 0;
    FOR r IN SELECT * FROM public.audit_log a WHERE a.workspace_id = p_workspace ORDER BY a.seq LOOP
        expected_seq := expected_seq + 1;
        problem := CASE
            WHEN r.seq <> expected_seq THEN 'position ' || expected_seq || ' is missing'
            WHEN r.prev_hash <> prev THEN 'does not follow the previous row'
            WHEN r.hash <> app.audit_hash(prev, r) THEN 'its content does not match its hash'
        END;
        IF problem IS NOT NULL THEN
            first_broken_seq := r.seq;
            first_broken_id := r.id;
            RETURN NEXT;
            RETURN;
        END IF;
        checked := checked + 1;
        prev := r.hash;
    END LOOP;
    SELECT * INTO head FROM public.audit_chain_heads h WHERE h.workspace_id = p_workspace;
    IF coalesce(head.seq, 0) <> expected_seq OR coalesce(head.hash, '\x') <> prev THEN
        first_broken_seq := expected_seq + 1;
        problem := 'rows after position ' || expected_seq || ' are missing';
    END IF;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION app.verify_audit_chain(p_workspace uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.verify_audit_chain(p_workspace uuid) TO app_service;

-- Keys are issued by people: a key that could mint keys would hand out authority that outlives
-- its own (revoking it would leave its children working).
CREATE FUNCTION app.create_api_key(p_id uuid, p_workspace uuid, p_name text, p_role public.member_role, p_display_prefix text, p_secret_hash bytea, p_expires_at timestamp with time zone, p_requests_per_minute integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF nullif(pg_catalog.current_setting('app.api_key_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'an API key cannot create API keys' USING ERRCODE = 'insufficient_privilege';
    END IF;
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
ALTER FUNCTION app.create_api_key(p_id uuid, p_workspace uuid, p_name text, p_role public.member_role, p_display_prefix text, p_secret_hash bytea, p_expires_at timestamp with time zone, p_requests_per_minute integer) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.create_api_key(p_id uuid, p_workspace uuid, p_name text, p_role public.member_role, p_display_prefix text, p_secret_hash bytea, p_expires_at timestamp with time zone, p_requests_per_minute integer) FROM PUBLIC;
GRANT ALL ON FUNCTION app.create_api_key(p_id uuid, p_workspace uuid, p_name text, p_role public.member_role, p_display_prefix text, p_secret_hash bytea, p_expires_at timestamp with time zone, p_requests_per_minute integer) TO app_api;

-- Whether a key's creator still holds at least the key's role in its workspace (roles are
-- declared from the highest down, so a higher role sorts first).
CREATE FUNCTION app.key_creator_still_entitled(p_workspace uuid, p_creator uuid, p_role public.member_role) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
    SELECT EXISTS (SELECT 1 FROM public.workspace_members m
                   WHERE m.workspace_id = p_workspace AND m.user_id = p_creator AND m.role <= p_role)
$$;
ALTER FUNCTION app.key_creator_still_entitled(p_workspace uuid, p_creator uuid, p_role public.member_role) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.key_creator_still_entitled(p_workspace uuid, p_creator uuid, p_role public.member_role) FROM PUBLIC;

CREATE FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text, p_workspace uuid, p_project uuid) RETURNS TABLE(key_state text, key_workspace uuid, member_role text, key_plan text, key_overrides jsonb, project_visible boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    k public.api_keys;
BEGIN
    SELECT * INTO k FROM public.api_keys a WHERE a.id = p_key AND a.secret_hash = p_secret_hash;
    key_state := CASE
        WHEN k.id IS NULL THEN 'unknown'
        WHEN k.revoked_at IS NOT NULL THEN 'revoked'
        WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired'
        WHEN NOT app.key_creator_still_entitled(k.workspace_id, k.created_by, k.role) THEN 'creator_lacks_role'
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
            pg_catalog.set_config('app.entered_clients', '', true),
            pg_catalog.set_config('app.entered_project', '', true);
    RETURN NEXT;
END
$$;
ALTER FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text, p_workspace uuid, p_project uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text, p_workspace uuid, p_project uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text, p_workspace uuid, p_project uuid) TO app_api;

CREATE FUNCTION app.take_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean) RETURNS TABLE(rate_policy text, quota integer, remaining integer, reset_seconds integer, allowed boolean, retry_after integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
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
    IF p_user IS NULL THEN
        RETURN;
    END IF;
    -- A person who is not a member spends nothing of the team's budget: a client contact counts
    -- against their own (the personal bucket, at the free plan's rate), and only while the
    -- workspace's plan has the portal; a stranger, or a contact refused for the plan, spends
    -- nothing at all.
    IF p_key IS NULL AND ws IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.workspace_id = ws AND m.user_id = p_user) THEN
        IF NOT EXISTS (SELECT 1 FROM public.client_contacts c WHERE c.workspace_id = ws AND c.user_id = p_user)
           OR NOT (SELECT f.enabled FROM app.feature_in_force(ws, 'client_portal') f) THEN
            RETURN;
        END IF;
        ws := NULL;
    END IF;
    IF p_key IS NULL AND NOT (p_expensive AND ws IS NOT NULL) THEN
        -- One bucket: the workspace's (a member of it), or a person's own (outside any
        -- workspace, or a client contact) at the free plan's rate.
        SELECT (SELECT l.value FROM app.limit_in_force(ws, 'requests_per_minute', p.requests_per_minute) l)
        INTO plan_limit
        FROM public.plans p
        WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(ws) f);
        rate_policy := CASE WHEN ws IS NULL THEN 'user' ELSE 'workspace' END;
        bucket_key := rate_policy || ':' || coalesce(ws, p_user);
        quota := plan_limit;
        -- At least a microsecond (interval precision), whatever the limit.
        emission := greatest(window_length / plan_limit, interval '1 microsecond');
        -- The row lock ON CONFLICT takes is held to this short transaction's end; the new
        -- arrival time is written only when it is within the window (the request is allowed).
        -- The bucket table is unlogged, so this transaction writes no WAL and its commit waits
        -- for no flush.
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

    -- Several buckets (a key's, an expensive route's): all or nothing. A key's last_used_at is a
    -- logged write, whose commit need not wait for a flush.
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    IF p_key IS NOT NULL THEN
        -- Only a key that works is counted: one refused (revoked, expired, its creator gone or
        -- demoted, its plan without API access) spends nothing.
        SELECT a.workspace_id, a.requests_per_minute INTO ws, key_limit FROM public.api_keys a
        WHERE a.id = p_key AND a.secret_hash = p_secret_hash AND a.revoked_at IS NULL
          AND (a.expires_at IS NULL OR a.expires_at > now())
          AND app.key_creator_still_entitled(a.workspace_id, a.created_by, a.role)
          AND (SELECT f.enabled FROM app.feature_in_force(a.workspace_id, 'api_access') f);
        IF NOT FOUND OR (p_workspace IS NOT NULL AND p_workspace <> ws) THEN
            RETURN;
        END IF;
        UPDATE public.api_keys a SET last_used_at = now()
        WHERE a.id = p_key AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute');
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
ALTER FUNCTION app.take_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.take_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION app.take_rate_limit(p_user uuid, p_key uuid, p_secret_hash bytea, p_workspace uuid, p_expensive boolean) TO app_api;

-- The workspace an API key belongs to, by its id alone: only to know which workspace to enter
-- (entering checks the key's secret).
CREATE FUNCTION app.api_key_workspace(p_key uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT k.workspace_id FROM public.api_keys k WHERE k.id = p_key
$$;
ALTER FUNCTION app.api_key_workspace(p_key uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.api_key_workspace(p_key uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.api_key_workspace(p_key uuid) TO app_api;

-- Triggers

CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.ai_quota_usage FOR EACH ROW EXECUTE FUNCTION app.audit_change('period');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.ai_runs FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'input', 'output');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.api_keys FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'secret_hash', 'last_used_at');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.checkout_sessions FOR EACH ROW EXECUTE FUNCTION app.audit_change('stripe_session_id', 'url');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.client_contacts FOR EACH ROW EXECUTE FUNCTION app.audit_change('client_id,user_id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.clients FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.comments FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.deliverables FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.entitlement_overrides FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.milestones FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.projects FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.subscription_cancellations FOR EACH ROW EXECUTE FUNCTION app.audit_change('stripe_subscription_id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.subscriptions FOR EACH ROW EXECUTE FUNCTION app.audit_change('workspace_id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.usage_records FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION app.audit_change('user_id');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.workspaces FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');

CREATE TRIGGER audit_chain_heads_append_only BEFORE DELETE ON public.audit_chain_heads FOR EACH ROW EXECUTE FUNCTION app.audit_log_is_append_only();
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON public.audit_chain_heads FOR EACH STATEMENT EXECUTE FUNCTION app.audit_log_is_append_only();
CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION app.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION app.audit_log_is_append_only();

CREATE TRIGGER audit_chain_heads_move BEFORE UPDATE ON public.audit_chain_heads FOR EACH ROW EXECUTE FUNCTION app.audit_head_moves_by_appending();

CREATE TRIGGER audit_log_chain BEFORE INSERT ON public.audit_log FOR EACH ROW EXECUTE FUNCTION app.audit_chain();

-- Row-level security, policies and grants

ALTER TABLE public.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_select ON public.api_keys FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY api_keys_update ON public.api_keys FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.api_keys TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.api_keys TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.api_keys TO app_service;
GRANT SELECT(id) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(id) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(name) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(name) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(role) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(role) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(display_prefix) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(display_prefix) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(requests_per_minute) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(requests_per_minute) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(created_by) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(created_by) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(created_at) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(last_used_at) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(last_used_at) ON TABLE public.api_keys TO app_exporter;
GRANT SELECT(expires_at) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(expires_at) ON TABLE public.api_keys TO app_exporter;
GRANT UPDATE(revoked_at) ON TABLE public.api_keys TO app_api;
GRANT SELECT(revoked_at) ON TABLE public.api_keys TO app_admin;
GRANT SELECT(revoked_at) ON TABLE public.api_keys TO app_exporter;

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_append ON public.audit_log FOR INSERT TO app_audit WITH CHECK (true);
CREATE POLICY audit_log_select ON public.audit_log FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY billing_append ON public.audit_log FOR INSERT TO app_billing WITH CHECK (true);
CREATE POLICY service_all ON public.audit_log TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.audit_log TO app_api;
GRANT SELECT,INSERT ON TABLE public.audit_log TO app_service;
GRANT INSERT ON TABLE public.audit_log TO app_billing;
GRANT INSERT ON TABLE public.audit_log TO app_audit;
GRANT SELECT,INSERT ON TABLE public.audit_log TO app_admin;
GRANT SELECT(id) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(actor) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(action) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(details) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(seq) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(table_name) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(row_id) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(changes) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(request_id) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(prev_hash) ON TABLE public.audit_log TO app_exporter;
GRANT SELECT(hash) ON TABLE public.audit_log TO app_exporter;

ALTER TABLE public.audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_writer ON public.audit_chain_heads TO app_audit USING (true) WITH CHECK (true);
CREATE POLICY service_read ON public.audit_chain_heads FOR SELECT TO app_service USING (true);
GRANT SELECT,INSERT,UPDATE ON TABLE public.audit_chain_heads TO app_audit;
GRANT SELECT ON TABLE public.audit_chain_heads TO app_service;
GRANT SELECT ON TABLE public.audit_chain_heads TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.audit_chain_heads TO app_exporter;
GRANT SELECT(seq) ON TABLE public.audit_chain_heads TO app_exporter;
GRANT SELECT(hash) ON TABLE public.audit_chain_heads TO app_exporter;

ALTER TABLE public.rate_limit_buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.rate_limit_buckets FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON public.rate_limit_buckets TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rate_limit_buckets TO app_service;
GRANT SELECT ON TABLE public.rate_limit_buckets TO app_admin;

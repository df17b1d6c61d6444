-- Identity edges: who a caller is, and what a grant still allows, decided where the rows are.
--
-- 1. The plans' features are in the table beside their limits (the catalog test keeps them in
--    step with `shared::plans`), and `app.feature_in_force(workspace, feature)` decides, inline,
--    whether a workspace has one now: an override in force wins, else its plan's.
-- 2. A client contact of a workspace whose plan lost the portal sees nothing of it: the stored
--    lookups (one's workspace list, anything read outside an entered workspace) leave that
--    workspace out.
-- 3. An API key works only while its creator is still a member with at least the key's role;
--    a key cannot create keys; the rate limiter refuses to count a key that no longer works.
-- 4. The rate limiter counts a contact against their own budget, never the team's, and a
--    request refused for the caller's own reasons (a stranger, a contact without the portal, a
--    dead key, a plan without API access) spends nothing.
-- 5. Members are added by invitation only: the lookup of a user by e-mail goes.
-- 6. A WebSocket connection remembers when its token expires; it then receives nothing and can
--    subscribe to nothing.
-- 7. The identity columns are bounded as the verifier bounds the claims.

ALTER TABLE plans
    ADD COLUMN ai_tools      boolean NOT NULL DEFAULT false,
    ADD COLUMN client_portal boolean NOT NULL DEFAULT false,
    ADD COLUMN api_access    boolean NOT NULL DEFAULT false,
    ADD COLUMN webhooks      boolean NOT NULL DEFAULT false;
UPDATE plans SET ai_tools = true, client_portal = true, webhooks = true, api_access = (id <> 'pro')
WHERE id IN ('pro', 'team', 'studio');

CREATE FUNCTION app.feature_in_force(p_workspace uuid, p_feature text) RETURNS TABLE (enabled boolean)
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        (SELECT coalesce(o.value, 0) > 0 FROM app.override_in_force(p_workspace, p_feature) o),
        (SELECT CASE p_feature WHEN 'ai_tools' THEN p.ai_tools WHEN 'client_portal' THEN p.client_portal
                               WHEN 'api_access' THEN p.api_access WHEN 'webhooks' THEN p.webhooks END
         FROM public.plans p WHERE p.id = (SELECT f.plan_id FROM app.plan_in_force(p_workspace) f)),
        false)
$$;
REVOKE EXECUTE ON FUNCTION app.feature_in_force(uuid, text) FROM PUBLIC;
ALTER FUNCTION app.feature_in_force(uuid, text) OWNER TO app_service;

CREATE OR REPLACE FUNCTION app.stored_contact_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(c.client_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
      AND (SELECT f.enabled FROM app.feature_in_force(c.workspace_id, 'client_portal') f)
$$;

CREATE OR REPLACE FUNCTION app.stored_contact_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(DISTINCT c.workspace_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
      AND (SELECT f.enabled FROM app.feature_in_force(c.workspace_id, 'client_portal') f)
$$;

-- Whether a key's creator still holds at least the key's role in its workspace (roles are
-- declared from the highest down, so a higher role sorts first).
CREATE FUNCTION app.key_creator_still_entitled(p_workspace uuid, p_creator uuid, p_role public.member_role)
    RETURNS boolean
    LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (SELECT 1 FROM public.workspace_members m
                   WHERE m.workspace_id = p_workspace AND m.user_id = p_creator AND m.role <= p_role)
$$;
REVOKE EXECUTE ON FUNCTION app.key_creator_still_entitled(uuid, uuid, public.member_role) FROM PUBLIC;
ALTER FUNCTION app.key_creator_still_entitled(uuid, uuid, public.member_role) OWNER TO app_service;

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

-- Keys are issued by people: a key that could mint keys would hand out authority that outlives
-- its own (revoking it would leave its children working).
CREATE OR REPLACE FUNCTION app.create_api_key(p_id uuid, p_workspace uuid, p_name text, p_role public.member_role,
                                   p_display_prefix text, p_secret_hash bytea, p_expires_at timestamptz,
                                   p_requests_per_minute integer) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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

DROP FUNCTION app.user_id_by_email(uuid, text);

ALTER TABLE realtime_connections ADD COLUMN expires_at timestamptz;

DROP FUNCTION app.realtime_connection(text);
CREATE FUNCTION app.realtime_connection(p_id text)
    RETURNS TABLE (user_id uuid, issuer text, subject text, email text, api_key_id uuid, key_workspace uuid,
                   expires_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT c.user_id, u.issuer, u.subject, u.email, c.api_key_id, k.workspace_id, c.expires_at
    FROM public.realtime_connections c
    JOIN public.users u ON u.id = c.user_id
    LEFT JOIN public.api_keys k ON k.id = c.api_key_id
    WHERE c.id = p_id
$$;
REVOKE EXECUTE ON FUNCTION app.realtime_connection(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.realtime_connection(text) TO app_api, app_service;
ALTER FUNCTION app.realtime_connection(text) OWNER TO app_service;

-- As before, and a connection whose token has expired receives nothing; a key's connection
-- only while its creator still holds the key's role; a contact's only while the portal is open.
CREATE OR REPLACE FUNCTION app.realtime_recipients(p_activity uuid)
    RETURNS TABLE (connection_id text, via text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT s.connection_id,
           CASE
               WHEN c.api_key_id IS NOT NULL THEN 'api_key'
               WHEN EXISTS (SELECT 1 FROM public.workspace_members m
                            WHERE m.workspace_id = a.workspace_id AND m.user_id = c.user_id) THEN 'member'
               ELSE 'contact'
           END
    FROM public.activity a
    JOIN public.realtime_subscriptions s ON s.workspace_id = a.workspace_id
    JOIN public.realtime_connections c ON c.id = s.connection_id
    WHERE a.id = p_activity
      AND (c.expires_at IS NULL OR c.expires_at > pg_catalog.now())
      AND CASE
          WHEN c.api_key_id IS NOT NULL THEN EXISTS (
              SELECT 1 FROM public.api_keys k
              WHERE k.id = c.api_key_id AND k.workspace_id = a.workspace_id AND k.revoked_at IS NULL
                AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())
                AND app.key_creator_still_entitled(k.workspace_id, k.created_by, k.role))
          ELSE EXISTS (SELECT 1 FROM public.workspace_members m
                       WHERE m.workspace_id = a.workspace_id AND m.user_id = c.user_id)
               OR (a.client_visible
                   AND (SELECT f.enabled FROM app.feature_in_force(a.workspace_id, 'client_portal') f)
                   AND EXISTS (
                       SELECT 1 FROM public.projects p
                       JOIN public.client_contacts cc ON cc.client_id = p.client_id AND cc.user_id = c.user_id
                       WHERE p.id = a.project_id))
      END
$$;

-- What the verifier accepts (shared::auth::claims), held by the table too.
ALTER TABLE users
    ADD CONSTRAINT users_issuer_length CHECK (char_length(issuer) BETWEEN 1 AND 512),
    ADD CONSTRAINT users_subject_length CHECK (char_length(subject) BETWEEN 1 AND 255),
    ADD CONSTRAINT users_email_length CHECK (char_length(email) <= 254);

-- Whether two addresses are the same mailbox as far as this product can know: the domain in any
-- case (DNS is case-insensitive), the part before the last @ exactly (RFC 5321 lets a mail
-- server tell `Victim` from `victim`, so an account that signed in as one is not the other).
CREATE FUNCTION app.same_mailbox(a text, b text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT pg_catalog.substring(a, '^(.*)@') = pg_catalog.substring(b, '^(.*)@')
       AND pg_catalog.lower(pg_catalog.substring(a, '@([^@]*)$'))
         = pg_catalog.lower(pg_catalog.substring(b, '@([^@]*)$'))
$$;
REVOKE EXECUTE ON FUNCTION app.same_mailbox(text, text) FROM PUBLIC;
ALTER FUNCTION app.same_mailbox(text, text) OWNER TO app_service;

-- As before, and the accepting account's verified address must be the invited mailbox exactly
-- (`app.same_mailbox`): the token proves the mail was read, the address that the account is
-- the one it was sent to, not a look-alike another subject claimed.
CREATE OR REPLACE FUNCTION app.accept_invitation(p_token_hash bytea)
    RETURNS TABLE (outcome text, workspace_id uuid, client_id uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    caller uuid := app.current_user_id();
    caller_email text;
    invitation public.invitations;
BEGIN
    IF caller IS NULL OR nullif(pg_catalog.current_setting('app.api_key_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'only a person accepts an invitation' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO invitation FROM public.invitations i WHERE i.token_hash = p_token_hash FOR UPDATE;
    workspace_id := invitation.workspace_id;
    client_id := invitation.client_id;
    role := invitation.role::text;
    SELECT u.email INTO caller_email FROM public.users u WHERE u.id = caller;
    outcome := CASE
        WHEN invitation.id IS NULL THEN 'unknown'
        WHEN invitation.revoked_at IS NOT NULL THEN 'revoked'
        WHEN invitation.accepted_at IS NOT NULL AND invitation.accepted_by = caller THEN 'already'
        WHEN invitation.accepted_at IS NOT NULL THEN 'used'
        WHEN invitation.expires_at <= now() THEN 'expired'
        WHEN caller_email IS NULL OR NOT app.same_mailbox(caller_email, invitation.email) THEN 'email_mismatch'
        ELSE 'accepted'
    END;
    IF outcome <> 'accepted' THEN
        IF outcome = 'unknown' THEN
            workspace_id := NULL;
            client_id := NULL;
            role := NULL;
        END IF;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE public.invitations i SET accepted_at = now(), accepted_by = caller WHERE i.id = invitation.id;
    IF invitation.role IS NOT NULL THEN
        INSERT INTO public.workspace_members AS m (workspace_id, user_id, role)
        VALUES (invitation.workspace_id, caller, invitation.role)
        ON CONFLICT ON CONSTRAINT workspace_members_pkey DO NOTHING;
    ELSE
        INSERT INTO public.client_contacts (workspace_id, client_id, user_id)
        VALUES (invitation.workspace_id, invitation.client_id, caller)
        ON CONFLICT ON CONSTRAINT client_contacts_pkey DO NOTHING;
    END IF;
    RETURN NEXT;
END
$$;

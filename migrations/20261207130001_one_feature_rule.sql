-- One rule decides whether a workspace has a plan feature, for every kind of caller:
-- `app.feature_in_force` (an override in force wins, else the plan's), which the stored contact
-- lookups, the rate limiter and the realtime recipients already read. Now the request opening
-- answers its verdict too (the portal for a client contact, API access for a key), and the
-- handlers of feature routes ask `app.workspace_has_feature`, instead of the application
-- rebuilding the plan and its overrides to decide again. The openings' answers change shape, so
-- both are dropped and created again.

DROP FUNCTION app.begin_request(uuid, text, text, text, text, uuid, uuid);
DROP FUNCTION app.begin_key_request(uuid, bytea, text, uuid, uuid);

CREATE FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text, p_request_id text, p_workspace uuid, p_project uuid) RETURNS TABLE(member_role text, is_contact boolean, portal_open boolean, project_visible boolean)
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
        -- A non-member: their client links, for a contact whether the workspace's plan (as its
        -- overrides change it) opens the portal to them, and whether the route's project is one
        -- of their clients'. The inline rule runs only when the CASE reaches it (for a stranger,
        -- who has no client links, portal_open stays NULL).
        SELECT pg_catalog.array_agg(c.client_id),
               CASE WHEN pg_catalog.count(*) > 0
                    THEN (SELECT f.enabled FROM app.feature_in_force(p_workspace, 'client_portal') f) END,
               p_project IS NULL OR coalesce(pg_catalog.bool_or(p.id IS NOT NULL), false)
        INTO clients, portal_open, visible
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

CREATE FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text, p_workspace uuid, p_project uuid) RETURNS TABLE(key_state text, key_workspace uuid, member_role text, key_plan text, api_access boolean, project_visible boolean)
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
    SELECT f.plan_id, a.enabled,
           p_project IS NULL OR EXISTS (SELECT 1 FROM public.projects p
                                        WHERE p.workspace_id = k.workspace_id AND p.id = p_project)
    INTO key_plan, api_access, project_visible
    FROM app.plan_in_force(k.workspace_id) f, app.feature_in_force(k.workspace_id, 'api_access') a;
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

-- Whether a workspace the caller is a member of has a feature now (NULL for any other
-- workspace): for the handlers of routes a plan may not include (AI tools, webhooks, API keys,
-- inviting client contacts).
CREATE FUNCTION app.workspace_has_feature(p_workspace uuid, p_feature text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT f.enabled FROM app.feature_in_force(p_workspace, p_feature) f
    WHERE p_workspace = ANY (app.member_workspace_ids())
$$;
ALTER FUNCTION app.workspace_has_feature(p_workspace uuid, p_feature text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.workspace_has_feature(p_workspace uuid, p_feature text) FROM PUBLIC;
GRANT ALL ON FUNCTION app.workspace_has_feature(p_workspace uuid, p_feature text) TO app_api;

-- A request enters its workspace once; the policies read what entering learned.
--
-- Before: every statement's policies called SECURITY DEFINER SQL helpers that aggregated the
-- caller's memberships into an array. A definer with a pinned search_path cannot be inlined, so
-- each statement paid a configuration save/restore and a fresh parse and plan of the helper's
-- body: about as much CPU as a whole trivial statement, for every statement of every request.
--
-- Now the request's first statement (`app.begin_request`, in the same round trip as BEGIN and the
-- identity) looks up the caller's role and client links in the one workspace the route names,
-- answers them to the application (404/402/403 are decided there) and keeps them as
-- transaction-local settings bound to the caller's id. The policy helpers keep their names and
-- signatures (so no policy changes) but become plain, inlinable SQL that read those settings;
-- only when no workspace was entered (the list of one's workspaces, creating one) do they fall
-- back to the stored lookups, which remain SECURITY DEFINER with a pinned search_path.
--
-- Isolation: the settings are no more trusted than `app.user_id`, which the API role has always
-- set for itself (whoever can run SQL as app_api can already claim any user id, and with it that
-- user's memberships). They are written only by `app.begin_request` from the memberships it reads, are
-- transaction-local, and count only while `app.user_id` is still the user they were entered for.
-- Entering also narrows: until the transaction ends the caller reaches the entered workspace
-- only, not their other workspaces.

-- The stored lookups, under new names (the policies keep calling the old names, whose bodies
-- change below).
CREATE FUNCTION app.stored_member_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = app.current_user_id()
$$;

CREATE FUNCTION app.stored_workspaces_with_role(roles public.member_role[]) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = app.current_user_id() AND m.role = ANY (roles)
$$;

CREATE FUNCTION app.stored_contact_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(c.client_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
$$;

CREATE FUNCTION app.stored_contact_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(DISTINCT c.workspace_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
$$;

-- Reads a setting only; nothing to pin, and without a SET clause PostgreSQL inlines it.
CREATE OR REPLACE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(pg_catalog.current_setting('app.user_id', true), '')::uuid $$;

-- The entered workspace, if one was entered for the current caller in this transaction.
CREATE FUNCTION app.entered_workspace() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.current_setting('app.entered_user', true)
                     = pg_catalog.current_setting('app.user_id', true)
                THEN nullif(pg_catalog.current_setting('app.entered_workspace', true), '')::uuid
           END
$$;

CREATE OR REPLACE FUNCTION app.member_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY INVOKER PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_member_workspace_ids()
        WHEN pg_catalog.current_setting('app.entered_role', true) <> '' THEN ARRAY[app.entered_workspace()]
        ELSE '{}'::uuid[]
    END
$$;

CREATE OR REPLACE FUNCTION app.workspaces_with_role(roles public.member_role[]) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY INVOKER PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_workspaces_with_role(roles)
        WHEN nullif(pg_catalog.current_setting('app.entered_role', true), '')::public.member_role = ANY (roles)
            THEN ARRAY[app.entered_workspace()]
        ELSE '{}'::uuid[]
    END
$$;

CREATE OR REPLACE FUNCTION app.contact_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY INVOKER PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_contact_client_ids()
        ELSE coalesce(nullif(pg_catalog.current_setting('app.entered_clients', true), '')::uuid[], '{}')
    END
$$;

CREATE OR REPLACE FUNCTION app.contact_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY INVOKER PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_contact_workspace_ids()
        WHEN pg_catalog.current_setting('app.entered_clients', true) <> '' THEN ARRAY[app.entered_workspace()]
        ELSE '{}'::uuid[]
    END
$$;

-- The first statement of every API request (sent with BEGIN, one round trip): sets the caller's
-- identity (and the request id, for the audit log) for the transaction, creates their user row on first sight or records a changed e-mail
-- (and otherwise writes nothing), and, when the route names a workspace, enters it and answers the
-- caller's access: their role, whether they are one of its client contacts (and then the
-- workspace's plan, which decides whether the portal is open to them), and whether they can see
-- `p_project` (true without one). A caller with no access enters nothing. One SECURITY DEFINER
-- call per request, instead of one per helper per statement.
CREATE FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text,
                                  p_request_id text, p_workspace uuid, p_project uuid)
    RETURNS TABLE (member_role text, is_contact boolean, contact_plan text, project_visible boolean)
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
    END IF;
    project_visible := p_project IS NULL OR EXISTS (
        SELECT 1 FROM public.projects p
        WHERE p.workspace_id = p_workspace AND p.id = p_project
          AND (role IS NOT NULL OR p.client_id = ANY (clients)));
    PERFORM pg_catalog.set_config('app.entered_user', p_user::text, true),
            pg_catalog.set_config('app.entered_workspace', p_workspace::text, true),
            pg_catalog.set_config('app.entered_role', coalesce(role::text, ''), true),
            pg_catalog.set_config('app.entered_clients', coalesce(clients::text, ''), true);
    RETURN NEXT;
END
$$;

REVOKE EXECUTE ON FUNCTION
    app.stored_member_workspace_ids(),
    app.stored_workspaces_with_role(public.member_role[]),
    app.stored_contact_client_ids(),
    app.stored_contact_workspace_ids(),
    app.entered_workspace(),
    app.begin_request(uuid, text, text, text, text, uuid, uuid)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    app.stored_member_workspace_ids(),
    app.stored_workspaces_with_role(public.member_role[]),
    app.stored_contact_client_ids(),
    app.stored_contact_workspace_ids(),
    app.entered_workspace(),
    app.begin_request(uuid, text, text, text, text, uuid, uuid)
TO app_api, app_service;
ALTER FUNCTION app.stored_member_workspace_ids() OWNER TO app_service;
ALTER FUNCTION app.stored_workspaces_with_role(public.member_role[]) OWNER TO app_service;
ALTER FUNCTION app.stored_contact_client_ids() OWNER TO app_service;
ALTER FUNCTION app.stored_contact_workspace_ids() OWNER TO app_service;
ALTER FUNCTION app.begin_request(uuid, text, text, text, text, uuid, uuid) OWNER TO app_service;

-- The plan a workspace is entitled to, unchanged, in PL/pgSQL: it keeps its query plan for the
-- session, where a SQL-language SECURITY DEFINER function is parsed and planned on every call
-- (it runs in every contact's first statement, in plan-limit triggers and feature checks).
CREATE OR REPLACE FUNCTION app.effective_plan(p_workspace uuid) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    RETURN coalesce((
        SELECT s.plan_id FROM public.subscriptions s
        WHERE s.workspace_id = p_workspace
          AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND s.grace_until > now()))
    ), 'free');
END
$$;

-- No policy has called it since a contact's access to an item became a per-row probe
-- (20261127000007); a SECURITY DEFINER function nobody needs is only surface.
DROP FUNCTION app.contact_project_ids();

-- Suspension by the platform's operators: a suspended workspace is read but not written, and
-- its API keys stop. Operators suspend and unsuspend through the admin function, with a reason.

ALTER TABLE workspaces
    ADD COLUMN suspended_at     timestamptz,
    ADD COLUMN suspended_reason text CONSTRAINT workspaces_suspended_reason_length
        CHECK (char_length(suspended_reason) <= 1000);

CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_issuer text, p_subject text, p_email text,
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
    -- A suspended workspace is read, never written: the rest of the request's transaction is
    -- read-only, so every write path fails the same way (and the API answers 403
    -- workspace_suspended).
    IF EXISTS (SELECT 1 FROM public.workspaces w WHERE w.id = p_workspace AND w.suspended_at IS NOT NULL) THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION app.begin_key_request(p_key uuid, p_secret_hash bytea, p_request_id text,
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

-- The admin role may set exactly these two columns, and append to the audit log the reasons
-- of what it did (the workspace's own audit trigger records the change itself).
GRANT UPDATE (suspended_at, suspended_reason) ON workspaces TO app_admin;
CREATE POLICY admin_suspend ON workspaces FOR UPDATE TO app_admin USING (true) WITH CHECK (true);
GRANT INSERT ON audit_log TO app_admin;
CREATE POLICY admin_append ON audit_log FOR INSERT TO app_admin WITH CHECK (true);

-- Row-level security: helper functions, policies, and the functions the API may call to do what a
-- policy alone cannot (create a user on first sight, create a workspace with its first owner,
-- find a user by e-mail to invite).
--
-- The helpers take no row argument and are called as `(SELECT app.helper())`, so PostgreSQL runs
-- each one once per query (an InitPlan) rather than once per row. They are SECURITY DEFINER and
-- owned by app_service, whose policies see every row; that is what lets a policy on
-- workspace_members ask "which workspaces is the caller a member of" without recursing into
-- itself. Every one pins search_path and qualifies every name.

CREATE FUNCTION app.member_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = app.current_user_id()
$$;

-- Workspaces in which the caller holds one of the given roles.
CREATE FUNCTION app.workspaces_with_role(roles public.member_role[]) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = app.current_user_id() AND m.role = ANY (roles)
$$;

CREATE FUNCTION app.contact_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(c.client_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
$$;

CREATE FUNCTION app.contact_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(DISTINCT c.workspace_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
$$;

-- Projects a client contact may see: those assigned to one of the caller's clients.
CREATE FUNCTION app.contact_project_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT coalesce(array_agg(p.id), '{}')
    FROM public.projects p
    JOIN public.client_contacts c ON c.client_id = p.client_id AND c.workspace_id = p.workspace_id
    WHERE c.user_id = app.current_user_id()
$$;

-- Creates the caller's user row on first sight and keeps its e-mail current. Only the caller's
-- own row: the id must be the one set for this transaction.
CREATE FUNCTION app.ensure_user(p_id uuid, p_issuer text, p_subject text, p_email text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF p_id IS DISTINCT FROM app.current_user_id() THEN
        RAISE EXCEPTION 'ensure_user may only create the caller' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.users AS u (id, issuer, subject, email)
    VALUES (p_id, p_issuer, p_subject, p_email)
    ON CONFLICT (id) DO UPDATE
        SET email = excluded.email, updated_at = now()
        WHERE excluded.email IS NOT NULL AND u.email IS DISTINCT FROM excluded.email;
END
$$;

-- Creates a workspace with the caller as its first owner: no policy can allow the first
-- membership of a workspace nobody belongs to yet.
CREATE FUNCTION app.create_workspace(p_id uuid, p_name text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    caller uuid := app.current_user_id();
BEGIN
    IF caller IS NULL THEN
        RAISE EXCEPTION 'no caller identity' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.workspaces (id, name, created_by) VALUES (p_id, p_name, caller);
    INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (p_id, caller, 'owner');
END
$$;

-- Finds a user to invite by e-mail; answers only to an owner or admin of the workspace, so it is
-- not an address-book lookup for everyone.
CREATE FUNCTION app.user_id_by_email(p_workspace uuid, p_email text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT u.id
    FROM public.users u
    WHERE lower(u.email) = lower(p_email)
      AND p_workspace = ANY (app.workspaces_with_role('{owner,admin}'))
    ORDER BY u.created_at
    LIMIT 1
$$;

-- A workspace always keeps at least one owner. The workspace row is locked first so two
-- concurrent demotions of its last two owners cannot both succeed.
CREATE FUNCTION app.keep_an_owner() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
BEGIN
    IF OLD.role <> 'owner' OR (TG_OP = 'UPDATE' AND NEW.role = 'owner') THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM public.workspaces w WHERE w.id = OLD.workspace_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL; -- the workspace itself is being deleted
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.workspace_members m
        WHERE m.workspace_id = OLD.workspace_id AND m.role = 'owner'
    ) THEN
        RAISE EXCEPTION 'a workspace must keep at least one owner'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'workspace_members_keep_an_owner';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER workspace_members_keep_an_owner
    AFTER UPDATE OR DELETE ON workspace_members
    FOR EACH ROW EXECUTE FUNCTION app.keep_an_owner();

-- Functions are executable by PUBLIC by default; these are granted to the two roles only.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    app.current_user_id(),
    app.member_workspace_ids(),
    app.workspaces_with_role(public.member_role[]),
    app.contact_client_ids(),
    app.contact_workspace_ids(),
    app.contact_project_ids(),
    app.ensure_user(uuid, text, text, text),
    app.create_workspace(uuid, text),
    app.user_id_by_email(uuid, text)
TO app_api, app_service;

-- Grants first, then ownership: the ACL travels with the function, and a non-superuser owner
-- (e.g. on RDS) could not grant on functions it no longer owns.
ALTER FUNCTION app.member_workspace_ids() OWNER TO app_service;
ALTER FUNCTION app.workspaces_with_role(public.member_role[]) OWNER TO app_service;
ALTER FUNCTION app.contact_client_ids() OWNER TO app_service;
ALTER FUNCTION app.contact_workspace_ids() OWNER TO app_service;
ALTER FUNCTION app.contact_project_ids() OWNER TO app_service;
ALTER FUNCTION app.ensure_user(uuid, text, text, text) OWNER TO app_service;
ALTER FUNCTION app.create_workspace(uuid, text) OWNER TO app_service;
ALTER FUNCTION app.user_id_by_email(uuid, text) OWNER TO app_service;
ALTER FUNCTION app.keep_an_owner() OWNER TO app_service;

-- Enabled and forced on every table, so not even the owner reads around the policies.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspaces FORCE ROW LEVEL SECURITY;
ALTER TABLE workspace_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_members FORCE ROW LEVEL SECURITY;
ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE clients FORCE ROW LEVEL SECURITY;
ALTER TABLE client_contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_contacts FORCE ROW LEVEL SECURITY;
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
ALTER TABLE milestones ENABLE ROW LEVEL SECURITY;
ALTER TABLE milestones FORCE ROW LEVEL SECURITY;
ALTER TABLE deliverables ENABLE ROW LEVEL SECURITY;
ALTER TABLE deliverables FORCE ROW LEVEL SECURITY;
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;

-- Workers see and change every tenant's rows.
CREATE POLICY service_all ON users TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON workspaces TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON workspace_members TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON clients TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON client_contacts TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON projects TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON milestones TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON deliverables TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON comments TO app_service USING (true) WITH CHECK (true);

-- users: yourself, the members of your workspaces, and the client contacts they manage.
CREATE POLICY users_select ON users FOR SELECT TO app_api USING (
    id = (SELECT app.current_user_id())
    OR id IN (SELECT m.user_id FROM workspace_members m
              WHERE m.workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]))
    OR id IN (SELECT c.user_id FROM client_contacts c
              WHERE c.workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]))
);

-- workspaces: members and client contacts read; owners and admins rename; owners delete.
-- Creation goes through app.create_workspace.
CREATE POLICY workspaces_select ON workspaces FOR SELECT TO app_api USING (
    id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR id = ANY ((SELECT app.contact_workspace_ids())::uuid[])
);
CREATE POLICY workspaces_update ON workspaces FOR UPDATE TO app_api
    USING (id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]))
    WITH CHECK (id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY workspaces_delete ON workspaces FOR DELETE TO app_api
    USING (id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[]));

-- workspace_members: every member reads the member list; owners manage everyone, admins manage
-- everyone but owners; anyone may leave.
CREATE POLICY members_select ON workspace_members FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
);
CREATE POLICY members_insert ON workspace_members FOR INSERT TO app_api WITH CHECK (
    workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
    OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role <> 'owner')
);
CREATE POLICY members_update ON workspace_members FOR UPDATE TO app_api
    USING (
        workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
        OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role <> 'owner')
    )
    WITH CHECK (
        workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
        OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role <> 'owner')
    );
CREATE POLICY members_delete ON workspace_members FOR DELETE TO app_api USING (
    workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
    OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role <> 'owner')
    OR user_id = (SELECT app.current_user_id())
);

-- clients: members read, a contact reads its own client, owners and admins manage.
CREATE POLICY clients_select ON clients FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR id = ANY ((SELECT app.contact_client_ids())::uuid[])
);
CREATE POLICY clients_insert ON clients FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY clients_update ON clients FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY clients_delete ON clients FOR DELETE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));

-- client_contacts: members read, a contact reads its own links, owners and admins manage.
CREATE POLICY contacts_select ON client_contacts FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR user_id = (SELECT app.current_user_id())
);
CREATE POLICY contacts_insert ON client_contacts FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY contacts_delete ON client_contacts FOR DELETE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));

-- projects: members read, a contact reads its client's projects; owners, admins and members write.
CREATE POLICY projects_select ON projects FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR client_id = ANY ((SELECT app.contact_client_ids())::uuid[])
);
CREATE POLICY projects_insert ON projects FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY projects_update ON projects FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY projects_delete ON projects FOR DELETE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));

-- milestones: as their project.
CREATE POLICY milestones_select ON milestones FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR project_id = ANY ((SELECT app.contact_project_ids())::uuid[])
);
CREATE POLICY milestones_insert ON milestones FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY milestones_update ON milestones FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY milestones_delete ON milestones FOR DELETE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));

-- deliverables: a contact reads only the client-visible ones of its client's projects.
CREATE POLICY deliverables_select ON deliverables FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND project_id = ANY ((SELECT app.contact_project_ids())::uuid[]))
);
CREATE POLICY deliverables_insert ON deliverables FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY deliverables_update ON deliverables FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));
CREATE POLICY deliverables_delete ON deliverables FOR DELETE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[]));

-- comments: a contact reads client-visible comments on its client's projects and writes
-- client-visible comments there; everyone edits only their own; owners and admins moderate.
CREATE POLICY comments_select ON comments FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND project_id = ANY ((SELECT app.contact_project_ids())::uuid[]))
);
CREATE POLICY comments_insert ON comments FOR INSERT TO app_api WITH CHECK (
    author_id = (SELECT app.current_user_id())
    AND (
        workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
        OR (client_visible AND project_id = ANY ((SELECT app.contact_project_ids())::uuid[]))
    )
);
CREATE POLICY comments_update ON comments FOR UPDATE TO app_api
    USING (
        author_id = (SELECT app.current_user_id())
        AND (
            workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
            OR (client_visible AND project_id = ANY ((SELECT app.contact_project_ids())::uuid[]))
        )
    )
    WITH CHECK (
        author_id = (SELECT app.current_user_id())
        AND (
            workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
            OR (client_visible AND project_id = ANY ((SELECT app.contact_project_ids())::uuid[]))
        )
    );
CREATE POLICY comments_delete ON comments FOR DELETE TO app_api USING (
    workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[])
    OR (
        author_id = (SELECT app.current_user_id())
        AND (
            workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
            OR (client_visible AND project_id = ANY ((SELECT app.contact_project_ids())::uuid[]))
        )
    )
);

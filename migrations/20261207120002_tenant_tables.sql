-- Baseline 2/7: the agency's work. Clients and their contacts, projects, milestones,
-- deliverables and comments, and the portal view a contact reads their client through.
--
-- Every tenant row carries workspace_id; a child names its parent by (id, workspace_id), so no
-- row can point at another workspace's parent. Each project item table has the index its list
-- page walks, (workspace_id, project_id, id DESC). Members reach a row by the first arm of its
-- policy; a client contact by a per-row probe of the item's project, or without it on the project
-- the request entered (app.entered_project). docs/tenancy.md has the whole picture.

CREATE TYPE public.deliverable_status AS ENUM (
    'draft',
    'in_review',
    'changes_requested',
    'approved'
);

CREATE TYPE public.milestone_status AS ENUM (
    'open',
    'done'
);

CREATE TYPE public.project_status AS ENUM (
    'planned',
    'active',
    'on_hold',
    'completed',
    'archived'
);

-- Tables

CREATE TABLE public.clients (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    name text NOT NULL,
    email text,
    notes text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    portal_note text DEFAULT ''::text NOT NULL,
    CONSTRAINT clients_email_length CHECK ((char_length(email) <= 320)),
    CONSTRAINT clients_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT clients_notes_length CHECK ((char_length(notes) <= 10000)),
    CONSTRAINT clients_id_workspace_key UNIQUE (id, workspace_id),
    CONSTRAINT clients_pkey PRIMARY KEY (id),
    CONSTRAINT clients_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX clients_workspace_idx ON public.clients USING btree (workspace_id, id);

CREATE TABLE public.client_contacts (
    workspace_id uuid NOT NULL,
    client_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT client_contacts_pkey PRIMARY KEY (client_id, user_id),
    CONSTRAINT client_contacts_client_fkey FOREIGN KEY (client_id, workspace_id) REFERENCES public.clients(id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT client_contacts_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE
);
CREATE INDEX client_contacts_user_idx ON public.client_contacts USING btree (user_id, client_id, workspace_id);
CREATE INDEX client_contacts_workspace_idx ON public.client_contacts USING btree (workspace_id);

CREATE TABLE public.projects (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    client_id uuid,
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    status public.project_status DEFAULT 'active'::public.project_status NOT NULL,
    due_date date,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT projects_description_length CHECK ((char_length(description) <= 10000)),
    CONSTRAINT projects_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT projects_id_workspace_key UNIQUE (id, workspace_id),
    CONSTRAINT projects_pkey PRIMARY KEY (id),
    CONSTRAINT projects_client_fkey FOREIGN KEY (client_id, workspace_id) REFERENCES public.clients(id, workspace_id) ON DELETE SET NULL (client_id),
    CONSTRAINT projects_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT projects_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX projects_client_idx ON public.projects USING btree (client_id, id DESC) WHERE (client_id IS NOT NULL);
CREATE INDEX projects_status_idx ON public.projects USING btree (workspace_id, status, id DESC);
CREATE INDEX projects_workspace_idx ON public.projects USING btree (workspace_id, id DESC);

CREATE TABLE public.milestones (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    project_id uuid NOT NULL,
    title text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    status public.milestone_status DEFAULT 'open'::public.milestone_status NOT NULL,
    due_date date,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT milestones_description_length CHECK ((char_length(description) <= 10000)),
    CONSTRAINT milestones_title_length CHECK (((char_length(title) >= 1) AND (char_length(title) <= 200))),
    CONSTRAINT milestones_id_project_key UNIQUE (id, project_id),
    CONSTRAINT milestones_pkey PRIMARY KEY (id),
    CONSTRAINT milestones_project_fkey FOREIGN KEY (project_id, workspace_id) REFERENCES public.projects(id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX milestones_page_idx ON public.milestones USING btree (workspace_id, project_id, id DESC);
CREATE INDEX milestones_project_idx ON public.milestones USING btree (project_id, id);

CREATE TABLE public.deliverables (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    project_id uuid NOT NULL,
    milestone_id uuid,
    title text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    url text,
    status public.deliverable_status DEFAULT 'draft'::public.deliverable_status NOT NULL,
    client_visible boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT deliverables_description_length CHECK ((char_length(description) <= 10000)),
    CONSTRAINT deliverables_title_length CHECK (((char_length(title) >= 1) AND (char_length(title) <= 200))),
    CONSTRAINT deliverables_url_length CHECK ((char_length(url) <= 2048)),
    CONSTRAINT deliverables_pkey PRIMARY KEY (id),
    CONSTRAINT deliverables_milestone_fkey FOREIGN KEY (milestone_id, project_id) REFERENCES public.milestones(id, project_id) ON DELETE SET NULL (milestone_id),
    CONSTRAINT deliverables_project_fkey FOREIGN KEY (project_id, workspace_id) REFERENCES public.projects(id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX deliverables_milestone_idx ON public.deliverables USING btree (milestone_id) WHERE (milestone_id IS NOT NULL);
CREATE INDEX deliverables_page_idx ON public.deliverables USING btree (workspace_id, project_id, id DESC);
CREATE INDEX deliverables_project_idx ON public.deliverables USING btree (project_id, id);
CREATE INDEX deliverables_visible_idx ON public.deliverables USING btree (project_id, client_visible);

CREATE TABLE public.comments (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    project_id uuid NOT NULL,
    author_id uuid,
    body text NOT NULL,
    client_visible boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT comments_body_length CHECK (((char_length(body) >= 1) AND (char_length(body) <= 10000))),
    CONSTRAINT comments_pkey PRIMARY KEY (id),
    CONSTRAINT comments_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT comments_project_fkey FOREIGN KEY (project_id, workspace_id) REFERENCES public.projects(id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX comments_author_idx ON public.comments USING btree (author_id);
CREATE INDEX comments_page_idx ON public.comments USING btree (workspace_id, project_id, id DESC);
CREATE INDEX comments_project_idx ON public.comments USING btree (project_id, id DESC);
CREATE INDEX comments_visible_idx ON public.comments USING btree (project_id, client_visible);

-- Functions

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
REVOKE ALL ON FUNCTION app.entered_project() FROM PUBLIC;
GRANT ALL ON FUNCTION app.entered_project() TO app_api;

-- The portal view: only the shareable columns, only the caller's own clients. It runs with its
-- owner's rights (app_service, whose policy sees every row) and filters by the caller itself,
-- which a security_invoker view could not do without giving contacts the whole row.
CREATE VIEW public.client_portal AS
 SELECT c.id,
    c.workspace_id,
    c.name,
    c.portal_note,
    c.created_at,
    c.updated_at
   FROM public.clients c
  WHERE (c.id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[]));

ALTER TABLE public.client_portal OWNER TO app_service;
GRANT SELECT ON TABLE public.client_portal TO app_api;

-- Row-level security, policies and grants

ALTER TABLE public.client_contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.client_contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY contacts_delete ON public.client_contacts FOR DELETE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY contacts_insert ON public.client_contacts FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY contacts_select ON public.client_contacts FOR SELECT TO app_api USING (((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (user_id = ( SELECT app.current_user_id() AS current_user_id))));
CREATE POLICY service_all ON public.client_contacts TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.client_contacts TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.client_contacts TO app_service;
GRANT SELECT ON TABLE public.client_contacts TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.client_contacts TO app_exporter;
GRANT SELECT(client_id) ON TABLE public.client_contacts TO app_exporter;
GRANT SELECT(user_id) ON TABLE public.client_contacts TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.client_contacts TO app_exporter;

ALTER TABLE public.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.clients FORCE ROW LEVEL SECURITY;
CREATE POLICY clients_delete ON public.clients FOR DELETE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY clients_insert ON public.clients FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY clients_select ON public.clients FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY clients_update ON public.clients FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.clients TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.clients TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.clients TO app_service;
GRANT SELECT ON TABLE public.clients TO app_admin;
GRANT SELECT(id) ON TABLE public.clients TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.clients TO app_exporter;
GRANT SELECT(name) ON TABLE public.clients TO app_exporter;
GRANT SELECT(email) ON TABLE public.clients TO app_exporter;
GRANT SELECT(notes) ON TABLE public.clients TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.clients TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.clients TO app_exporter;
GRANT SELECT(portal_note) ON TABLE public.clients TO app_exporter;

ALTER TABLE public.comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.comments FORCE ROW LEVEL SECURITY;
CREATE POLICY comments_delete ON public.comments FOR DELETE TO app_api USING (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((author_id = ( SELECT app.current_user_id() AS current_user_id)) AND ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR (client_visible AND (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = comments.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[]))))))))));
CREATE POLICY comments_insert ON public.comments FOR INSERT TO app_api WITH CHECK (((author_id = ( SELECT app.current_user_id() AS current_user_id)) AND ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR (client_visible AND (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = comments.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[])))))))));
CREATE POLICY comments_select ON public.comments FOR SELECT TO app_api USING (((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (client_visible AND ((project_id = ( SELECT app.entered_project() AS entered_project)) OR (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = comments.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[])))))))));
CREATE POLICY comments_update ON public.comments FOR UPDATE TO app_api USING (((author_id = ( SELECT app.current_user_id() AS current_user_id)) AND ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR (client_visible AND (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = comments.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[]))))))))) WITH CHECK (((author_id = ( SELECT app.current_user_id() AS current_user_id)) AND ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR (client_visible AND (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = comments.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[])))))))));
CREATE POLICY service_all ON public.comments TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.comments TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.comments TO app_service;
GRANT SELECT ON TABLE public.comments TO app_admin;
GRANT SELECT(id) ON TABLE public.comments TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.comments TO app_exporter;
GRANT SELECT(project_id) ON TABLE public.comments TO app_exporter;
GRANT SELECT(author_id) ON TABLE public.comments TO app_exporter;
GRANT SELECT(body) ON TABLE public.comments TO app_exporter;
GRANT SELECT(client_visible) ON TABLE public.comments TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.comments TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.comments TO app_exporter;

ALTER TABLE public.deliverables ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.deliverables FORCE ROW LEVEL SECURITY;
CREATE POLICY deliverables_delete ON public.deliverables FOR DELETE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY deliverables_insert ON public.deliverables FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY deliverables_select ON public.deliverables FOR SELECT TO app_api USING (((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (client_visible AND ((project_id = ( SELECT app.entered_project() AS entered_project)) OR (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = deliverables.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[])))))))));
CREATE POLICY deliverables_update ON public.deliverables FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.deliverables TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.deliverables TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.deliverables TO app_service;
GRANT SELECT ON TABLE public.deliverables TO app_admin;
GRANT SELECT(id) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(project_id) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(milestone_id) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(title) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(description) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(url) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(status) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(client_visible) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.deliverables TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.deliverables TO app_exporter;

ALTER TABLE public.milestones ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.milestones FORCE ROW LEVEL SECURITY;
CREATE POLICY milestones_delete ON public.milestones FOR DELETE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY milestones_insert ON public.milestones FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY milestones_select ON public.milestones FOR SELECT TO app_api USING (((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (project_id = ( SELECT app.entered_project() AS entered_project)) OR (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = milestones.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[])))))));
CREATE POLICY milestones_update ON public.milestones FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.milestones TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.milestones TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.milestones TO app_service;
GRANT SELECT ON TABLE public.milestones TO app_admin;
GRANT SELECT(id) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(project_id) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(title) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(description) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(status) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(due_date) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.milestones TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.milestones TO app_exporter;

ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.projects FORCE ROW LEVEL SECURITY;
CREATE POLICY projects_delete ON public.projects FOR DELETE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY projects_insert ON public.projects FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY projects_select ON public.projects FOR SELECT TO app_api USING (((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[]))));
CREATE POLICY projects_update ON public.projects FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.projects TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.projects TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.projects TO app_service;
GRANT SELECT ON TABLE public.projects TO app_admin;
GRANT SELECT(id) ON TABLE public.projects TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.projects TO app_exporter;
GRANT SELECT(client_id) ON TABLE public.projects TO app_exporter;
GRANT SELECT(name) ON TABLE public.projects TO app_exporter;
GRANT SELECT(description) ON TABLE public.projects TO app_exporter;
GRANT SELECT(status) ON TABLE public.projects TO app_exporter;
GRANT SELECT(due_date) ON TABLE public.projects TO app_exporter;
GRANT SELECT(created_by) ON TABLE public.projects TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.projects TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.projects TO app_exporter;

CREATE POLICY users_select ON public.users FOR SELECT TO app_api USING (((id = ( SELECT app.current_user_id() AS current_user_id)) OR (id IN ( SELECT m.user_id
   FROM public.workspace_members m
  WHERE (m.workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])))) OR (id IN ( SELECT c.user_id
   FROM public.client_contacts c
  WHERE (c.workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[]))))));

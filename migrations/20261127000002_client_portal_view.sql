-- What a client contact sees of its client: the portal view. The agency's own notes and the
-- client's e-mail are internal; `portal_note` is what the agency chooses to show its client.
ALTER TABLE clients ADD COLUMN portal_note text NOT NULL DEFAULT '';

-- Contacts no longer read the clients table at all (so raw SQL cannot reach `notes` or `email`
-- either); members still do.
DROP POLICY clients_select ON clients;
CREATE POLICY clients_select ON clients FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[]));

-- The portal view: only the shareable columns, only the caller's own clients. It runs with its
-- owner's rights (app_service, whose policy sees every row) and filters by the caller itself,
-- which a security_invoker view could not do without giving contacts the whole row.
CREATE VIEW client_portal AS
    SELECT c.id, c.workspace_id, c.name, c.portal_note, c.created_at, c.updated_at
    FROM public.clients c
    WHERE c.id = ANY ((SELECT app.contact_client_ids())::uuid[]);
ALTER VIEW client_portal OWNER TO app_service;
GRANT SELECT ON client_portal TO app_api;

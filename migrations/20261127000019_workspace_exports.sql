-- Data export: an owner asks for an archive of the whole workspace; the export worker writes it
-- to S3 (JSON Lines, gzip, with a manifest) from one consistent snapshot.

CREATE TABLE workspace_exports (
    id           uuid PRIMARY KEY DEFAULT app.uuid_v7(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    requested_by uuid REFERENCES users (id) ON DELETE SET NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CONSTRAINT workspace_exports_status CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    enqueued_at  timestamptz,
    started_at   timestamptz,
    finished_at  timestamptz,
    -- The archive's objects (set on success) and what they hold.
    data_key     text,
    manifest_key text,
    bytes        bigint,
    row_count    bigint,
    tables       jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- When the bucket's lifecycle rule removes the objects.
    expires_at   timestamptz
);
-- One export at a time per workspace: a second request while one is open is a conflict.
CREATE UNIQUE INDEX workspace_exports_one_open ON workspace_exports (workspace_id) WHERE status IN ('pending', 'running');
CREATE INDEX workspace_exports_open_idx ON workspace_exports (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX workspace_exports_workspace_idx ON workspace_exports (workspace_id, id DESC);

GRANT SELECT, INSERT (id, workspace_id, requested_by) ON workspace_exports TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON workspace_exports TO app_service;
ALTER TABLE workspace_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON workspace_exports TO app_service USING (true) WITH CHECK (true);
-- Owners ask for and follow exports; the archive holds everything, so nobody else may.
CREATE POLICY owners_read ON workspace_exports FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[]));
CREATE POLICY owners_request ON workspace_exports FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
                AND requested_by = (SELECT app.current_user_id()));
GRANT SELECT ON workspace_exports TO app_admin;
CREATE POLICY admin_read ON workspace_exports FOR SELECT TO app_admin USING (true);
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON workspace_exports
    FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');

-- The export worker's role. It reads one workspace per transaction: the policies below show it
-- only the rows of the workspace named in `app.export_workspace` (set transaction-locally), so
-- a query that forgot its filter still cannot put another tenant's row in an archive. It sees
-- no secret: the columns holding secrets or tokens are not granted (the manifest lists them).
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_exporter NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_exporter;

CREATE FUNCTION app.export_workspace() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT nullif(pg_catalog.current_setting('app.export_workspace', true), '')::uuid
$$;
REVOKE EXECUTE ON FUNCTION app.export_workspace() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.export_workspace() TO app_exporter;

-- Every table with a workspace, but the live WebSocket subscriptions (connection state, gone
-- within hours, meaningless outside the running system).
DO $$
DECLARE
    t record;
    hidden text[];
    visible text;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r'
               AND EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped)
               AND c.relname NOT IN ('realtime_subscriptions')
    LOOP
        hidden := CASE t.relname
            WHEN 'api_keys' THEN ARRAY['secret_hash']
            WHEN 'invitations' THEN ARRAY['token_hash']
            WHEN 'emails' THEN ARRAY['params']
            WHEN 'webhook_endpoints' THEN ARRAY['secret', 'previous_secret']
            ELSE ARRAY[]::text[]
        END;
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO visible
        FROM pg_attribute a
        WHERE a.attrelid = format('public.%I', t.relname)::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname <> ALL (hidden);
        EXECUTE format('GRANT SELECT (%s) ON public.%I TO app_exporter', visible, t.relname);
        EXECUTE format('CREATE POLICY export_read ON public.%I FOR SELECT TO app_exporter
                        USING (workspace_id = (SELECT app.export_workspace()))', t.relname);
    END LOOP;
END
$$;
GRANT SELECT ON workspaces TO app_exporter;
CREATE POLICY export_read ON workspaces FOR SELECT TO app_exporter USING (id = (SELECT app.export_workspace()));
-- The people of the workspace (members and client contacts): who they are, not how they sign in.
GRANT SELECT (id, email, created_at, updated_at) ON users TO app_exporter;
CREATE POLICY export_read ON users FOR SELECT TO app_exporter USING (
    EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.user_id = users.id AND m.workspace_id = (SELECT app.export_workspace()))
    OR EXISTS (SELECT 1 FROM public.client_contacts c WHERE c.user_id = users.id AND c.workspace_id = (SELECT app.export_workspace())));
-- Claiming and settling exports (any workspace's: the worker takes them from the queue).
GRANT UPDATE (status, attempts, enqueued_at, started_at, finished_at, data_key, manifest_key, bytes, row_count,
              tables, error, expires_at) ON workspace_exports TO app_exporter;
CREATE POLICY exporter_settle ON workspace_exports FOR UPDATE TO app_exporter USING (true) WITH CHECK (true);
CREATE POLICY exporter_claim ON workspace_exports FOR SELECT TO app_exporter USING (true);

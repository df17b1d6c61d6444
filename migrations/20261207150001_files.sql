-- Files on deliverables and comments: the rows of objects browsers upload straight to S3, the
-- storage each workspace uses, the plan limits on both, and the outbox of objects to delete.
--
-- A file is `pending` from the upload's request until the API has checked the object
-- (HeadObject) and confirmed it, then `ready`; only ready files are ever shown to a client
-- contact or given a download link. Its object's key is derived, never stored:
-- `files/<workspace_id>/<file_id>` (shared::files::object_key), so a row cannot name another
-- workspace's object. Storage is reserved when the upload is requested (its declared size,
-- under the workspace's storage row lock) and checked again at confirmation; deleting a row, by
-- hand or by cascade from its deliverable, comment, project or workspace, releases it and queues the
-- object's deletion in `file_deletions`, which the files worker drains.

DO $$
BEGIN
    CREATE ROLE app_files NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- app_files: the files worker. Deletes the objects of the outbox and abandoned pending uploads;
-- reads no tenant data beyond a pending file's workspace and expiry.
GRANT USAGE ON SCHEMA public, app TO app_files;

CREATE TYPE public.file_state AS ENUM ('pending', 'ready');

-- The plan limits, in MiB (an override's value is an integer).
ALTER TABLE public.plans
    ADD COLUMN storage_mb integer DEFAULT 100 NOT NULL,
    ADD COLUMN file_size_mb integer DEFAULT 10 NOT NULL;
UPDATE public.plans SET
    storage_mb = CASE id WHEN 'free' THEN 100 WHEN 'pro' THEN 10240 ELSE 102400 END,
    file_size_mb = CASE id WHEN 'free' THEN 10 WHEN 'pro' THEN 1024 ELSE 5120 END;

ALTER TABLE public.entitlement_overrides DROP CONSTRAINT entitlement_overrides_entitlement;
ALTER TABLE public.entitlement_overrides ADD CONSTRAINT entitlement_overrides_entitlement CHECK ((entitlement = ANY (ARRAY[
    'projects'::text, 'members'::text, 'ai_runs_per_month'::text, 'requests_per_minute'::text,
    'expensive_per_minute'::text, 'storage_mb'::text, 'file_size_mb'::text, 'ai_tools'::text,
    'client_portal'::text, 'api_access'::text, 'webhooks'::text])));
-- A file may be at most 5 GiB: the most one S3 POST upload takes.
ALTER TABLE public.entitlement_overrides DROP CONSTRAINT entitlement_overrides_value_kind;
ALTER TABLE public.entitlement_overrides ADD CONSTRAINT entitlement_overrides_value_kind CHECK (
CASE
    WHEN (entitlement = ANY (ARRAY['ai_tools'::text, 'client_portal'::text, 'api_access'::text, 'webhooks'::text])) THEN (value = ANY (ARRAY[0, 1]))
    WHEN (entitlement = ANY (ARRAY['requests_per_minute'::text, 'expensive_per_minute'::text])) THEN (value >= 1)
    WHEN (entitlement = ANY (ARRAY['ai_runs_per_month'::text, 'storage_mb'::text])) THEN (value IS NOT NULL)
    WHEN (entitlement = 'file_size_mb'::text) THEN (value BETWEEN 1 AND 5120)
    ELSE true
END);

-- A file names its deliverable or comment together with its project, and the project with its
-- workspace, so no row can attach to another tenant's item.
ALTER TABLE public.deliverables ADD CONSTRAINT deliverables_id_project_key UNIQUE (id, project_id);
ALTER TABLE public.comments ADD CONSTRAINT comments_id_project_key UNIQUE (id, project_id);

CREATE TABLE public.files (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    project_id uuid NOT NULL,
    deliverable_id uuid,
    comment_id uuid,
    name text NOT NULL,
    content_type text NOT NULL,
    size_bytes bigint NOT NULL,
    state public.file_state DEFAULT 'pending'::public.file_state NOT NULL,
    uploaded_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    -- Until when the upload form works; a pending file past it (and a grace) is swept.
    upload_expires_at timestamp with time zone NOT NULL,
    confirmed_at timestamp with time zone,
    CONSTRAINT files_pkey PRIMARY KEY (id),
    CONSTRAINT files_name_length CHECK (char_length(name) BETWEEN 1 AND 255),
    CONSTRAINT files_content_type_length CHECK (char_length(content_type) BETWEEN 3 AND 255),
    CONSTRAINT files_size CHECK (size_bytes > 0 AND size_bytes <= 5368709120),
    CONSTRAINT files_confirmed CHECK ((state = 'ready') = (confirmed_at IS NOT NULL)),
    CONSTRAINT files_one_parent CHECK (num_nonnulls(deliverable_id, comment_id) = 1),
    CONSTRAINT files_deliverable_fkey FOREIGN KEY (deliverable_id, project_id) REFERENCES public.deliverables(id, project_id) ON DELETE CASCADE,
    CONSTRAINT files_comment_fkey FOREIGN KEY (comment_id, project_id) REFERENCES public.comments(id, project_id) ON DELETE CASCADE,
    CONSTRAINT files_project_fkey FOREIGN KEY (project_id, workspace_id) REFERENCES public.projects(id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT files_uploaded_by_fkey FOREIGN KEY (uploaded_by) REFERENCES public.users(id) ON DELETE SET NULL
);
CREATE INDEX files_deliverable_page_idx ON public.files USING btree (workspace_id, deliverable_id, id DESC) WHERE (state = 'ready');
CREATE INDEX files_comment_page_idx ON public.files USING btree (workspace_id, comment_id, id DESC) WHERE (state = 'ready');
CREATE INDEX files_deliverable_idx ON public.files USING btree (deliverable_id, project_id);
CREATE INDEX files_comment_idx ON public.files USING btree (comment_id, project_id);
CREATE INDEX files_pending_idx ON public.files USING btree (upload_expires_at) WHERE (state = 'pending');

-- The bytes a workspace's files take, pending uploads included: one row per workspace, whose
-- lock serializes the quota's check.
CREATE TABLE public.workspace_storage (
    workspace_id uuid NOT NULL,
    used_bytes bigint DEFAULT 0 NOT NULL,
    CONSTRAINT workspace_storage_pkey PRIMARY KEY (workspace_id),
    CONSTRAINT workspace_storage_used CHECK (used_bytes >= 0),
    CONSTRAINT workspace_storage_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);

-- Objects to delete from the files bucket. No foreign key: it outlives the file, and the
-- workspace, it was for.
CREATE TABLE public.file_deletions (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    object_key text NOT NULL,
    workspace_id uuid NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    CONSTRAINT file_deletions_pkey PRIMARY KEY (id),
    CONSTRAINT file_deletions_object_key CHECK (object_key ~ '^files/[0-9a-f-]{36}/[0-9a-f-]{36}$'),
    CONSTRAINT file_deletions_last_error_length CHECK (char_length(last_error) <= 1000)
);
CREATE INDEX file_deletions_due_idx ON public.file_deletions USING btree (next_attempt_at);
CREATE INDEX file_deletions_workspace_idx ON public.file_deletions USING btree (workspace_id);

-- Functions

-- The workspace's file limits in force, in bytes: the plan's, or an override's.
CREATE FUNCTION app.file_limits(p_workspace uuid, OUT storage_bytes bigint, OUT file_bytes bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    storage_mb integer;
    file_mb integer;
BEGIN
    SELECT p.storage_mb, p.file_size_mb INTO storage_mb, file_mb
    FROM public.plans p WHERE p.id = app.effective_plan(p_workspace);
    storage_bytes := app.effective_limit(p_workspace, 'storage_mb', storage_mb)::bigint * 1048576;
    file_bytes := app.effective_limit(p_workspace, 'file_size_mb', file_mb)::bigint * 1048576;
END
$$;
ALTER FUNCTION app.file_limits(p_workspace uuid, OUT storage_bytes bigint, OUT file_bytes bigint) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.file_limits(p_workspace uuid, OUT storage_bytes bigint, OUT file_bytes bigint) FROM PUBLIC;

-- At the upload's request: reserve the declared size, refused past the file or storage limit.
-- At confirmation: the same limits, checked again (a plan may have changed in between).
CREATE FUNCTION app.enforce_file_limits() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    limits record;
    used bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NOT (OLD.state = 'pending' AND NEW.state = 'ready') THEN
        RETURN NEW;
    END IF;
    limits := app.file_limits(NEW.workspace_id);
    IF NEW.size_bytes > limits.file_bytes THEN
        RAISE EXCEPTION 'a file may have % bytes', limits.file_bytes
            USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_file_size';
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.workspace_storage (workspace_id) VALUES (NEW.workspace_id) ON CONFLICT DO NOTHING;
        UPDATE public.workspace_storage s SET used_bytes = s.used_bytes + NEW.size_bytes
        WHERE s.workspace_id = NEW.workspace_id RETURNING s.used_bytes INTO used;
    ELSE
        SELECT s.used_bytes INTO used FROM public.workspace_storage s
        WHERE s.workspace_id = NEW.workspace_id FOR UPDATE;
    END IF;
    IF used > limits.storage_bytes THEN
        RAISE EXCEPTION 'the workspace may store % bytes', limits.storage_bytes
            USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_storage';
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION app.enforce_file_limits() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.enforce_file_limits() FROM PUBLIC;

-- A file row gone (deleted, or cascading from its deliverable, project or workspace): its
-- storage is released and its object queued for deletion, in the same transaction.
CREATE FUNCTION app.release_file() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    UPDATE public.workspace_storage s SET used_bytes = greatest(s.used_bytes - OLD.size_bytes, 0)
    WHERE s.workspace_id = OLD.workspace_id;
    INSERT INTO public.file_deletions (object_key, workspace_id)
    VALUES ('files/' || OLD.workspace_id::text || '/' || OLD.id::text, OLD.workspace_id);
    RETURN NULL;
END
$$;
ALTER FUNCTION app.release_file() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.release_file() FROM PUBLIC;

-- The feed and the outgoing webhooks: a file added (confirmed) or deleted while what it is
-- attached to stays. Shown to a client contact when that deliverable or comment is shared.
CREATE FUNCTION app.file_on_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    file public.files := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    attached_to text;
    shared_with_client boolean;
    verb text;
BEGIN
    IF TG_OP = 'UPDATE' AND NOT (OLD.state = 'pending' AND NEW.state = 'ready') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' AND OLD.state <> 'ready' THEN
        RETURN NULL;
    END IF;
    IF file.deliverable_id IS NOT NULL THEN
        SELECT d.title, d.client_visible INTO attached_to, shared_with_client
        FROM public.deliverables d WHERE d.id = file.deliverable_id;
    ELSE
        SELECT 'a comment: ' || pg_catalog.left(c.body, 80), c.client_visible INTO attached_to, shared_with_client
        FROM public.comments c WHERE c.id = file.comment_id;
    END IF;
    IF attached_to IS NULL THEN
        -- Deleted with what it was attached to: that deletion is the news.
        RETURN NULL;
    END IF;
    verb := CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'added' END;
    PERFORM app.record_activity(file.workspace_id, 'file.' || verb, 'file', file.id, file.name, file.project_id,
        shared_with_client,
        'File “' || file.name || '” was ' || verb || CASE verb WHEN 'added' THEN ' to' ELSE ' from' END
            || CASE WHEN file.deliverable_id IS NOT NULL THEN ' “' || attached_to || '”.' ELSE ' a comment.' END,
        pg_catalog.jsonb_build_object('deliverable_id', file.deliverable_id, 'comment_id', file.comment_id,
                                      'size_bytes', file.size_bytes, 'content_type', file.content_type));
    PERFORM app.emit_webhook_event(file.workspace_id, 'file.' || verb, pg_catalog.jsonb_build_object(
        'id', file.id, 'project_id', file.project_id, 'deliverable_id', file.deliverable_id,
        'comment_id', file.comment_id, 'attached_to', attached_to, 'name', file.name,
        'content_type', file.content_type, 'size_bytes', file.size_bytes, 'uploaded_by', file.uploaded_by,
        'confirmed_at', file.confirmed_at));
    RETURN NULL;
END
$$;
ALTER FUNCTION app.file_on_change() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.file_on_change() FROM PUBLIC;

-- Triggers

CREATE TRIGGER file_limits BEFORE INSERT OR UPDATE OF state ON public.files FOR EACH ROW EXECUTE FUNCTION app.enforce_file_limits();
CREATE TRIGGER release AFTER DELETE ON public.files FOR EACH ROW EXECUTE FUNCTION app.release_file();
CREATE TRIGGER activity AFTER DELETE OR UPDATE OF state ON public.files FOR EACH ROW EXECUTE FUNCTION app.file_on_change();
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.files FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');

-- Row-level security, policies and grants

-- A member sees the workspace's files, pending ones included (the uploader confirms them); a
-- client contact only ready files of deliverables and comments the contact can see, which
-- their own policies decide (shared, and of the contact's client's projects).
ALTER TABLE public.files ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.files FORCE ROW LEVEL SECURITY;
CREATE POLICY files_select ON public.files FOR SELECT TO app_api USING (
    (workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[]))
    OR (state = 'ready' AND (EXISTS (SELECT 1 FROM public.deliverables d WHERE d.id = files.deliverable_id)
                             OR EXISTS (SELECT 1 FROM public.comments c WHERE c.id = files.comment_id))));
CREATE POLICY files_insert ON public.files FOR INSERT TO app_api WITH CHECK (
    (workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[]))
    AND state = 'pending' AND confirmed_at IS NULL);
CREATE POLICY files_update ON public.files FOR UPDATE TO app_api
    USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])))
    WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY files_delete ON public.files FOR DELETE TO app_api USING (
    (workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin,member}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.files TO app_service USING (true) WITH CHECK (true);
CREATE POLICY admin_read ON public.files FOR SELECT TO app_admin USING (true);
-- The files worker sees pending files only, to sweep the abandoned ones.
CREATE POLICY files_worker_sweep ON public.files FOR SELECT TO app_files USING (state = 'pending');
CREATE POLICY files_worker_delete ON public.files FOR DELETE TO app_files USING (state = 'pending');
GRANT SELECT, INSERT, DELETE ON TABLE public.files TO app_api;
GRANT UPDATE (state, confirmed_at) ON TABLE public.files TO app_api;
GRANT SELECT, INSERT, DELETE, UPDATE ON TABLE public.files TO app_service;
GRANT SELECT ON TABLE public.files TO app_admin;
GRANT SELECT (id, workspace_id, state, upload_expires_at), DELETE ON TABLE public.files TO app_files;
GRANT SELECT (id, workspace_id, project_id, deliverable_id, comment_id, name, content_type, size_bytes, state, uploaded_by,
              created_at, upload_expires_at, confirmed_at) ON TABLE public.files TO app_exporter;
CREATE POLICY export_read ON public.files FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

ALTER TABLE public.workspace_storage ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.workspace_storage FORCE ROW LEVEL SECURITY;
CREATE POLICY members_read ON public.workspace_storage FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY service_all ON public.workspace_storage TO app_service USING (true) WITH CHECK (true);
CREATE POLICY admin_read ON public.workspace_storage FOR SELECT TO app_admin USING (true);
GRANT SELECT ON TABLE public.workspace_storage TO app_api;
GRANT SELECT, INSERT, DELETE, UPDATE ON TABLE public.workspace_storage TO app_service;
GRANT SELECT ON TABLE public.workspace_storage TO app_admin;
CREATE POLICY export_read ON public.workspace_storage FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));
GRANT SELECT ON TABLE public.workspace_storage TO app_exporter;

ALTER TABLE public.file_deletions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.file_deletions FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON public.file_deletions TO app_service USING (true) WITH CHECK (true);
CREATE POLICY files_worker ON public.file_deletions TO app_files USING (true) WITH CHECK (true);
CREATE POLICY admin_read ON public.file_deletions FOR SELECT TO app_admin USING (true);
GRANT SELECT ON TABLE public.file_deletions TO app_admin;
GRANT SELECT, INSERT, DELETE, UPDATE ON TABLE public.file_deletions TO app_service;
GRANT SELECT, DELETE, UPDATE (attempts, next_attempt_at, last_error) ON TABLE public.file_deletions TO app_files;

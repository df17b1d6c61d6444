-- An audit log of every change, written by the database itself.
--
-- Every INSERT, UPDATE and DELETE on tenant data writes one audit row in the same transaction,
-- from a trigger, so no code path can skip it: who acted (the caller's user or API key, or the
-- service that acted), what (table, row, the changed fields with old and new values; secret
-- columns never), the request, the time. The log is append-only for every role, and each
-- workspace's rows form a hash chain (`app.verify_audit_chain`) so an edit made around the
-- grants (by a superuser, or on the disk) is evident. Rows outlive their workspace.

-- The audit writer: a NOLOGIN role that owns the two trigger functions and alone may append
-- entries and move the chain heads. Nobody logs in as it; only those triggers act as it.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_audit NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_audit;

-- Rows outlive the workspace they describe (the platform keeps the trail after a deletion).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_workspace_id_fkey;

ALTER TABLE audit_log
    ADD COLUMN seq        bigint,
    ADD COLUMN table_name text,
    ADD COLUMN row_id     text,
    ADD COLUMN changes    jsonb,
    ADD COLUMN request_id text,
    ADD COLUMN prev_hash  bytea,
    ADD COLUMN hash       bytea;

-- The head of each workspace's chain: the last position and hash. Locked by the insert that
-- extends it, so a workspace's audited writes take their positions one after another.
CREATE TABLE audit_chain_heads (
    workspace_id uuid PRIMARY KEY,
    seq          bigint NOT NULL,
    hash         bytea NOT NULL
);

-- The hash of one audit row: its predecessor's hash and every field, in a fixed text form (UTC
-- time to the microsecond, jsonb's normalized text, unit separators between fields).
CREATE FUNCTION app.audit_hash(prev bytea, r public.audit_log) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = ''
AS $$
    SELECT pg_catalog.sha256(prev || pg_catalog.convert_to(pg_catalog.concat_ws(pg_catalog.chr(31),
        r.workspace_id::text, r.seq::text,
        pg_catalog.to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        r.actor, r.action, coalesce(r.table_name, ''), coalesce(r.row_id, ''),
        coalesce(r.changes::text, ''), coalesce(r.details::text, ''), coalesce(r.request_id, '')), 'UTF8'))
$$;

-- Backfill: the rows written before this migration become each workspace's first links.
DO $$
DECLARE
    r public.audit_log;
    last_workspace uuid;
    position bigint;
    prev bytea;
BEGIN
    FOR r IN SELECT * FROM public.audit_log ORDER BY workspace_id, created_at, id LOOP
        IF last_workspace IS DISTINCT FROM r.workspace_id THEN
            last_workspace := r.workspace_id;
            position := 0;
            prev := '\x'::bytea;
        END IF;
        position := position + 1;
        r.seq := position;
        r.prev_hash := prev;
        r.hash := app.audit_hash(prev, r);
        UPDATE public.audit_log SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
        INSERT INTO public.audit_chain_heads (workspace_id, seq, hash) VALUES (r.workspace_id, r.seq, r.hash)
        ON CONFLICT (workspace_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
        prev := r.hash;
    END LOOP;
END
$$;

ALTER TABLE audit_log
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT audit_log_position_key UNIQUE (workspace_id, seq);
-- The page index: newest first within a workspace (the unique constraint serves it backwards).
DROP INDEX audit_log_workspace_idx;

-- Who is acting: the API key or user the request runs as, else the service named by the worker
-- (`app.actor`), else the database role.
CREATE FUNCTION app.current_actor() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        'api_key:' || nullif(pg_catalog.current_setting('app.api_key_id', true), ''),
        'user:' || nullif(pg_catalog.current_setting('app.user_id', true), ''),
        nullif(pg_catalog.current_setting('app.actor', true), ''),
        'service:' || session_user)
$$;

-- Extends the workspace's chain with the row being inserted (every insert into audit_log goes
-- through here, the workers' own entries included): its position, its predecessor's hash, its
-- hash.
CREATE FUNCTION app.audit_chain() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION app.audit_chain();

CREATE FUNCTION app.audit_log_is_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION app.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_log_is_append_only();
-- A head moves only when an entry is appended (the chain trigger, running as app_audit).
CREATE FUNCTION app.audit_head_moves_by_appending() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF current_user <> 'app_audit' THEN
        RAISE EXCEPTION 'an audit chain head moves only by appending' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain_heads_move BEFORE UPDATE ON audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION app.audit_head_moves_by_appending();
CREATE TRIGGER audit_chain_heads_append_only BEFORE DELETE ON audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION app.audit_log_is_append_only();
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON audit_chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_log_is_append_only();

-- Nobody updates or deletes audit rows, whatever their grants said before; only the audit
-- writer (and the billing worker, for its own account of a change) appends.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, app_api, app_service, app_billing, app_usage, app_sweeper;
GRANT INSERT ON audit_log TO app_audit;
CREATE POLICY audit_append ON audit_log FOR INSERT TO app_audit WITH CHECK (true);
REVOKE ALL ON audit_chain_heads FROM PUBLIC;
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO app_audit;
CREATE POLICY audit_writer ON audit_chain_heads TO app_audit USING (true) WITH CHECK (true);
-- It locks a workspace's row (never changes it) before extending that workspace's chain.
GRANT SELECT (id), UPDATE (id) ON workspaces TO app_audit;
CREATE POLICY audit_lock_read ON workspaces FOR SELECT TO app_audit USING (true);
CREATE POLICY audit_lock ON workspaces FOR UPDATE TO app_audit USING (true) WITH CHECK (false);
GRANT SELECT ON audit_chain_heads TO app_service;
CREATE POLICY service_read ON audit_chain_heads FOR SELECT TO app_service USING (true);

-- One audit row per changed row of a tenant table. Arguments: the key column(s) naming the row
-- (comma-separated), then any columns never to be recorded (secrets). An UPDATE that changes
-- nothing is not recorded. Rows deleted by a cascade (a project's items when the project is
-- deleted, everything when a workspace is) are covered by the audited delete that caused them.
CREATE FUNCTION app.audit_change() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON workspaces FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON workspace_members FOR EACH ROW EXECUTE FUNCTION app.audit_change('user_id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON clients FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON client_contacts FOR EACH ROW EXECUTE FUNCTION app.audit_change('client_id,user_id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON projects FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON milestones FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON deliverables FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON comments FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON subscriptions FOR EACH ROW EXECUTE FUNCTION app.audit_change('workspace_id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON checkout_sessions FOR EACH ROW EXECUTE FUNCTION app.audit_change('stripe_session_id', 'url');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON subscription_cancellations FOR EACH ROW EXECUTE FUNCTION app.audit_change('stripe_subscription_id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON ai_runs FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'input', 'output');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON ai_quota_usage FOR EACH ROW EXECUTE FUNCTION app.audit_change('period');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON usage_records FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');

-- Verifies a workspace's chain from its first row: positions without gaps, each row's
-- predecessor hash, each row's own hash, and the head. Answers how many rows were checked and
-- the first broken link (NULL when the chain is whole).
CREATE FUNCTION app.verify_audit_chain(p_workspace uuid)
    RETURNS TABLE (checked bigint, first_broken_seq bigint, first_broken_id uuid, problem text)
    LANGUAGE plpgsql STABLE
    SET search_path = ''
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

REVOKE EXECUTE ON FUNCTION app.audit_hash(bytea, public.audit_log), app.current_actor(), app.audit_chain(),
    app.audit_log_is_append_only(), app.audit_head_moves_by_appending(), app.audit_change(),
    app.verify_audit_chain(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_hash(bytea, public.audit_log), app.current_actor() TO app_audit;
GRANT EXECUTE ON FUNCTION app.verify_audit_chain(uuid), app.audit_hash(bytea, public.audit_log) TO app_service;
ALTER FUNCTION app.audit_chain() OWNER TO app_audit;
ALTER FUNCTION app.audit_change() OWNER TO app_audit;

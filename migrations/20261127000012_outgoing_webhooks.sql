-- Outgoing webhooks: a workspace's endpoints, the events its changes cause (written by triggers
-- in the transaction of the change, so a change that rolls back sends nothing), one delivery per
-- event and subscribed endpoint, and every attempt to send it.

-- Time-ordered ids (UUIDv7, as the API makes in Rust) for rows made in SQL: delivery logs page by
-- id, newest first. PostgreSQL 15 has no uuidv7(): the first 48 bits of a random UUID are
-- replaced by the Unix time in milliseconds and the version nibble set to 7.
CREATE FUNCTION app.uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE
    SET search_path = ''
AS $$
    SELECT pg_catalog.encode(
        pg_catalog.set_bit(pg_catalog.set_bit(
            overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                placing substring(pg_catalog.int8send(
                    (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint) FROM 3)
                FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

REVOKE EXECUTE ON FUNCTION app.uuid_v7() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.uuid_v7() TO app_service;

CREATE TABLE webhook_endpoints (
    id                         uuid PRIMARY KEY,
    workspace_id               uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url                        text NOT NULL CONSTRAINT webhook_endpoints_url_length CHECK (char_length(url) BETWEEN 8 AND 2048),
    description                text NOT NULL DEFAULT '' CONSTRAINT webhook_endpoints_description_length CHECK (char_length(description) <= 500),
    -- Event types this endpoint receives (`webhook.test` always reaches it when asked for).
    events                     text[] NOT NULL CONSTRAINT webhook_endpoints_events CHECK (cardinality(events) BETWEEN 1 AND 50),
    format                     text NOT NULL DEFAULT 'standard'
        CONSTRAINT webhook_endpoints_format CHECK (format IN ('standard', 'slack', 'discord')),
    -- The signing secret (`whsec_...`): the dispatcher needs it to sign, so it is kept, but the
    -- API role cannot read it back (see the grants); it is shown once, when made or rotated.
    secret                     text NOT NULL,
    -- The secret before the last rotation, still signed with until `previous_secret_expires_at`.
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- Since when every attempt to this endpoint has failed (NULL after any success).
    failing_since              timestamptz,
    disabled_at                timestamptz,
    disabled_reason            text,
    created_by                 uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_endpoints_id_workspace_key UNIQUE (id, workspace_id)
);
CREATE INDEX webhook_endpoints_workspace_idx ON webhook_endpoints (workspace_id, id DESC);

-- What happened, once per event; the body every endpoint gets (as the Standard Webhooks
-- envelope: type, timestamp, data). Its id is the `webhook-id` receivers deduplicate on.
CREATE TABLE webhook_events (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_events_id_workspace_key UNIQUE (id, workspace_id)
);
CREATE INDEX webhook_events_workspace_idx ON webhook_events (workspace_id, id DESC);

-- One event to one endpoint: pending until sent (or its attempts run out).
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL,
    endpoint_id      uuid NOT NULL,
    event_id         uuid NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    -- A manual retry allows one attempt more than those made.
    max_attempts     integer NOT NULL DEFAULT 8,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    enqueued_at      timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CONSTRAINT webhook_deliveries_endpoint_fkey FOREIGN KEY (endpoint_id, workspace_id)
        REFERENCES webhook_endpoints (id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_event_fkey FOREIGN KEY (event_id, workspace_id)
        REFERENCES webhook_events (id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_event_endpoint_key UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_workspace_idx ON webhook_deliveries (workspace_id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Every attempt: what the receiver answered (or why nothing was), how long it took, and the
-- first few KiB of its answer.
CREATE TABLE webhook_attempts (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    status_code   integer,
    latency_ms    integer NOT NULL,
    response_body text NOT NULL DEFAULT '',
    error         text
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
CREATE INDEX webhook_attempts_workspace_idx ON webhook_attempts (workspace_id);

-- The API (owners and admins, checked by the policies): endpoints without their secrets, the
-- test event, manual retries, and the logs.
GRANT SELECT (id, workspace_id, url, description, events, format, previous_secret_expires_at, failing_since,
              disabled_at, disabled_reason, created_by, created_at, updated_at),
      INSERT,
      UPDATE (url, description, events, format, secret, previous_secret_expires_at, failing_since, disabled_at,
              disabled_reason, updated_at),
      DELETE
    ON webhook_endpoints TO app_api;
GRANT SELECT, INSERT ON webhook_events TO app_api;
GRANT SELECT, INSERT, UPDATE (status, max_attempts, next_attempt_at, enqueued_at, finished_at) ON webhook_deliveries TO app_api;
GRANT SELECT ON webhook_attempts TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints, webhook_events, webhook_deliveries, webhook_attempts TO app_service;

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_events FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON webhook_endpoints TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON webhook_events TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON webhook_deliveries TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON webhook_attempts TO app_service USING (true) WITH CHECK (true);
CREATE POLICY managers_all ON webhook_endpoints TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY managers_read ON webhook_events FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
-- Changes write their events through triggers; the API itself only writes the test event.
CREATE POLICY managers_test ON webhook_events FOR INSERT TO app_api
    WITH CHECK (type = 'webhook.test' AND workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY managers_read ON webhook_deliveries FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY managers_insert ON webhook_deliveries FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY managers_retry ON webhook_deliveries FOR UPDATE TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY managers_read ON webhook_attempts FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));

-- A rotation keeps the secret it replaces while the overlap lasts. Done here because the API
-- role, which rotates, cannot read secrets (a trigger is handed the old row all the same).
CREATE FUNCTION app.keep_previous_webhook_secret() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF NEW.secret IS DISTINCT FROM OLD.secret THEN
        NEW.previous_secret := CASE WHEN NEW.previous_secret_expires_at > pg_catalog.now() THEN OLD.secret END;
        NEW.previous_secret_expires_at := CASE WHEN NEW.previous_secret_expires_at > pg_catalog.now()
                                               THEN NEW.previous_secret_expires_at END;
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION app.keep_previous_webhook_secret() FROM PUBLIC;
CREATE TRIGGER keep_previous_secret BEFORE UPDATE OF secret ON webhook_endpoints
    FOR EACH ROW EXECUTE FUNCTION app.keep_previous_webhook_secret();

-- Endpoints are configuration and audited (never their secrets); events, deliveries and
-- attempts are an outbox and its log, each caused by an audited change.
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON webhook_endpoints
    FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'secret', 'previous_secret');

-- The dispatcher's role: reads what it sends (secrets included), records attempts, marks
-- deliveries and endpoints, and mails the managers of an endpoint it disables.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_webhooks NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_webhooks;
GRANT SELECT, UPDATE (failing_since, disabled_at, disabled_reason) ON webhook_endpoints TO app_webhooks;
GRANT SELECT ON webhook_events TO app_webhooks;
GRANT SELECT, UPDATE (status, attempts, next_attempt_at, enqueued_at, last_status_code, last_error, finished_at)
    ON webhook_deliveries TO app_webhooks;
GRANT INSERT ON webhook_attempts TO app_webhooks;
CREATE POLICY dispatcher_all ON webhook_endpoints TO app_webhooks USING (true) WITH CHECK (true);
CREATE POLICY dispatcher_read ON webhook_events FOR SELECT TO app_webhooks USING (true);
CREATE POLICY dispatcher_all ON webhook_deliveries TO app_webhooks USING (true) WITH CHECK (true);
CREATE POLICY dispatcher_append ON webhook_attempts FOR INSERT TO app_webhooks WITH CHECK (true);
GRANT EXECUTE ON FUNCTION app.effective_plan(uuid) TO app_webhooks;
GRANT EXECUTE ON FUNCTION app.mail_workspace_managers(uuid, text, jsonb, text) TO app_webhooks;

-- Writes an event and its deliveries, to every enabled endpoint of the workspace subscribed to
-- its type; nothing at all when there is none (most changes of most workspaces). Called by the
-- triggers below, whoever made the change (a member, a client contact, a worker).
CREATE FUNCTION app.emit_webhook_event(p_workspace uuid, p_type text, p_data jsonb) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    event_id uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.webhook_endpoints e
                   WHERE e.workspace_id = p_workspace AND e.disabled_at IS NULL AND p_type = ANY (e.events)) THEN
        RETURN;
    END IF;
    -- A change cascading from the workspace's own deletion reaches nobody.
    IF NOT EXISTS (SELECT 1 FROM public.workspaces w WHERE w.id = p_workspace) THEN
        RETURN;
    END IF;
    event_id := app.uuid_v7();
    INSERT INTO public.webhook_events (id, workspace_id, type, payload)
    VALUES (event_id, p_workspace, p_type, pg_catalog.jsonb_build_object(
        'type', p_type,
        'timestamp', pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'data', p_data));
    INSERT INTO public.webhook_deliveries (id, workspace_id, endpoint_id, event_id)
    SELECT app.uuid_v7(), p_workspace, e.id, event_id
    FROM public.webhook_endpoints e
    WHERE e.workspace_id = p_workspace AND e.disabled_at IS NULL AND p_type = ANY (e.events);
END
$$;
REVOKE EXECUTE ON FUNCTION app.emit_webhook_event(uuid, text, jsonb) FROM PUBLIC;
ALTER FUNCTION app.emit_webhook_event(uuid, text, jsonb) OWNER TO app_service;

-- What each change is called and what its event carries (the row as it is after the change,
-- with the fields a receiver needs and nothing internal).
CREATE FUNCTION app.webhook_on_change() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    changed_row jsonb := pg_catalog.to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    old_values jsonb := CASE WHEN TG_OP = 'UPDATE' THEN pg_catalog.to_jsonb(OLD) END;
    event_type text;
    event_data jsonb;
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'projects' THEN
        event_type := 'project.' || CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END;
        event_data := changed_row - 'workspace_id';
        IF TG_OP = 'UPDATE' THEN
            -- What the update changed, with the values before it.
            SELECT pg_catalog.jsonb_object_agg(o.key, o.value) INTO old_values
            FROM pg_catalog.jsonb_each(old_values) o
            WHERE o.key NOT IN ('updated_at', 'workspace_id') AND o.value IS DISTINCT FROM changed_row -> o.key;
            IF old_values IS NULL THEN
                RETURN NULL;
            END IF;
            event_data := event_data || pg_catalog.jsonb_build_object('previous_attributes', old_values);
        END IF;
    WHEN 'deliverables' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status THEN
            RETURN NULL;
        END IF;
        event_type := 'deliverable.status_changed';
        event_data := pg_catalog.jsonb_build_object(
            'id', NEW.id, 'project_id', NEW.project_id, 'milestone_id', NEW.milestone_id, 'title', NEW.title,
            'status', NEW.status, 'previous_status', OLD.status, 'client_visible', NEW.client_visible,
            'updated_at', NEW.updated_at);
    WHEN 'comments' THEN
        event_type := 'comment.created';
        event_data := changed_row - 'workspace_id';
    WHEN 'workspace_members' THEN
        event_type := 'member.' || CASE TG_OP WHEN 'INSERT' THEN 'joined' ELSE 'left' END;
        event_data := pg_catalog.jsonb_build_object(
            'user_id', changed_row -> 'user_id', 'role', changed_row -> 'role',
            'email', (SELECT u.email FROM public.users u WHERE u.id = (changed_row ->> 'user_id')::uuid));
    WHEN 'subscriptions' THEN
        IF TG_OP = 'UPDATE' AND (OLD.plan_id, OLD.status, OLD.cancel_at_period_end, OLD.current_period_end)
                IS NOT DISTINCT FROM (NEW.plan_id, NEW.status, NEW.cancel_at_period_end, NEW.current_period_end) THEN
            RETURN NULL;
        END IF;
        event_type := 'subscription.updated';
        event_data := pg_catalog.jsonb_build_object(
            'plan', NEW.plan_id, 'status', NEW.status, 'current_period_end', NEW.current_period_end,
            'cancel_at_period_end', NEW.cancel_at_period_end, 'effective_plan', app.effective_plan(NEW.workspace_id));
    WHEN 'ai_runs' THEN
        IF NEW.status NOT IN ('succeeded', 'failed') OR OLD.status IS NOT DISTINCT FROM NEW.status THEN
            RETURN NULL;
        END IF;
        event_type := 'ai_run.' || NEW.status;
        event_data := pg_catalog.jsonb_build_object(
            'id', NEW.id, 'tool', NEW.tool, 'project_id', NEW.project_id, 'status', NEW.status, 'model', NEW.model,
            'input_tokens', NEW.input_tokens, 'output_tokens', NEW.output_tokens, 'error', NEW.error,
            'created_by', NEW.created_by, 'created_at', NEW.created_at, 'finished_at', NEW.finished_at);
    END CASE;
    PERFORM app.emit_webhook_event((changed_row ->> 'workspace_id')::uuid, event_type, event_data);
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION app.webhook_on_change() FROM PUBLIC;
ALTER FUNCTION app.webhook_on_change() OWNER TO app_service;

CREATE TRIGGER webhooks AFTER INSERT OR UPDATE OR DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER UPDATE OF status ON deliverables
    FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT ON comments
    FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT OR DELETE ON workspace_members
    FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT OR UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER UPDATE OF status ON ai_runs
    FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();

-- Live activity over WebSockets: the open connections, the workspaces each subscribed to, and
-- who may receive an activity entry at the moment it is pushed.

CREATE TABLE realtime_connections (
    -- API Gateway's connectionId (or the local stack's own id).
    id           text PRIMARY KEY CONSTRAINT realtime_connections_id_length CHECK (char_length(id) BETWEEN 1 AND 128),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Set when the connection authenticated with an API key (then `user_id` is the key's own).
    api_key_id   uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    connected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX realtime_connections_user_idx ON realtime_connections (user_id);

CREATE TABLE realtime_subscriptions (
    connection_id text NOT NULL REFERENCES realtime_connections (id) ON DELETE CASCADE,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT realtime_subscriptions_pkey PRIMARY KEY (connection_id, workspace_id)
);
CREATE INDEX realtime_subscriptions_workspace_idx ON realtime_subscriptions (workspace_id);
CREATE INDEX realtime_subscriptions_user_idx ON realtime_subscriptions (user_id);

-- The realtime function runs as the API role: a person (or key) opens, subscribes and closes
-- their own connections only, and subscribes only to a workspace they entered.
GRANT SELECT, INSERT, DELETE ON realtime_connections, realtime_subscriptions TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON realtime_connections, realtime_subscriptions TO app_service;
ALTER TABLE realtime_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE realtime_connections FORCE ROW LEVEL SECURITY;
ALTER TABLE realtime_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE realtime_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON realtime_connections TO app_service USING (true) WITH CHECK (true);
CREATE POLICY service_all ON realtime_subscriptions TO app_service USING (true) WITH CHECK (true);
CREATE POLICY own_connections ON realtime_connections TO app_api
    USING (user_id = (SELECT app.current_user_id()))
    WITH CHECK (user_id = (SELECT app.current_user_id()));
CREATE POLICY own_subscriptions ON realtime_subscriptions FOR SELECT TO app_api
    USING (user_id = (SELECT app.current_user_id()));
CREATE POLICY own_subscriptions_delete ON realtime_subscriptions FOR DELETE TO app_api
    USING (user_id = (SELECT app.current_user_id()));
CREATE POLICY subscribe_entered ON realtime_subscriptions FOR INSERT TO app_api WITH CHECK (
    user_id = (SELECT app.current_user_id())
    AND (workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
         OR workspace_id = ANY ((SELECT app.contact_workspace_ids())::uuid[]))
    AND EXISTS (SELECT 1 FROM public.realtime_connections c
                WHERE c.id = realtime_subscriptions.connection_id AND c.user_id = (SELECT app.current_user_id()))
);
-- Connections come and go by the second: not audited (the subscriptions they make are reads).

-- Who a connection belongs to, for the messages after `$connect` (which carry only the
-- connection id API Gateway assigned, known to the socket's owner and the platform).
CREATE FUNCTION app.realtime_connection(p_id text)
    RETURNS TABLE (user_id uuid, issuer text, subject text, email text, api_key_id uuid, key_workspace uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT c.user_id, u.issuer, u.subject, u.email, c.api_key_id, k.workspace_id
    FROM public.realtime_connections c
    JOIN public.users u ON u.id = c.user_id
    LEFT JOIN public.api_keys k ON k.id = c.api_key_id
    WHERE c.id = p_id
$$;
REVOKE EXECUTE ON FUNCTION app.realtime_connection(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.realtime_connection(text) TO app_api, app_service;
ALTER FUNCTION app.realtime_connection(text) OWNER TO app_service;

-- The workspace an API key belongs to, by its id alone: only to know which workspace to enter
-- (entering checks the key's secret).
CREATE FUNCTION app.api_key_workspace(p_key uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT k.workspace_id FROM public.api_keys k WHERE k.id = p_key
$$;
REVOKE EXECUTE ON FUNCTION app.api_key_workspace(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_workspace(uuid) TO app_api, app_service;
ALTER FUNCTION app.api_key_workspace(uuid) OWNER TO app_service;

-- `$disconnect`: API Gateway says the connection closed; it and its subscriptions go.
CREATE FUNCTION app.realtime_disconnect(p_id text) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
    DELETE FROM public.realtime_connections c WHERE c.id = p_id
$$;
REVOKE EXECUTE ON FUNCTION app.realtime_disconnect(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.realtime_disconnect(text) TO app_api, app_service;
ALTER FUNCTION app.realtime_disconnect(text) OWNER TO app_service;

-- The connections an activity entry may be pushed to now, and why: a member of its workspace, an
-- API key of it that still works, or (for a client-visible entry) a contact of the client that
-- owns its project now. Decided at send time, so a removed member or contact stops receiving at
-- once; the worker also drops contacts when the plan no longer has the portal.
CREATE FUNCTION app.realtime_recipients(p_activity uuid)
    RETURNS TABLE (connection_id text, via text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
AS $$
    SELECT s.connection_id,
           CASE
               WHEN c.api_key_id IS NOT NULL THEN 'api_key'
               WHEN EXISTS (SELECT 1 FROM public.workspace_members m
                            WHERE m.workspace_id = a.workspace_id AND m.user_id = c.user_id) THEN 'member'
               ELSE 'contact'
           END
    FROM public.activity a
    JOIN public.realtime_subscriptions s ON s.workspace_id = a.workspace_id
    JOIN public.realtime_connections c ON c.id = s.connection_id
    WHERE a.id = p_activity
      AND CASE
          WHEN c.api_key_id IS NOT NULL THEN EXISTS (
              SELECT 1 FROM public.api_keys k
              WHERE k.id = c.api_key_id AND k.workspace_id = a.workspace_id AND k.revoked_at IS NULL
                AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()))
          ELSE EXISTS (SELECT 1 FROM public.workspace_members m
                       WHERE m.workspace_id = a.workspace_id AND m.user_id = c.user_id)
               OR (a.client_visible AND EXISTS (
                       SELECT 1 FROM public.projects p
                       JOIN public.client_contacts cc ON cc.client_id = p.client_id AND cc.user_id = c.user_id
                       WHERE p.id = a.project_id))
      END
$$;
REVOKE EXECUTE ON FUNCTION app.realtime_recipients(uuid) FROM PUBLIC;
ALTER FUNCTION app.realtime_recipients(uuid) OWNER TO app_service;

-- The fan-out worker's role: queues and reads activity entries, asks who may receive each, and
-- forgets connections that are gone.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_fanout NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_fanout;
GRANT SELECT, UPDATE (fanout_queued_at) ON activity TO app_fanout;
GRANT SELECT, DELETE ON realtime_connections TO app_fanout;
GRANT SELECT ON realtime_subscriptions TO app_fanout;
CREATE POLICY fanout_all ON activity TO app_fanout USING (true) WITH CHECK (true);
CREATE POLICY fanout_forget ON realtime_connections TO app_fanout USING (true);
CREATE POLICY fanout_read ON realtime_subscriptions FOR SELECT TO app_fanout USING (true);
GRANT EXECUTE ON FUNCTION app.realtime_recipients(uuid), app.effective_plan(uuid) TO app_fanout;

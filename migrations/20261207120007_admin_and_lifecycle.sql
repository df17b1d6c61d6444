-- Baseline 7/7: the ends of a tenant's life and the platform's view of it. Workspace exports,
-- account deletion, and what the operators (app_admin) and the export worker (app_exporter)
-- may read of every table: each by policies of its own, neither ever writing tenant data nor
-- reading a secret column. docs/admin.md and docs/exports.md have the details.

-- Tables

CREATE TABLE public.workspace_exports (
    id uuid DEFAULT app.uuid_v7() NOT NULL,
    workspace_id uuid NOT NULL,
    requested_by uuid,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    enqueued_at timestamp with time zone,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    data_key text,
    manifest_key text,
    bytes bigint,
    row_count bigint,
    tables jsonb,
    error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    CONSTRAINT workspace_exports_status CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'succeeded'::text, 'failed'::text]))),
    CONSTRAINT workspace_exports_pkey PRIMARY KEY (id),
    CONSTRAINT workspace_exports_requested_by_fkey FOREIGN KEY (requested_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT workspace_exports_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX workspace_exports_one_open ON public.workspace_exports USING btree (workspace_id) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]));
CREATE INDEX workspace_exports_open_idx ON public.workspace_exports USING btree (created_at) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]));
CREATE INDEX workspace_exports_workspace_idx ON public.workspace_exports USING btree (workspace_id, id DESC);

-- Functions

-- Deletes the calling person's account. Refused (answering the workspaces, nothing changed) while
-- they are the last owner of a workspace that has other members: they must hand it over or
-- delete it first. Workspaces where they are the only member are deleted with them (nobody else
-- could ever reach them; their subscriptions are canceled by the workspace trigger). Then their
-- e-mail is erased where other workspaces show it (invitations to it, mails to it, the activity
-- feed and webhook payloads that named it), and the user row goes, taking memberships, client
-- contacts and live connections with it; what they wrote stays, with its author unset. The
-- audit log keeps its entries (the user id, which no longer resolves to anyone).
CREATE FUNCTION app.delete_account() RETURNS TABLE(outcome text, workspace_id uuid, workspace_name text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    caller uuid := app.current_user_id();
    caller_email text;
BEGIN
    IF caller IS NULL OR nullif(pg_catalog.current_setting('app.api_key_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'only a person deletes their account' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Workspaces locked first, in id order, so a concurrent role change cannot slip between
    -- the check and the deletion.
    PERFORM 1 FROM public.workspaces w
    WHERE w.id IN (SELECT m.workspace_id FROM public.workspace_members m WHERE m.user_id = caller)
    ORDER BY w.id FOR UPDATE;
    RETURN QUERY
        SELECT 'last_owner'::text, w.id, w.name
        FROM public.workspaces w
        JOIN public.workspace_members me ON me.workspace_id = w.id AND me.user_id = caller AND me.role = 'owner'
        WHERE NOT EXISTS (SELECT 1 FROM public.workspace_members o
                          WHERE o.workspace_id = w.id AND o.role = 'owner' AND o.user_id <> caller)
          AND EXISTS (SELECT 1 FROM public.workspace_members o WHERE o.workspace_id = w.id AND o.user_id <> caller)
        ORDER BY w.name;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT u.email INTO caller_email FROM public.users u WHERE u.id = caller;
    DELETE FROM public.workspaces w
    WHERE w.id IN (SELECT m.workspace_id FROM public.workspace_members m WHERE m.user_id = caller)
      AND NOT EXISTS (SELECT 1 FROM public.workspace_members o WHERE o.workspace_id = w.id AND o.user_id <> caller);
    -- Leaving the others first, so the feed and webhooks say so (while the user still exists),
    -- and the address those entries carry is erased with the rest below.
    DELETE FROM public.workspace_members m WHERE m.user_id = caller;
    DELETE FROM public.client_contacts c WHERE c.user_id = caller;
    IF caller_email IS NOT NULL THEN
        DELETE FROM public.invitations i WHERE pg_catalog.lower(i.email) = pg_catalog.lower(caller_email);
        DELETE FROM public.emails e WHERE pg_catalog.lower(e.to_address) = pg_catalog.lower(caller_email);
        UPDATE public.activity a
        SET subject_name = NULL,
            message = pg_catalog.replace(a.message, caller_email, 'A former user')
        WHERE a.subject_type = 'user' AND a.subject_id = caller;
        UPDATE public.webhook_events e
        SET payload = e.payload #- '{data,email}'
        WHERE e.payload -> 'data' ->> 'user_id' = caller::text;
    END IF;
    DELETE FROM public.users u WHERE u.id = caller;
    outcome := 'deleted';
    RETURN NEXT;
END
$$;
ALTER FUNCTION app.delete_account() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.delete_account() FROM PUBLIC;
GRANT ALL ON FUNCTION app.delete_account() TO app_api;

CREATE FUNCTION app.export_workspace() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT nullif(pg_catalog.current_setting('app.export_workspace', true), '')::uuid
$$;
REVOKE ALL ON FUNCTION app.export_workspace() FROM PUBLIC;
GRANT ALL ON FUNCTION app.export_workspace() TO app_exporter;

-- Triggers

CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.workspace_exports FOR EACH ROW EXECUTE FUNCTION app.audit_change('id');

-- Row-level security, policies and grants

CREATE POLICY admin_all ON public.entitlement_overrides TO app_admin USING (true) WITH CHECK (true);
CREATE POLICY export_read ON public.entitlement_overrides FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_append ON public.audit_log FOR INSERT TO app_admin WITH CHECK (true);
CREATE POLICY admin_read ON public.audit_log FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.audit_log FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.activity FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.activity FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.ai_quota_usage FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.ai_quota_usage FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.ai_runs FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.ai_runs FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.api_keys FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.api_keys FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.audit_chain_heads FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.audit_chain_heads FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.checkout_sessions FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.checkout_sessions FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.client_contacts FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.client_contacts FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.clients FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.clients FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.comments FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.comments FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.deliverables FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.deliverables FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.emails FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.emails FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.invitations FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.invitations FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.milestones FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.milestones FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.plans FOR SELECT TO app_admin USING (true);

CREATE POLICY admin_read ON public.projects FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.projects FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.rate_limit_buckets FOR SELECT TO app_admin USING (true);

CREATE POLICY admin_read ON public.realtime_connections FOR SELECT TO app_admin USING (true);

CREATE POLICY admin_read ON public.realtime_subscriptions FOR SELECT TO app_admin USING (true);

CREATE POLICY admin_read ON public.seat_syncs FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.seat_syncs FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.stripe_events FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.stripe_events FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.subscription_cancellations FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.subscription_cancellations FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.subscriptions FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.subscriptions FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.usage_records FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.usage_records FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.users FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.users FOR SELECT TO app_exporter USING (((EXISTS ( SELECT 1
   FROM public.workspace_members m
  WHERE ((m.user_id = users.id) AND (m.workspace_id = ( SELECT app.export_workspace() AS export_workspace))))) OR (EXISTS ( SELECT 1
   FROM public.client_contacts c
  WHERE ((c.user_id = users.id) AND (c.workspace_id = ( SELECT app.export_workspace() AS export_workspace)))))));

CREATE POLICY admin_read ON public.webhook_attempts FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.webhook_attempts FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.webhook_deliveries FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.webhook_deliveries FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.webhook_endpoints FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.webhook_endpoints FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.webhook_events FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.webhook_events FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

ALTER TABLE public.workspace_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.workspace_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_read ON public.workspace_exports FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.workspace_exports FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));
CREATE POLICY exporter_claim ON public.workspace_exports FOR SELECT TO app_exporter USING (true);
CREATE POLICY exporter_settle ON public.workspace_exports FOR UPDATE TO app_exporter USING (true) WITH CHECK (true);
CREATE POLICY owners_read ON public.workspace_exports FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY owners_request ON public.workspace_exports FOR INSERT TO app_api WITH CHECK (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (requested_by = ( SELECT app.current_user_id() AS current_user_id))));
CREATE POLICY service_all ON public.workspace_exports TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.workspace_exports TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_exports TO app_service;
GRANT SELECT ON TABLE public.workspace_exports TO app_admin;
GRANT INSERT(id) ON TABLE public.workspace_exports TO app_api;
GRANT SELECT(id) ON TABLE public.workspace_exports TO app_exporter;
GRANT INSERT(workspace_id) ON TABLE public.workspace_exports TO app_api;
GRANT SELECT(workspace_id) ON TABLE public.workspace_exports TO app_exporter;
GRANT INSERT(requested_by) ON TABLE public.workspace_exports TO app_api;
GRANT SELECT(requested_by) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(status),UPDATE(status) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(attempts),UPDATE(attempts) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(enqueued_at),UPDATE(enqueued_at) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(started_at),UPDATE(started_at) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(finished_at),UPDATE(finished_at) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(data_key),UPDATE(data_key) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(manifest_key),UPDATE(manifest_key) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(bytes),UPDATE(bytes) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(row_count),UPDATE(row_count) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(tables),UPDATE(tables) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(error),UPDATE(error) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.workspace_exports TO app_exporter;
GRANT SELECT(expires_at),UPDATE(expires_at) ON TABLE public.workspace_exports TO app_exporter;

CREATE POLICY admin_read ON public.workspace_members FOR SELECT TO app_admin USING (true);
CREATE POLICY export_read ON public.workspace_members FOR SELECT TO app_exporter USING ((workspace_id = ( SELECT app.export_workspace() AS export_workspace)));

CREATE POLICY admin_read ON public.workspaces FOR SELECT TO app_admin USING (true);
CREATE POLICY admin_suspend ON public.workspaces FOR UPDATE TO app_admin USING (true) WITH CHECK (true);
CREATE POLICY export_read ON public.workspaces FOR SELECT TO app_exporter USING ((id = ( SELECT app.export_workspace() AS export_workspace)));

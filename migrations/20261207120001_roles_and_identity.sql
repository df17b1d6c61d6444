-- Baseline 1/7: the database roles, the two schemas, the people and workspaces every policy is
-- written about, and the functions that tell a policy who the caller is.
--
-- The baseline squashes the migrations of 2026-11-22 to 2026-12-07; scripts/schema-equivalence.sh
-- proves it builds the same schema. Design notes: docs/schema.md and docs/tenancy.md. Later
-- changes go in timestamped migrations after these seven files.

-- Roles are cluster-wide, so each is created only when missing (a parallel migration of another
-- database creating it first is not an error). All are NOLOGIN: a deployment grants them to its
-- login users (`GRANT app_api TO api_user`), which keeps passwords out of migrations. The
-- migration owner (whoever runs these files) owns every object not given to a role below.
--   app_api       the HTTP functions: sees only what the policies grant the caller of the request
--   app_service   local tools and the owner of the SECURITY DEFINER helpers; no worker logs in as it
--   app_billing   the billing worker: subscriptions, Stripe events, seat syncs, cancellations
--   app_usage     the usage reporter: usage records and the runs they bill
--   app_sweeper   the sweeper: stale runs, expired rows
--   app_audit     owns the audit triggers; alone appends to the audit log and moves chain heads
--   app_mailer    the e-mail worker: the outbox only
--   app_webhooks  the webhook dispatcher: endpoints (secrets included), deliveries, attempts
--   app_fanout    the realtime fan-out: activity entries, connections, subscriptions
--   app_admin     platform operators: read every tenant by their own policies, write nothing
--   app_exporter  the export worker: one workspace per transaction, no secret column
-- None has BYPASSRLS; each worker role has only the tables its worker works on.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['app_api', 'app_service', 'app_billing', 'app_usage',
        'app_sweeper', 'app_audit', 'app_mailer', 'app_webhooks', 'app_fanout', 'app_admin',
        'app_exporter']
    LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END LOOP;
END
$$;

CREATE SCHEMA app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public, app TO app_api, app_service, app_billing, app_usage, app_sweeper,
    app_audit, app_mailer, app_webhooks, app_fanout, app_admin, app_exporter;

-- The SQL bodies of stored_contact_client_ids, stored_contact_workspace_ids read tables of later files:
-- PostgreSQL checks them when they are first called instead of here.
SET LOCAL check_function_bodies = off;

CREATE TYPE public.member_role AS ENUM (
    'owner',
    'admin',
    'member',
    'viewer'
);

-- Tables

CREATE TABLE public.users (
    id uuid NOT NULL,
    issuer text NOT NULL,
    subject text NOT NULL,
    email text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT users_email_length CHECK ((char_length(email) <= 254)),
    CONSTRAINT users_issuer_length CHECK (((char_length(issuer) >= 1) AND (char_length(issuer) <= 512))),
    CONSTRAINT users_subject_length CHECK (((char_length(subject) >= 1) AND (char_length(subject) <= 255))),
    CONSTRAINT users_issuer_subject_key UNIQUE (issuer, subject),
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
CREATE INDEX users_email_idx ON public.users USING btree (lower(email));

CREATE TABLE public.workspaces (
    id uuid NOT NULL,
    name text NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    stripe_customer_id text,
    suspended_at timestamp with time zone,
    suspended_reason text,
    CONSTRAINT workspaces_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT workspaces_suspended_reason_length CHECK ((char_length(suspended_reason) <= 1000)),
    CONSTRAINT workspaces_pkey PRIMARY KEY (id),
    CONSTRAINT workspaces_stripe_customer_key UNIQUE (stripe_customer_id),
    CONSTRAINT workspaces_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL
);

CREATE TABLE public.workspace_members (
    workspace_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role public.member_role NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workspace_members_pkey PRIMARY KEY (workspace_id, user_id),
    CONSTRAINT workspace_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE,
    CONSTRAINT workspace_members_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX workspace_members_user_idx ON public.workspace_members USING btree (user_id, workspace_id, role);

-- Functions

-- Reads a setting only; nothing to pin, and without a SET clause PostgreSQL inlines it.
CREATE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(pg_catalog.current_setting('app.user_id', true), '')::uuid $$;
REVOKE ALL ON FUNCTION app.current_user_id() FROM PUBLIC;
GRANT ALL ON FUNCTION app.current_user_id() TO app_api;
GRANT ALL ON FUNCTION app.current_user_id() TO app_service;

-- The caller's memberships as stored. The policies' helpers (app.member_workspace_ids and
-- the like) answer from what the request opening entered when it entered a workspace, and from
-- these lookups otherwise.
CREATE FUNCTION app.stored_member_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO ''
    AS $$
    SELECT coalesce(array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = app.current_user_id()
$$;
ALTER FUNCTION app.stored_member_workspace_ids() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.stored_member_workspace_ids() FROM PUBLIC;
GRANT ALL ON FUNCTION app.stored_member_workspace_ids() TO app_api;

-- The entered workspace, if one was entered for the current caller in this transaction.
CREATE FUNCTION app.entered_workspace() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN pg_catalog.current_setting('app.entered_user', true)
                     = pg_catalog.current_setting('app.user_id', true)
                THEN nullif(pg_catalog.current_setting('app.entered_workspace', true), '')::uuid
           END
$$;
REVOKE ALL ON FUNCTION app.entered_workspace() FROM PUBLIC;
GRANT ALL ON FUNCTION app.entered_workspace() TO app_api;
GRANT ALL ON FUNCTION app.entered_workspace() TO app_service;

CREATE FUNCTION app.member_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_member_workspace_ids()
        WHEN pg_catalog.current_setting('app.entered_role', true) <> '' THEN ARRAY[app.entered_workspace()]
        ELSE '{}'::uuid[]
    END
$$;
ALTER FUNCTION app.member_workspace_ids() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.member_workspace_ids() FROM PUBLIC;
GRANT ALL ON FUNCTION app.member_workspace_ids() TO app_api;

CREATE FUNCTION app.stored_workspaces_with_role(roles public.member_role[]) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO ''
    AS $$
    SELECT coalesce(array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = app.current_user_id() AND m.role = ANY (roles)
$$;
ALTER FUNCTION app.stored_workspaces_with_role(roles public.member_role[]) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.stored_workspaces_with_role(roles public.member_role[]) FROM PUBLIC;
GRANT ALL ON FUNCTION app.stored_workspaces_with_role(roles public.member_role[]) TO app_api;

CREATE FUNCTION app.workspaces_with_role(roles public.member_role[]) RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_workspaces_with_role(roles)
        WHEN nullif(pg_catalog.current_setting('app.entered_role', true), '')::public.member_role = ANY (roles)
            THEN ARRAY[app.entered_workspace()]
        ELSE '{}'::uuid[]
    END
$$;
ALTER FUNCTION app.workspaces_with_role(roles public.member_role[]) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.workspaces_with_role(roles public.member_role[]) FROM PUBLIC;
GRANT ALL ON FUNCTION app.workspaces_with_role(roles public.member_role[]) TO app_api;

CREATE FUNCTION app.stored_contact_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO ''
    AS $$
    SELECT coalesce(array_agg(c.client_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
      AND (SELECT f.enabled FROM app.feature_in_force(c.workspace_id, 'client_portal') f)
$$;
ALTER FUNCTION app.stored_contact_client_ids() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.stored_contact_client_ids() FROM PUBLIC;
GRANT ALL ON FUNCTION app.stored_contact_client_ids() TO app_api;

CREATE FUNCTION app.contact_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_contact_client_ids()
        ELSE coalesce(nullif(pg_catalog.current_setting('app.entered_clients', true), '')::uuid[], '{}')
    END
$$;
ALTER FUNCTION app.contact_client_ids() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.contact_client_ids() FROM PUBLIC;
GRANT ALL ON FUNCTION app.contact_client_ids() TO app_api;

CREATE FUNCTION app.stored_contact_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO ''
    AS $$
    SELECT coalesce(array_agg(DISTINCT c.workspace_id), '{}')
    FROM public.client_contacts c
    WHERE c.user_id = app.current_user_id()
      AND (SELECT f.enabled FROM app.feature_in_force(c.workspace_id, 'client_portal') f)
$$;
ALTER FUNCTION app.stored_contact_workspace_ids() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.stored_contact_workspace_ids() FROM PUBLIC;
GRANT ALL ON FUNCTION app.stored_contact_workspace_ids() TO app_api;

CREATE FUNCTION app.contact_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN app.entered_workspace() IS NULL THEN app.stored_contact_workspace_ids()
        WHEN pg_catalog.current_setting('app.entered_clients', true) <> '' THEN ARRAY[app.entered_workspace()]
        ELSE '{}'::uuid[]
    END
$$;
ALTER FUNCTION app.contact_workspace_ids() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.contact_workspace_ids() FROM PUBLIC;
GRANT ALL ON FUNCTION app.contact_workspace_ids() TO app_api;

-- A request by a known user whose e-mail is unchanged writes nothing: no transaction id, no WAL,
-- no lock on the user's row (so one user's concurrent requests do not queue on it). The user
-- row is written only when it is missing or the token carries a new e-mail.
CREATE FUNCTION app.ensure_user(p_id uuid, p_issuer text, p_subject text, p_email text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
BEGIN
    IF p_id IS DISTINCT FROM app.current_user_id() THEN
        RAISE EXCEPTION 'ensure_user may only create the caller' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM public.users u
               WHERE u.id = p_id AND (p_email IS NULL OR u.email IS NOT DISTINCT FROM p_email)) THEN
        RETURN;
    END IF;
    INSERT INTO public.users AS u (id, issuer, subject, email)
    VALUES (p_id, p_issuer, p_subject, p_email)
    ON CONFLICT (id) DO UPDATE
        SET email = excluded.email, updated_at = now()
        WHERE excluded.email IS NOT NULL AND u.email IS DISTINCT FROM excluded.email;
END
$$;
ALTER FUNCTION app.ensure_user(p_id uuid, p_issuer text, p_subject text, p_email text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.ensure_user(p_id uuid, p_issuer text, p_subject text, p_email text) FROM PUBLIC;
GRANT ALL ON FUNCTION app.ensure_user(p_id uuid, p_issuer text, p_subject text, p_email text) TO app_api;

-- A key is no user: it may not create workspaces (it acts inside its own only).
CREATE FUNCTION app.create_workspace(p_id uuid, p_name text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    caller uuid := app.current_user_id();
BEGIN
    IF caller IS NULL OR nullif(pg_catalog.current_setting('app.api_key_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'no person to own the workspace' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.workspaces (id, name, created_by) VALUES (p_id, p_name, caller);
    INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (p_id, caller, 'owner');
END
$$;
ALTER FUNCTION app.create_workspace(p_id uuid, p_name text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.create_workspace(p_id uuid, p_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION app.create_workspace(p_id uuid, p_name text) TO app_api;

-- A workspace always keeps at least one owner. The workspace row is locked first so two
-- concurrent demotions of its last two owners cannot both succeed.
CREATE FUNCTION app.keep_an_owner() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
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
ALTER FUNCTION app.keep_an_owner() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.keep_an_owner() FROM PUBLIC;

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
REVOKE ALL ON FUNCTION app.current_actor() FROM PUBLIC;
GRANT ALL ON FUNCTION app.current_actor() TO app_audit;
GRANT ALL ON FUNCTION app.current_actor() TO app_service;

-- Time-ordered ids (UUIDv7, as the API makes in Rust) for rows made in SQL: delivery logs page by
-- id, newest first. PostgreSQL 15 has no uuidv7(): the first 48 bits of a random UUID are
-- replaced by the Unix time in milliseconds and the version nibble set to 7.
CREATE FUNCTION app.uuid_v7() RETURNS uuid
    LANGUAGE sql
    SET search_path TO ''
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
REVOKE ALL ON FUNCTION app.uuid_v7() FROM PUBLIC;
GRANT ALL ON FUNCTION app.uuid_v7() TO app_service;
GRANT ALL ON FUNCTION app.uuid_v7() TO app_billing;

-- Whether two addresses are the same mailbox as far as this product can know: the domain in any
-- case (DNS is case-insensitive), the part before the last @ exactly (RFC 5321 lets a mail
-- server tell `Victim` from `victim`, so an account that signed in as one is not the other).
CREATE FUNCTION app.same_mailbox(a text, b text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT pg_catalog.substring(a, '^(.*)@') = pg_catalog.substring(b, '^(.*)@')
       AND pg_catalog.lower(pg_catalog.substring(a, '@([^@]*)$'))
         = pg_catalog.lower(pg_catalog.substring(b, '@([^@]*)$'))
$_$;

ALTER FUNCTION app.same_mailbox(a text, b text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.same_mailbox(a text, b text) FROM PUBLIC;

-- Triggers

CREATE TRIGGER workspace_members_keep_an_owner AFTER DELETE OR UPDATE ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION app.keep_an_owner();

-- Row-level security, policies and grants

ALTER TABLE public.workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_lock ON public.workspaces FOR UPDATE TO app_audit USING (true) WITH CHECK (false);
CREATE POLICY audit_lock_read ON public.workspaces FOR SELECT TO app_audit USING (true);
CREATE POLICY billing_all ON public.workspaces TO app_billing USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.workspaces TO app_service USING (true) WITH CHECK (true);
CREATE POLICY sweeper_read ON public.workspaces FOR SELECT TO app_sweeper USING (true);
CREATE POLICY usage_read ON public.workspaces FOR SELECT TO app_usage USING (true);
CREATE POLICY workspaces_delete ON public.workspaces FOR DELETE TO app_api USING ((id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY workspaces_select ON public.workspaces FOR SELECT TO app_api USING (((id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (id = ANY (( SELECT app.contact_workspace_ids() AS contact_workspace_ids)::uuid[]))));
CREATE POLICY workspaces_update ON public.workspaces FOR UPDATE TO app_api USING ((id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspaces TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspaces TO app_service;
GRANT SELECT ON TABLE public.workspaces TO app_billing;
GRANT SELECT ON TABLE public.workspaces TO app_usage;
GRANT SELECT ON TABLE public.workspaces TO app_sweeper;
GRANT SELECT ON TABLE public.workspaces TO app_admin;
GRANT SELECT ON TABLE public.workspaces TO app_exporter;
GRANT SELECT(id),UPDATE(id) ON TABLE public.workspaces TO app_audit;
GRANT UPDATE(stripe_customer_id) ON TABLE public.workspaces TO app_billing;
GRANT UPDATE(suspended_at) ON TABLE public.workspaces TO app_admin;
GRANT UPDATE(suspended_reason) ON TABLE public.workspaces TO app_admin;

--
--

ALTER TABLE public.workspace_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.workspace_members FORCE ROW LEVEL SECURITY;
CREATE POLICY members_delete ON public.workspace_members FOR DELETE TO app_api USING (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role <> 'owner'::public.member_role)) OR (user_id = ( SELECT app.current_user_id() AS current_user_id))));
CREATE POLICY members_insert ON public.workspace_members FOR INSERT TO app_api WITH CHECK (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role <> 'owner'::public.member_role))));
CREATE POLICY members_select ON public.workspace_members FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])));
CREATE POLICY members_update ON public.workspace_members FOR UPDATE TO app_api USING (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role <> 'owner'::public.member_role)))) WITH CHECK (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role <> 'owner'::public.member_role))));
CREATE POLICY service_all ON public.workspace_members TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_members TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_members TO app_service;
GRANT SELECT ON TABLE public.workspace_members TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.workspace_members TO app_exporter;
GRANT SELECT(user_id) ON TABLE public.workspace_members TO app_exporter;
GRANT SELECT(role) ON TABLE public.workspace_members TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.workspace_members TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.workspace_members TO app_exporter;

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.users FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON public.users TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.users TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.users TO app_service;
GRANT SELECT ON TABLE public.users TO app_admin;
GRANT SELECT(id) ON TABLE public.users TO app_exporter;
GRANT SELECT(email) ON TABLE public.users TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.users TO app_exporter;
GRANT SELECT(updated_at) ON TABLE public.users TO app_exporter;

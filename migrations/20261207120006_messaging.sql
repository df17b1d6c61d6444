-- Baseline 6/7: what goes out. Invitations (the only way anyone joins a workspace or a client),
-- the e-mail outbox, outgoing webhooks (endpoints, events, one delivery per event and endpoint,
-- every attempt), the activity feed, and the live connections it is pushed to.
--
-- Mails, webhook events and activity rows are written by triggers or definer functions in the
-- transaction of the change that causes them, so no write path skips them and a change that
-- rolls back sends nothing. docs/messaging.md and docs/activity-and-audit.md have the details.

-- Tables

CREATE TABLE public.activity (
    id uuid DEFAULT app.uuid_v7() NOT NULL,
    workspace_id uuid NOT NULL,
    kind text NOT NULL,
    message text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    actor_id uuid,
    actor text,
    verb text DEFAULT 'billing.note'::text NOT NULL,
    subject_type text,
    subject_id uuid,
    subject_name text,
    project_id uuid,
    client_id uuid,
    client_visible boolean DEFAULT false NOT NULL,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    fanout_queued_at timestamp with time zone,
    CONSTRAINT activity_pkey PRIMARY KEY (id),
    CONSTRAINT activity_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT activity_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX activity_project_idx ON public.activity USING btree (workspace_id, project_id, id DESC) WHERE (project_id IS NOT NULL);
CREATE INDEX activity_unqueued_idx ON public.activity USING btree (id) WHERE (fanout_queued_at IS NULL);
CREATE INDEX activity_visible_idx ON public.activity USING btree (project_id, id DESC) WHERE client_visible;
CREATE INDEX activity_workspace_idx ON public.activity USING btree (workspace_id, id DESC);

CREATE TABLE public.invitations (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    email text NOT NULL,
    role public.member_role,
    client_id uuid,
    token_hash bytea NOT NULL,
    invited_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    accepted_at timestamp with time zone,
    accepted_by uuid,
    revoked_at timestamp with time zone,
    CONSTRAINT invitations_email_length CHECK (((char_length(email) >= 3) AND (char_length(email) <= 320))),
    CONSTRAINT invitations_kind CHECK (((role IS NULL) <> (client_id IS NULL))),
    CONSTRAINT invitations_pkey PRIMARY KEY (id),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_accepted_by_fkey FOREIGN KEY (accepted_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT invitations_client_fkey FOREIGN KEY (client_id, workspace_id) REFERENCES public.clients(id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT invitations_invited_by_fkey FOREIGN KEY (invited_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT invitations_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX invitations_pending_key ON public.invitations USING btree (workspace_id, lower(email), COALESCE(client_id, '00000000-0000-0000-0000-000000000000'::uuid)) WHERE ((accepted_at IS NULL) AND (revoked_at IS NULL));
CREATE INDEX invitations_workspace_idx ON public.invitations USING btree (workspace_id, id DESC);

-- The outbox of e-mails: written in the same transaction as their cause, sent once by the
-- email-worker (the row's id is the idempotency key), re-enqueued by its sweep if never sent.
-- `dedupe_key` makes "once per invoice" or "once per workspace per month" a constraint.
CREATE TABLE public.emails (
    id uuid NOT NULL,
    workspace_id uuid,
    to_address text NOT NULL,
    template text NOT NULL,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    dedupe_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    enqueued_at timestamp with time zone,
    sent_at timestamp with time zone,
    ses_message_id text,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    CONSTRAINT emails_dedupe_key UNIQUE (dedupe_key),
    CONSTRAINT emails_pkey PRIMARY KEY (id),
    CONSTRAINT emails_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX emails_unsent_idx ON public.emails USING btree (created_at) WHERE (sent_at IS NULL);
CREATE INDEX emails_workspace_idx ON public.emails USING btree (workspace_id, id DESC);

CREATE TABLE public.webhook_endpoints (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    url text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    events text[] NOT NULL,
    format text DEFAULT 'standard'::text NOT NULL,
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at timestamp with time zone,
    failing_since timestamp with time zone,
    disabled_at timestamp with time zone,
    disabled_reason text,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT webhook_endpoints_description_length CHECK ((char_length(description) <= 500)),
    CONSTRAINT webhook_endpoints_events CHECK (((cardinality(events) >= 1) AND (cardinality(events) <= 50))),
    CONSTRAINT webhook_endpoints_format CHECK ((format = ANY (ARRAY['standard'::text, 'slack'::text, 'discord'::text]))),
    CONSTRAINT webhook_endpoints_url_length CHECK (((char_length(url) >= 8) AND (char_length(url) <= 2048))),
    CONSTRAINT webhook_endpoints_id_workspace_key UNIQUE (id, workspace_id),
    CONSTRAINT webhook_endpoints_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_endpoints_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL,
    CONSTRAINT webhook_endpoints_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX webhook_endpoints_workspace_idx ON public.webhook_endpoints USING btree (workspace_id, id DESC);

-- What happened, once per event; the body every endpoint gets (as the Standard Webhooks
-- envelope: type, timestamp, data). Its id is the `webhook-id` receivers deduplicate on.
CREATE TABLE public.webhook_events (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT webhook_events_id_workspace_key UNIQUE (id, workspace_id),
    CONSTRAINT webhook_events_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_events_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX webhook_events_workspace_idx ON public.webhook_events USING btree (workspace_id, id DESC);

-- One event to one endpoint: pending until sent (or its attempts run out).
CREATE TABLE public.webhook_deliveries (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    event_id uuid NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 8 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    enqueued_at timestamp with time zone,
    last_status_code integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT webhook_deliveries_status CHECK ((status = ANY (ARRAY['pending'::text, 'succeeded'::text, 'failed'::text]))),
    CONSTRAINT webhook_deliveries_event_endpoint_key UNIQUE (event_id, endpoint_id),
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_endpoint_fkey FOREIGN KEY (endpoint_id, workspace_id) REFERENCES public.webhook_endpoints(id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_event_fkey FOREIGN KEY (event_id, workspace_id) REFERENCES public.webhook_events(id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due_idx ON public.webhook_deliveries USING btree (next_attempt_at) WHERE (status = 'pending'::text);
CREATE INDEX webhook_deliveries_endpoint_idx ON public.webhook_deliveries USING btree (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_workspace_idx ON public.webhook_deliveries USING btree (workspace_id);

-- Every attempt: what the receiver answered (or why nothing was), how long it took, and the
-- first few KiB of its answer.
CREATE TABLE public.webhook_attempts (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    delivery_id uuid NOT NULL,
    attempted_at timestamp with time zone DEFAULT now() NOT NULL,
    status_code integer,
    latency_ms integer NOT NULL,
    response_body text DEFAULT ''::text NOT NULL,
    error text,
    CONSTRAINT webhook_attempts_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES public.webhook_deliveries(id) ON DELETE CASCADE,
    CONSTRAINT webhook_attempts_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_delivery_idx ON public.webhook_attempts USING btree (delivery_id, id);
CREATE INDEX webhook_attempts_workspace_idx ON public.webhook_attempts USING btree (workspace_id);

CREATE TABLE public.realtime_connections (
    id text NOT NULL,
    user_id uuid NOT NULL,
    api_key_id uuid,
    connected_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    CONSTRAINT realtime_connections_id_length CHECK (((char_length(id) >= 1) AND (char_length(id) <= 128))),
    CONSTRAINT realtime_connections_pkey PRIMARY KEY (id),
    CONSTRAINT realtime_connections_api_key_id_fkey FOREIGN KEY (api_key_id) REFERENCES public.api_keys(id) ON DELETE CASCADE,
    CONSTRAINT realtime_connections_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE
);
CREATE INDEX realtime_connections_user_idx ON public.realtime_connections USING btree (user_id);

CREATE TABLE public.realtime_subscriptions (
    connection_id text NOT NULL,
    workspace_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT realtime_subscriptions_pkey PRIMARY KEY (connection_id, workspace_id),
    CONSTRAINT realtime_subscriptions_connection_id_fkey FOREIGN KEY (connection_id) REFERENCES public.realtime_connections(id) ON DELETE CASCADE,
    CONSTRAINT realtime_subscriptions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE,
    CONSTRAINT realtime_subscriptions_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE
);
CREATE INDEX realtime_subscriptions_user_idx ON public.realtime_subscriptions USING btree (user_id);
CREATE INDEX realtime_subscriptions_workspace_idx ON public.realtime_subscriptions USING btree (workspace_id);

-- Functions

-- Accepts an invitation for the caller: the token proves the mail was read, and the accepting
-- account's verified address must be the invited mailbox exactly (`app.same_mailbox`), so a
-- look-alike address another subject claimed cannot take it.
CREATE FUNCTION app.accept_invitation(p_token_hash bytea) RETURNS TABLE(outcome text, workspace_id uuid, client_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    caller uuid := app.current_user_id();
    caller_email text;
    invitation public.invitations;
BEGIN
    IF caller IS NULL OR nullif(pg_catalog.current_setting('app.api_key_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'only a person accepts an invitation' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO invitation FROM public.invitations i WHERE i.token_hash = p_token_hash FOR UPDATE;
    workspace_id := invitation.workspace_id;
    client_id := invitation.client_id;
    role := invitation.role::text;
    SELECT u.email INTO caller_email FROM public.users u WHERE u.id = caller;
    outcome := CASE
        WHEN invitation.id IS NULL THEN 'unknown'
        WHEN invitation.revoked_at IS NOT NULL THEN 'revoked'
        WHEN invitation.accepted_at IS NOT NULL AND invitation.accepted_by = caller THEN 'already'
        WHEN invitation.accepted_at IS NOT NULL THEN 'used'
        WHEN invitation.expires_at <= now() THEN 'expired'
        WHEN caller_email IS NULL OR NOT app.same_mailbox(caller_email, invitation.email) THEN 'email_mismatch'
        ELSE 'accepted'
    END;
    IF outcome <> 'accepted' THEN
        IF outcome = 'unknown' THEN
            workspace_id := NULL;
            client_id := NULL;
            role := NULL;
        END IF;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE public.invitations i SET accepted_at = now(), accepted_by = caller WHERE i.id = invitation.id;
    IF invitation.role IS NOT NULL THEN
        INSERT INTO public.workspace_members AS m (workspace_id, user_id, role)
        VALUES (invitation.workspace_id, caller, invitation.role)
        ON CONFLICT ON CONSTRAINT workspace_members_pkey DO NOTHING;
    ELSE
        INSERT INTO public.client_contacts (workspace_id, client_id, user_id)
        VALUES (invitation.workspace_id, invitation.client_id, caller)
        ON CONFLICT ON CONSTRAINT client_contacts_pkey DO NOTHING;
    END IF;
    RETURN NEXT;
END
$$;
ALTER FUNCTION app.accept_invitation(p_token_hash bytea) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.accept_invitation(p_token_hash bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION app.accept_invitation(p_token_hash bytea) TO app_api;

-- A mail to each owner and admin of a workspace, once per `p_dedupe` and person: for workers
-- (a failed payment, the AI quota) that have no business reading the member list themselves.
-- Answers how many mails were written.
CREATE FUNCTION app.mail_workspace_managers(p_workspace uuid, p_template text, p_params jsonb, p_dedupe text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    written integer;
BEGIN
    INSERT INTO public.emails (id, workspace_id, to_address, template, params, dedupe_key)
    SELECT gen_random_uuid(), p_workspace, u.email, p_template,
           p_params || pg_catalog.jsonb_build_object('workspace', w.name),
           p_dedupe || ':' || u.id
    FROM public.workspace_members m
    JOIN public.users u ON u.id = m.user_id
    JOIN public.workspaces w ON w.id = m.workspace_id
    WHERE m.workspace_id = p_workspace AND m.role IN ('owner', 'admin') AND u.email IS NOT NULL
    ON CONFLICT ON CONSTRAINT emails_dedupe_key DO NOTHING;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
ALTER FUNCTION app.mail_workspace_managers(p_workspace uuid, p_template text, p_params jsonb, p_dedupe text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.mail_workspace_managers(p_workspace uuid, p_template text, p_params jsonb, p_dedupe text) FROM PUBLIC;
GRANT ALL ON FUNCTION app.mail_workspace_managers(p_workspace uuid, p_template text, p_params jsonb, p_dedupe text) TO app_billing;
GRANT ALL ON FUNCTION app.mail_workspace_managers(p_workspace uuid, p_template text, p_params jsonb, p_dedupe text) TO app_webhooks;

CREATE FUNCTION app.mail_ai_quota() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    allowed integer;
    threshold integer;
BEGIN
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(NEW.workspace_id);
    allowed := app.effective_limit(NEW.workspace_id, 'ai_runs_per_month', allowed);
    IF coalesce(allowed, 0) = 0 THEN
        RETURN NULL;
    END IF;
    FOREACH threshold IN ARRAY ARRAY[80, 100] LOOP
        IF NEW.reserved * 100 >= allowed * threshold
           AND (TG_OP = 'INSERT' OR OLD.reserved * 100 < allowed * threshold) THEN
            PERFORM app.mail_workspace_managers(
                NEW.workspace_id, 'ai_quota',
                pg_catalog.jsonb_build_object('percent', threshold, 'limit', allowed),
                'ai_quota:' || threshold || ':' || NEW.workspace_id || ':' || NEW.period);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.mail_ai_quota() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.mail_ai_quota() FROM PUBLIC;

-- A rotation keeps the secret it replaces while the overlap lasts. Done here because the API
-- role, which rotates, cannot read secrets (a trigger is handed the old row all the same).
CREATE FUNCTION app.keep_previous_webhook_secret() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
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
REVOKE ALL ON FUNCTION app.keep_previous_webhook_secret() FROM PUBLIC;

-- Writes an event and its deliveries, to every enabled endpoint of the workspace subscribed to
-- its type; nothing at all when there is none (most changes of most workspaces). Called by the
-- triggers below, whoever made the change (a member, a client contact, a worker).
CREATE FUNCTION app.emit_webhook_event(p_workspace uuid, p_type text, p_data jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
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
ALTER FUNCTION app.emit_webhook_event(p_workspace uuid, p_type text, p_data jsonb) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.emit_webhook_event(p_workspace uuid, p_type text, p_data jsonb) FROM PUBLIC;

-- What each change is called and what its event carries (the row as it is after the change,
-- with the fields a receiver needs and nothing internal).
CREATE FUNCTION app.webhook_on_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
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
ALTER FUNCTION app.webhook_on_change() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.webhook_on_change() FROM PUBLIC;

-- Writes one activity row (a definer: whoever made the change, the row is written). Nothing for
-- a change cascading from the workspace's own deletion.
CREATE FUNCTION app.record_activity(p_workspace uuid, p_verb text, p_subject_type text, p_subject_id uuid, p_subject_name text, p_project uuid, p_visible boolean, p_message text, p_data jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    project_client uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.workspaces w WHERE w.id = p_workspace) THEN
        RETURN;
    END IF;
    IF p_project IS NOT NULL THEN
        SELECT p.client_id INTO project_client FROM public.projects p WHERE p.id = p_project;
    END IF;
    INSERT INTO public.activity (workspace_id, kind, message, actor_id, actor, verb, subject_type, subject_id,
                                 subject_name, project_id, client_id, client_visible, data)
    VALUES (p_workspace, p_subject_type, p_message, app.current_user_id(), app.current_actor(), p_verb,
            p_subject_type, p_subject_id, p_subject_name, p_project, project_client,
            coalesce(p_visible, false) AND project_client IS NOT NULL, coalesce(p_data, '{}'));
END
$$;
ALTER FUNCTION app.record_activity(p_workspace uuid, p_verb text, p_subject_type text, p_subject_id uuid, p_subject_name text, p_project uuid, p_visible boolean, p_message text, p_data jsonb) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.record_activity(p_workspace uuid, p_verb text, p_subject_type text, p_subject_id uuid, p_subject_name text, p_project uuid, p_visible boolean, p_message text, p_data jsonb) FROM PUBLIC;

-- What each change is called in the feed.
CREATE FUNCTION app.activity_on_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
DECLARE
    member_email text;
    client_name text;
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'projects' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM app.record_activity(NEW.workspace_id, 'project.created', 'project', NEW.id, NEW.name, NEW.id, true,
                'Project “' || NEW.name || '” was created.', pg_catalog.jsonb_build_object('status', NEW.status));
        ELSIF OLD.status IS DISTINCT FROM NEW.status THEN
            PERFORM app.record_activity(NEW.workspace_id, 'project.status_changed', 'project', NEW.id, NEW.name, NEW.id,
                true, 'Project “' || NEW.name || '” is now ' || pg_catalog.replace(NEW.status::text, '_', ' ') || '.',
                pg_catalog.jsonb_build_object('status', NEW.status, 'previous_status', OLD.status));
        END IF;
    WHEN 'milestones' THEN
        IF NEW.status = 'done' AND OLD.status IS DISTINCT FROM NEW.status THEN
            PERFORM app.record_activity(NEW.workspace_id, 'milestone.done', 'milestone', NEW.id, NEW.title,
                NEW.project_id, true, 'Milestone “' || NEW.title || '” is done.', '{}');
        END IF;
    WHEN 'deliverables' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM app.record_activity(NEW.workspace_id, 'deliverable.created', 'deliverable', NEW.id, NEW.title,
                NEW.project_id, NEW.client_visible, 'Deliverable “' || NEW.title || '” was added.',
                pg_catalog.jsonb_build_object('status', NEW.status));
        ELSIF OLD.status IS DISTINCT FROM NEW.status THEN
            PERFORM app.record_activity(NEW.workspace_id, 'deliverable.status_changed', 'deliverable', NEW.id,
                NEW.title, NEW.project_id, NEW.client_visible,
                'Deliverable “' || NEW.title || '” moved to ' || pg_catalog.replace(NEW.status::text, '_', ' ') || '.',
                pg_catalog.jsonb_build_object('status', NEW.status, 'previous_status', OLD.status));
        END IF;
    WHEN 'comments' THEN
        PERFORM app.record_activity(NEW.workspace_id, 'comment.added', 'comment', NEW.id,
            pg_catalog.left(NEW.body, 80), NEW.project_id, NEW.client_visible,
            'New comment: “' || pg_catalog.left(NEW.body, 200) || '”', '{}');
    WHEN 'workspace_members' THEN
        IF TG_OP = 'INSERT' THEN
            SELECT u.email INTO member_email FROM public.users u WHERE u.id = NEW.user_id;
            PERFORM app.record_activity(NEW.workspace_id, 'member.joined', 'user', NEW.user_id, member_email, NULL,
                false, coalesce(member_email, 'A member') || ' joined as ' || NEW.role || '.',
                pg_catalog.jsonb_build_object('role', NEW.role));
        ELSE
            SELECT u.email INTO member_email FROM public.users u WHERE u.id = OLD.user_id;
            PERFORM app.record_activity(OLD.workspace_id, 'member.left', 'user', OLD.user_id, member_email, NULL,
                false, coalesce(member_email, 'A member') || ' left the workspace.',
                pg_catalog.jsonb_build_object('role', OLD.role));
        END IF;
    WHEN 'client_contacts' THEN
        SELECT u.email INTO member_email FROM public.users u WHERE u.id = NEW.user_id;
        SELECT c.name INTO client_name FROM public.clients c WHERE c.id = NEW.client_id;
        PERFORM app.record_activity(NEW.workspace_id, 'contact.linked', 'user', NEW.user_id, member_email, NULL,
            false, coalesce(member_email, 'A contact') || ' can now use the ' || coalesce(client_name, 'client') || ' portal.',
            pg_catalog.jsonb_build_object('client_id', NEW.client_id));
    WHEN 'subscriptions' THEN
        IF TG_OP = 'INSERT' OR (OLD.plan_id, OLD.status, OLD.cancel_at_period_end)
                IS DISTINCT FROM (NEW.plan_id, NEW.status, NEW.cancel_at_period_end) THEN
            PERFORM app.record_activity(NEW.workspace_id, 'subscription.changed', 'subscription', NULL, NEW.plan_id,
                NULL, false,
                'Subscription: ' || NEW.plan_id || ' plan, ' || NEW.status
                    || CASE WHEN NEW.cancel_at_period_end THEN ', ends with the period.' ELSE '.' END,
                pg_catalog.jsonb_build_object('plan', NEW.plan_id, 'status', NEW.status,
                                              'cancel_at_period_end', NEW.cancel_at_period_end));
        END IF;
    WHEN 'ai_runs' THEN
        IF NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status THEN
            PERFORM app.record_activity(NEW.workspace_id, 'ai_run.' || NEW.status, 'ai_run', NEW.id, NEW.tool,
                NEW.project_id, false,
                'AI run (' || NEW.tool || ') ' || CASE NEW.status WHEN 'succeeded' THEN 'finished.' ELSE 'failed.' END,
                pg_catalog.jsonb_build_object('tool', NEW.tool));
        END IF;
    END CASE;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.activity_on_change() OWNER TO app_service;
REVOKE ALL ON FUNCTION app.activity_on_change() FROM PUBLIC;

CREATE FUNCTION app.realtime_connection(p_id text) RETURNS TABLE(user_id uuid, issuer text, subject text, email text, api_key_id uuid, key_workspace uuid, expires_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
    SELECT c.user_id, u.issuer, u.subject, u.email, c.api_key_id, k.workspace_id, c.expires_at
    FROM public.realtime_connections c
    JOIN public.users u ON u.id = c.user_id
    LEFT JOIN public.api_keys k ON k.id = c.api_key_id
    WHERE c.id = p_id
$$;
ALTER FUNCTION app.realtime_connection(p_id text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.realtime_connection(p_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION app.realtime_connection(p_id text) TO app_api;

-- `$disconnect`: API Gateway says the connection closed; it and its subscriptions go.
CREATE FUNCTION app.realtime_disconnect(p_id text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO ''
    AS $$
    DELETE FROM public.realtime_connections c WHERE c.id = p_id
$$;
ALTER FUNCTION app.realtime_disconnect(p_id text) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.realtime_disconnect(p_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION app.realtime_disconnect(p_id text) TO app_api;

-- The live connections that may receive an activity entry: a connection whose token has expired
-- receives nothing; a key's connection only while its creator still holds the key's role; a
-- contact's only while the portal is open to them.
CREATE FUNCTION app.realtime_recipients(p_activity uuid) RETURNS TABLE(connection_id text, via text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
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
      AND (c.expires_at IS NULL OR c.expires_at > pg_catalog.now())
      AND CASE
          WHEN c.api_key_id IS NOT NULL THEN EXISTS (
              SELECT 1 FROM public.api_keys k
              WHERE k.id = c.api_key_id AND k.workspace_id = a.workspace_id AND k.revoked_at IS NULL
                AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())
                AND app.key_creator_still_entitled(k.workspace_id, k.created_by, k.role))
          ELSE EXISTS (SELECT 1 FROM public.workspace_members m
                       WHERE m.workspace_id = a.workspace_id AND m.user_id = c.user_id)
               OR (a.client_visible
                   AND (SELECT f.enabled FROM app.feature_in_force(a.workspace_id, 'client_portal') f)
                   AND EXISTS (
                       SELECT 1 FROM public.projects p
                       JOIN public.client_contacts cc ON cc.client_id = p.client_id AND cc.user_id = c.user_id
                       WHERE p.id = a.project_id))
      END
$$;
ALTER FUNCTION app.realtime_recipients(p_activity uuid) OWNER TO app_service;
REVOKE ALL ON FUNCTION app.realtime_recipients(p_activity uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION app.realtime_recipients(p_activity uuid) TO app_fanout;

-- Triggers

CREATE TRIGGER activity AFTER UPDATE OF status ON public.ai_runs FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT ON public.client_contacts FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT ON public.comments FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR UPDATE OF status ON public.deliverables FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER UPDATE OF status ON public.milestones FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR UPDATE OF status ON public.projects FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR UPDATE ON public.subscriptions FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR DELETE ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();

CREATE TRIGGER ai_quota_mail AFTER INSERT OR UPDATE OF reserved ON public.ai_quota_usage FOR EACH ROW EXECUTE FUNCTION app.mail_ai_quota();

CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.invitations FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'token_hash');
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE ON public.webhook_endpoints FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'secret', 'previous_secret');

CREATE TRIGGER invitations_plan_limit BEFORE INSERT ON public.invitations FOR EACH ROW EXECUTE FUNCTION app.enforce_plan_limit();

CREATE TRIGGER invitations_seats AFTER INSERT OR DELETE ON public.invitations FOR EACH ROW EXECUTE FUNCTION app.seats_changed();
CREATE TRIGGER invitations_seats_update AFTER UPDATE ON public.invitations FOR EACH ROW WHEN (((old.accepted_at IS DISTINCT FROM new.accepted_at) OR (old.revoked_at IS DISTINCT FROM new.revoked_at) OR (old.expires_at IS DISTINCT FROM new.expires_at))) EXECUTE FUNCTION app.seats_changed();

CREATE TRIGGER keep_previous_secret BEFORE UPDATE OF secret ON public.webhook_endpoints FOR EACH ROW EXECUTE FUNCTION app.keep_previous_webhook_secret();

CREATE TRIGGER webhooks AFTER UPDATE OF status ON public.ai_runs FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT ON public.comments FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER UPDATE OF status ON public.deliverables FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT OR DELETE OR UPDATE ON public.projects FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT OR UPDATE ON public.subscriptions FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();
CREATE TRIGGER webhooks AFTER INSERT OR DELETE ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION app.webhook_on_change();

-- Row-level security, policies and grants

ALTER TABLE public.activity ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.activity FORCE ROW LEVEL SECURITY;
CREATE POLICY activity_select ON public.activity FOR SELECT TO app_api USING (((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (client_visible AND (EXISTS ( SELECT 1
   FROM public.projects p
  WHERE ((p.id = activity.project_id) AND (p.client_id = ANY (( SELECT app.contact_client_ids() AS contact_client_ids)::uuid[]))))))));
CREATE POLICY billing_append ON public.activity FOR INSERT TO app_billing WITH CHECK (true);
CREATE POLICY fanout_all ON public.activity TO app_fanout USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.activity TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.activity TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.activity TO app_service;
GRANT INSERT ON TABLE public.activity TO app_billing;
GRANT SELECT ON TABLE public.activity TO app_fanout;
GRANT SELECT ON TABLE public.activity TO app_admin;
GRANT SELECT(id) ON TABLE public.activity TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.activity TO app_exporter;
GRANT SELECT(kind) ON TABLE public.activity TO app_exporter;
GRANT SELECT(message) ON TABLE public.activity TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.activity TO app_exporter;
GRANT SELECT(actor_id) ON TABLE public.activity TO app_exporter;
GRANT SELECT(actor) ON TABLE public.activity TO app_exporter;
GRANT SELECT(verb) ON TABLE public.activity TO app_exporter;
GRANT SELECT(subject_type) ON TABLE public.activity TO app_exporter;
GRANT SELECT(subject_id) ON TABLE public.activity TO app_exporter;
GRANT SELECT(subject_name) ON TABLE public.activity TO app_exporter;
GRANT SELECT(project_id) ON TABLE public.activity TO app_exporter;
GRANT SELECT(client_id) ON TABLE public.activity TO app_exporter;
GRANT SELECT(client_visible) ON TABLE public.activity TO app_exporter;
GRANT SELECT(data) ON TABLE public.activity TO app_exporter;
GRANT UPDATE(fanout_queued_at) ON TABLE public.activity TO app_fanout;
GRANT SELECT(fanout_queued_at) ON TABLE public.activity TO app_exporter;

ALTER TABLE public.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY dispatcher_all ON public.webhook_deliveries TO app_webhooks USING (true) WITH CHECK (true);
CREATE POLICY managers_insert ON public.webhook_deliveries FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY managers_read ON public.webhook_deliveries FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY managers_retry ON public.webhook_deliveries FOR UPDATE TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.webhook_deliveries TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT ON TABLE public.webhook_deliveries TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhook_deliveries TO app_service;
GRANT SELECT ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT ON TABLE public.webhook_deliveries TO app_admin;
GRANT SELECT(id) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT SELECT(endpoint_id) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT SELECT(event_id) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(status) ON TABLE public.webhook_deliveries TO app_api;
GRANT UPDATE(status) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(status) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(attempts) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(attempts) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(max_attempts) ON TABLE public.webhook_deliveries TO app_api;
GRANT SELECT(max_attempts) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(next_attempt_at) ON TABLE public.webhook_deliveries TO app_api;
GRANT UPDATE(next_attempt_at) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(next_attempt_at) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(enqueued_at) ON TABLE public.webhook_deliveries TO app_api;
GRANT UPDATE(enqueued_at) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(enqueued_at) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(last_status_code) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(last_status_code) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(last_error) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(last_error) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.webhook_deliveries TO app_exporter;
GRANT UPDATE(finished_at) ON TABLE public.webhook_deliveries TO app_api;
GRANT UPDATE(finished_at) ON TABLE public.webhook_deliveries TO app_webhooks;
GRANT SELECT(finished_at) ON TABLE public.webhook_deliveries TO app_exporter;

ALTER TABLE public.webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY dispatcher_all ON public.webhook_endpoints TO app_webhooks USING (true) WITH CHECK (true);
CREATE POLICY managers_all ON public.webhook_endpoints TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[]))) WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.webhook_endpoints TO app_service USING (true) WITH CHECK (true);
GRANT INSERT,DELETE ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhook_endpoints TO app_service;
GRANT SELECT ON TABLE public.webhook_endpoints TO app_webhooks;
GRANT SELECT(id) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(id) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(id) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(workspace_id) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(url),UPDATE(url) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(url) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(url) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(description),UPDATE(description) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(description) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(description) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(events),UPDATE(events) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(events) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(events) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(format),UPDATE(format) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(format) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(format) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT UPDATE(secret) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(previous_secret_expires_at),UPDATE(previous_secret_expires_at) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(previous_secret_expires_at) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(previous_secret_expires_at) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(failing_since),UPDATE(failing_since) ON TABLE public.webhook_endpoints TO app_api;
GRANT UPDATE(failing_since) ON TABLE public.webhook_endpoints TO app_webhooks;
GRANT SELECT(failing_since) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(failing_since) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(disabled_at),UPDATE(disabled_at) ON TABLE public.webhook_endpoints TO app_api;
GRANT UPDATE(disabled_at) ON TABLE public.webhook_endpoints TO app_webhooks;
GRANT SELECT(disabled_at) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(disabled_at) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(disabled_reason),UPDATE(disabled_reason) ON TABLE public.webhook_endpoints TO app_api;
GRANT UPDATE(disabled_reason) ON TABLE public.webhook_endpoints TO app_webhooks;
GRANT SELECT(disabled_reason) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(disabled_reason) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(created_by) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(created_by) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(created_by) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(created_at) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(created_at) ON TABLE public.webhook_endpoints TO app_exporter;
GRANT SELECT(updated_at),UPDATE(updated_at) ON TABLE public.webhook_endpoints TO app_api;
GRANT SELECT(updated_at) ON TABLE public.webhook_endpoints TO app_admin;
GRANT SELECT(updated_at) ON TABLE public.webhook_endpoints TO app_exporter;

ALTER TABLE public.webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY dispatcher_append ON public.webhook_attempts FOR INSERT TO app_webhooks WITH CHECK (true);
CREATE POLICY managers_read ON public.webhook_attempts FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY service_all ON public.webhook_attempts TO app_service USING (true) WITH CHECK (true);
GRANT SELECT ON TABLE public.webhook_attempts TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhook_attempts TO app_service;
GRANT INSERT ON TABLE public.webhook_attempts TO app_webhooks;
GRANT SELECT ON TABLE public.webhook_attempts TO app_admin;
GRANT SELECT(id) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(delivery_id) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(attempted_at) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(status_code) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(latency_ms) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(response_body) ON TABLE public.webhook_attempts TO app_exporter;
GRANT SELECT(error) ON TABLE public.webhook_attempts TO app_exporter;

ALTER TABLE public.webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.webhook_events FORCE ROW LEVEL SECURITY;
CREATE POLICY dispatcher_read ON public.webhook_events FOR SELECT TO app_webhooks USING (true);
CREATE POLICY managers_read ON public.webhook_events FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY managers_test ON public.webhook_events FOR INSERT TO app_api WITH CHECK (((type = 'webhook.test'::text) AND (workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[]))));
CREATE POLICY service_all ON public.webhook_events TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT ON TABLE public.webhook_events TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhook_events TO app_service;
GRANT SELECT ON TABLE public.webhook_events TO app_webhooks;
GRANT SELECT ON TABLE public.webhook_events TO app_admin;
GRANT SELECT(id) ON TABLE public.webhook_events TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.webhook_events TO app_exporter;
GRANT SELECT(type) ON TABLE public.webhook_events TO app_exporter;
GRANT SELECT(payload) ON TABLE public.webhook_events TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.webhook_events TO app_exporter;

ALTER TABLE public.emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.emails FORCE ROW LEVEL SECURITY;
CREATE POLICY emails_insert ON public.emails FOR INSERT TO app_api WITH CHECK ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY mailer_all ON public.emails TO app_mailer USING (true) WITH CHECK (true);
CREATE POLICY service_all ON public.emails TO app_service USING (true) WITH CHECK (true);
GRANT INSERT ON TABLE public.emails TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.emails TO app_service;
GRANT SELECT ON TABLE public.emails TO app_mailer;
GRANT SELECT(id) ON TABLE public.emails TO app_admin;
GRANT SELECT(id) ON TABLE public.emails TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.emails TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.emails TO app_exporter;
GRANT SELECT(to_address) ON TABLE public.emails TO app_admin;
GRANT SELECT(to_address) ON TABLE public.emails TO app_exporter;
GRANT SELECT(template) ON TABLE public.emails TO app_admin;
GRANT SELECT(template) ON TABLE public.emails TO app_exporter;
GRANT UPDATE(params) ON TABLE public.emails TO app_mailer;
GRANT SELECT(dedupe_key) ON TABLE public.emails TO app_admin;
GRANT SELECT(dedupe_key) ON TABLE public.emails TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.emails TO app_admin;
GRANT SELECT(created_at) ON TABLE public.emails TO app_exporter;
GRANT UPDATE(enqueued_at) ON TABLE public.emails TO app_mailer;
GRANT SELECT(enqueued_at) ON TABLE public.emails TO app_admin;
GRANT SELECT(enqueued_at) ON TABLE public.emails TO app_exporter;
GRANT UPDATE(sent_at) ON TABLE public.emails TO app_mailer;
GRANT SELECT(sent_at) ON TABLE public.emails TO app_admin;
GRANT SELECT(sent_at) ON TABLE public.emails TO app_exporter;
GRANT UPDATE(ses_message_id) ON TABLE public.emails TO app_mailer;
GRANT SELECT(ses_message_id) ON TABLE public.emails TO app_admin;
GRANT SELECT(ses_message_id) ON TABLE public.emails TO app_exporter;
GRANT UPDATE(attempts) ON TABLE public.emails TO app_mailer;
GRANT SELECT(attempts) ON TABLE public.emails TO app_admin;
GRANT SELECT(attempts) ON TABLE public.emails TO app_exporter;
GRANT UPDATE(last_error) ON TABLE public.emails TO app_mailer;
GRANT SELECT(last_error) ON TABLE public.emails TO app_admin;
GRANT SELECT(last_error) ON TABLE public.emails TO app_exporter;

ALTER TABLE public.realtime_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.realtime_connections FORCE ROW LEVEL SECURITY;
CREATE POLICY fanout_forget ON public.realtime_connections TO app_fanout USING (true);
CREATE POLICY own_connections ON public.realtime_connections TO app_api USING ((user_id = ( SELECT app.current_user_id() AS current_user_id))) WITH CHECK ((user_id = ( SELECT app.current_user_id() AS current_user_id)));
CREATE POLICY service_all ON public.realtime_connections TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT,DELETE ON TABLE public.realtime_connections TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.realtime_connections TO app_service;
GRANT SELECT,DELETE ON TABLE public.realtime_connections TO app_fanout;
GRANT SELECT ON TABLE public.realtime_connections TO app_admin;

ALTER TABLE public.realtime_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.realtime_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY fanout_read ON public.realtime_subscriptions FOR SELECT TO app_fanout USING (true);
CREATE POLICY own_subscriptions ON public.realtime_subscriptions FOR SELECT TO app_api USING ((user_id = ( SELECT app.current_user_id() AS current_user_id)));
CREATE POLICY own_subscriptions_delete ON public.realtime_subscriptions FOR DELETE TO app_api USING ((user_id = ( SELECT app.current_user_id() AS current_user_id)));
CREATE POLICY service_all ON public.realtime_subscriptions TO app_service USING (true) WITH CHECK (true);
CREATE POLICY subscribe_entered ON public.realtime_subscriptions FOR INSERT TO app_api WITH CHECK (((user_id = ( SELECT app.current_user_id() AS current_user_id)) AND ((workspace_id = ANY (( SELECT app.member_workspace_ids() AS member_workspace_ids)::uuid[])) OR (workspace_id = ANY (( SELECT app.contact_workspace_ids() AS contact_workspace_ids)::uuid[]))) AND (EXISTS ( SELECT 1
   FROM public.realtime_connections c
  WHERE ((c.id = realtime_subscriptions.connection_id) AND (c.user_id = ( SELECT app.current_user_id() AS current_user_id)))))));
GRANT SELECT,INSERT,DELETE ON TABLE public.realtime_subscriptions TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.realtime_subscriptions TO app_service;
GRANT SELECT ON TABLE public.realtime_subscriptions TO app_fanout;
GRANT SELECT ON TABLE public.realtime_subscriptions TO app_admin;

ALTER TABLE public.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ONLY public.invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_insert ON public.invitations FOR INSERT TO app_api WITH CHECK (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role IS DISTINCT FROM 'owner'::public.member_role))));
CREATE POLICY invitations_select ON public.invitations FOR SELECT TO app_api USING ((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner,admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])));
CREATE POLICY invitations_update ON public.invitations FOR UPDATE TO app_api USING (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role IS DISTINCT FROM 'owner'::public.member_role)))) WITH CHECK (((workspace_id = ANY (( SELECT app.workspaces_with_role('{owner}'::public.member_role[]) AS workspaces_with_role)::uuid[])) OR ((workspace_id = ANY (( SELECT app.workspaces_with_role('{admin}'::public.member_role[]) AS workspaces_with_role)::uuid[])) AND (role IS DISTINCT FROM 'owner'::public.member_role))));
CREATE POLICY service_all ON public.invitations TO app_service USING (true) WITH CHECK (true);
GRANT SELECT,INSERT ON TABLE public.invitations TO app_api;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.invitations TO app_service;
GRANT SELECT(id) ON TABLE public.invitations TO app_admin;
GRANT SELECT(id) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(workspace_id) ON TABLE public.invitations TO app_admin;
GRANT SELECT(workspace_id) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(email) ON TABLE public.invitations TO app_admin;
GRANT SELECT(email) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(role) ON TABLE public.invitations TO app_admin;
GRANT SELECT(role) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(client_id) ON TABLE public.invitations TO app_admin;
GRANT SELECT(client_id) ON TABLE public.invitations TO app_exporter;
GRANT UPDATE(token_hash) ON TABLE public.invitations TO app_api;
GRANT SELECT(invited_by) ON TABLE public.invitations TO app_admin;
GRANT SELECT(invited_by) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(created_at) ON TABLE public.invitations TO app_admin;
GRANT SELECT(created_at) ON TABLE public.invitations TO app_exporter;
GRANT UPDATE(expires_at) ON TABLE public.invitations TO app_api;
GRANT SELECT(expires_at) ON TABLE public.invitations TO app_admin;
GRANT SELECT(expires_at) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(accepted_at) ON TABLE public.invitations TO app_admin;
GRANT SELECT(accepted_at) ON TABLE public.invitations TO app_exporter;
GRANT SELECT(accepted_by) ON TABLE public.invitations TO app_admin;
GRANT SELECT(accepted_by) ON TABLE public.invitations TO app_exporter;
GRANT UPDATE(revoked_at) ON TABLE public.invitations TO app_api;
GRANT SELECT(revoked_at) ON TABLE public.invitations TO app_admin;
GRANT SELECT(revoked_at) ON TABLE public.invitations TO app_exporter;

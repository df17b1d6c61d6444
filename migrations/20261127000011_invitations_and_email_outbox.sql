-- Invitations by e-mail (to the team, or to a client's portal) and the outbox of e-mails to send.

CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        text NOT NULL CONSTRAINT invitations_email_length CHECK (char_length(email) BETWEEN 3 AND 320),
    -- A team invitation has a role; a portal invitation names the client instead.
    role         member_role,
    client_id    uuid,
    -- SHA-256 of the token the invitation mail carries; the token itself is not kept here.
    token_hash   bytea NOT NULL CONSTRAINT invitations_token_hash_key UNIQUE,
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at   timestamptz,
    CONSTRAINT invitations_kind CHECK ((role IS NULL) <> (client_id IS NULL)),
    CONSTRAINT invitations_client_fkey FOREIGN KEY (client_id, workspace_id)
        REFERENCES clients (id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX invitations_workspace_idx ON invitations (workspace_id, id DESC);
-- One pending invitation per address and target (the team, or one client's portal).
CREATE UNIQUE INDEX invitations_pending_key ON invitations
    (workspace_id, lower(email), coalesce(client_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

GRANT SELECT, INSERT, UPDATE (revoked_at, token_hash, expires_at) ON invitations TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO app_service;
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON invitations TO app_service USING (true) WITH CHECK (true);
-- Owners and admins invite; only owners invite owners (as they alone grant the role).
CREATE POLICY invitations_select ON invitations FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_api WITH CHECK (
    workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
    OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role IS DISTINCT FROM 'owner')
);
CREATE POLICY invitations_update ON invitations FOR UPDATE TO app_api
    USING (
        workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
        OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role IS DISTINCT FROM 'owner'))
    WITH CHECK (
        workspace_id = ANY ((SELECT app.workspaces_with_role('{owner}'))::uuid[])
        OR (workspace_id = ANY ((SELECT app.workspaces_with_role('{admin}'))::uuid[]) AND role IS DISTINCT FROM 'owner'));
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.audit_change('id', 'token_hash');

-- The member limit counts pending team invitations too, so inviting cannot overshoot it: the
-- workspace row is locked first, as before, so concurrent invitations and joins are counted one
-- after another.
CREATE OR REPLACE FUNCTION app.enforce_plan_limit() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    plan text;
    allowed integer;
    used bigint;
BEGIN
    IF TG_TABLE_NAME = 'invitations' THEN
        -- A portal invitation takes no seat. (NEW.role is read only here: projects have none.)
        IF NEW.client_id IS NOT NULL THEN
            RETURN NEW;
        END IF;
    END IF;
    PERFORM 1 FROM public.workspaces w WHERE w.id = NEW.workspace_id FOR NO KEY UPDATE;
    plan := app.effective_plan(NEW.workspace_id);
    IF TG_TABLE_NAME = 'projects' THEN
        SELECT p.max_projects INTO allowed FROM public.plans p WHERE p.id = plan;
        SELECT count(*) INTO used FROM public.projects x WHERE x.workspace_id = NEW.workspace_id;
        IF allowed IS NOT NULL AND used >= allowed THEN
            RAISE EXCEPTION 'the % plan allows % projects', plan, allowed
                USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_projects';
        END IF;
    ELSE
        SELECT p.max_members INTO allowed FROM public.plans p WHERE p.id = plan;
        SELECT (SELECT count(*) FROM public.workspace_members x WHERE x.workspace_id = NEW.workspace_id)
             + (SELECT count(*) FROM public.invitations i
                WHERE i.workspace_id = NEW.workspace_id AND i.role IS NOT NULL
                  AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now())
        INTO used;
        IF allowed IS NOT NULL AND used >= allowed THEN
            RAISE EXCEPTION 'the % plan allows % members', plan, allowed
                USING ERRCODE = 'check_violation', CONSTRAINT = 'plan_limit_members';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invitations_plan_limit BEFORE INSERT ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.enforce_plan_limit();

-- Accepts an invitation for the caller, whose stored e-mail (from a verified token) must be the
-- invited address. Answers what happened: `accepted`, `already` (this caller accepted it
-- before: harmless), or why not: `unknown`, `revoked`, `used`, `expired`, `email_mismatch`.
CREATE FUNCTION app.accept_invitation(p_token_hash bytea)
    RETURNS TABLE (outcome text, workspace_id uuid, client_id uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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
        WHEN caller_email IS NULL OR pg_catalog.lower(caller_email) <> pg_catalog.lower(invitation.email) THEN 'email_mismatch'
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

-- The outbox of e-mails: written in the same transaction as their cause, sent once by the
-- email-worker (the row's id is the idempotency key), re-enqueued by its sweep if never sent.
-- `dedupe_key` makes "once per invoice" or "once per workspace per month" a constraint.
CREATE TABLE emails (
    id             uuid PRIMARY KEY,
    workspace_id   uuid REFERENCES workspaces (id) ON DELETE SET NULL,
    to_address     text NOT NULL,
    template       text NOT NULL,
    -- What the template needs. An invitation's token is here only until the mail is sent.
    params         jsonb NOT NULL DEFAULT '{}',
    dedupe_key     text CONSTRAINT emails_dedupe_key UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    enqueued_at    timestamptz,
    sent_at        timestamptz,
    ses_message_id text,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text
);
CREATE INDEX emails_workspace_idx ON emails (workspace_id, id DESC);
CREATE INDEX emails_unsent_idx ON emails (created_at) WHERE sent_at IS NULL;

GRANT INSERT ON emails TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON emails TO app_service;
ALTER TABLE emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE emails FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON emails TO app_service USING (true) WITH CHECK (true);
-- The API writes the mails its handlers cause (into the entered workspace) and reads none.
CREATE POLICY emails_insert ON emails FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
-- Not audited: an outbox, whose every row is caused by a change that is.

-- The e-mail worker's role: the outbox only.
DO $$
BEGIN
    BEGIN
        CREATE ROLE app_mailer NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA public, app TO app_mailer;
GRANT SELECT, UPDATE (enqueued_at, sent_at, ses_message_id, attempts, last_error, params) ON emails TO app_mailer;
CREATE POLICY mailer_all ON emails TO app_mailer USING (true) WITH CHECK (true);

-- A mail to each owner and admin of a workspace, once per `p_dedupe` and person: for workers
-- (a failed payment, the AI quota) that have no business reading the member list themselves.
-- Answers how many mails were written.
CREATE FUNCTION app.mail_workspace_managers(p_workspace uuid, p_template text, p_params jsonb, p_dedupe text)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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
REVOKE EXECUTE ON FUNCTION app.mail_workspace_managers(uuid, text, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.mail_workspace_managers(uuid, text, jsonb, text) TO app_billing;
ALTER FUNCTION app.mail_workspace_managers(uuid, text, jsonb, text) OWNER TO app_service;

-- The AI quota mails: when a reservation takes the month's runs to 80% and to 100% of the plan's
-- allowance, its owners and admins are told, once per workspace, month and threshold, in the
-- reservation's own transaction.
CREATE FUNCTION app.mail_ai_quota() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
AS $$
DECLARE
    allowed integer;
    threshold integer;
BEGIN
    SELECT p.ai_runs_per_month INTO allowed FROM public.plans p WHERE p.id = app.effective_plan(NEW.workspace_id);
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
REVOKE EXECUTE ON FUNCTION app.mail_ai_quota() FROM PUBLIC;
ALTER FUNCTION app.mail_ai_quota() OWNER TO app_service;
CREATE TRIGGER ai_quota_mail AFTER INSERT OR UPDATE OF reserved ON ai_quota_usage
    FOR EACH ROW EXECUTE FUNCTION app.mail_ai_quota();

REVOKE EXECUTE ON FUNCTION app.accept_invitation(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.accept_invitation(bytea) TO app_api;
ALTER FUNCTION app.accept_invitation(bytea) OWNER TO app_service;

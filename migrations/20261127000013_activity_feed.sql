-- The activity feed: one row per user-facing event, written by triggers in the transaction of
-- the change (so no write path can skip it and a rolled-back change leaves none), readable by
-- the workspace's members and, for client-visible rows of their clients' projects, by client
-- contacts; pushed live to WebSocket subscribers by the activity-fanout worker.

-- The billing worker still writes its own notes (with the default id); the feed's triggers run
-- as app_service and name the actor as the audit log does.
GRANT EXECUTE ON FUNCTION app.uuid_v7() TO app_billing;
GRANT EXECUTE ON FUNCTION app.current_actor() TO app_service;

ALTER TABLE activity
    ALTER COLUMN id SET DEFAULT app.uuid_v7(),
    -- Who: the user (a person or an API key's principal), and the actor as the audit log names it
    -- (`user:...`, `api_key:...`, `stripe`, a worker).
    ADD COLUMN actor_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN actor          text,
    -- What: a verb (`deliverable.status_changed`), the subject and its name at the time.
    ADD COLUMN verb           text,
    ADD COLUMN subject_type   text,
    ADD COLUMN subject_id     uuid,
    ADD COLUMN subject_name   text,
    -- Where: the project and client it belongs to, and whether the client's contacts may see it.
    ADD COLUMN project_id     uuid,
    ADD COLUMN client_id      uuid,
    ADD COLUMN client_visible boolean NOT NULL DEFAULT false,
    -- Details of the event (previous and new status, ...).
    ADD COLUMN data           jsonb NOT NULL DEFAULT '{}',
    -- When the fan-out sweep put it on the queue for live subscribers.
    ADD COLUMN fanout_queued_at timestamptz;
UPDATE activity SET verb = kind, fanout_queued_at = created_at WHERE verb IS NULL;
ALTER TABLE activity ALTER COLUMN verb SET DEFAULT 'billing.note', ALTER COLUMN verb SET NOT NULL;

DROP INDEX activity_workspace_idx;
-- Pages newest first (ids are UUIDv7): the whole feed, one project's, a contact's visible rows.
CREATE INDEX activity_workspace_idx ON activity (workspace_id, id DESC);
CREATE INDEX activity_project_idx ON activity (workspace_id, project_id, id DESC) WHERE project_id IS NOT NULL;
CREATE INDEX activity_visible_idx ON activity (project_id, id DESC) WHERE client_visible;
CREATE INDEX activity_unqueued_idx ON activity (id) WHERE fanout_queued_at IS NULL;

-- Members read the whole feed; a client contact reads the client-visible rows of the projects
-- their clients own now (like the items themselves: a project moved to another client takes
-- its history along).
DROP POLICY activity_select ON activity;
CREATE POLICY activity_select ON activity FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                   WHERE p.id = activity.project_id
                                     AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
);

-- Writes one activity row (a definer: whoever made the change, the row is written). Nothing for
-- a change cascading from the workspace's own deletion.
CREATE FUNCTION app.record_activity(
    p_workspace uuid, p_verb text, p_subject_type text, p_subject_id uuid, p_subject_name text,
    p_project uuid, p_visible boolean, p_message text, p_data jsonb
) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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
REVOKE EXECUTE ON FUNCTION app.record_activity(uuid, text, text, uuid, text, uuid, boolean, text, jsonb) FROM PUBLIC;
ALTER FUNCTION app.record_activity(uuid, text, text, uuid, text, uuid, boolean, text, jsonb) OWNER TO app_service;

-- What each change is called in the feed.
CREATE FUNCTION app.activity_on_change() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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
REVOKE EXECUTE ON FUNCTION app.activity_on_change() FROM PUBLIC;
ALTER FUNCTION app.activity_on_change() OWNER TO app_service;

CREATE TRIGGER activity AFTER INSERT OR UPDATE OF status ON projects
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER UPDATE OF status ON milestones
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR UPDATE OF status ON deliverables
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT ON comments
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR DELETE ON workspace_members
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT ON client_contacts
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER INSERT OR UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();
CREATE TRIGGER activity AFTER UPDATE OF status ON ai_runs
    FOR EACH ROW EXECUTE FUNCTION app.activity_on_change();

-- Leaving: a workspace's outbox mails go with it (they hold people's addresses), and a person can
-- delete their own account.

-- A workspace outlives the person who created it (who may delete their account).
ALTER TABLE workspaces ALTER COLUMN created_by DROP NOT NULL;
ALTER TABLE workspaces DROP CONSTRAINT workspaces_created_by_fkey;
ALTER TABLE workspaces ADD CONSTRAINT workspaces_created_by_fkey
    FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE emails DROP CONSTRAINT emails_workspace_id_fkey;
ALTER TABLE emails ADD CONSTRAINT emails_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;

-- Deletes the calling person's account. Refused (answering the workspaces, nothing changed) while
-- they are the last owner of a workspace that has other members: they must hand it over or
-- delete it first. Workspaces where they are the only member are deleted with them (nobody else
-- could ever reach them; their subscriptions are canceled by the workspace trigger). Then their
-- e-mail is erased where other workspaces show it (invitations to it, mails to it, the activity
-- feed and webhook payloads that named it), and the user row goes, taking memberships, client
-- contacts and live connections with it; what they wrote stays, with its author unset. The
-- audit log keeps its entries (the user id, which no longer resolves to anyone).
CREATE FUNCTION app.delete_account()
    RETURNS TABLE (outcome text, workspace_id uuid, workspace_name text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
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
REVOKE EXECUTE ON FUNCTION app.delete_account() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.delete_account() TO app_api;
ALTER FUNCTION app.delete_account() OWNER TO app_service;

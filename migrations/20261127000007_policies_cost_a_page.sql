-- Row-level security that costs a page, not a tenant.
--
-- 1. A project's items (milestones, deliverables, comments) are listed by workspace and project,
--    newest first: one index per table serves exactly that, so a page walks the index in its
--    order and stops, in a generic plan too (where a skewed tenant otherwise drew the planner
--    into combining the whole tenant's workspace index). It replaces the workspace-only index.
-- 2. A client contact's access to an item is decided per row by an index probe ("is the item's
--    project one of my clients'?") instead of an array of every project id of the contact's
--    clients, built for every statement: the cost follows the rows read, not the contact's
--    project count. Members are decided by the first arm and never reach the probe.
CREATE INDEX milestones_page_idx ON milestones (workspace_id, project_id, id DESC);
CREATE INDEX deliverables_page_idx ON deliverables (workspace_id, project_id, id DESC);
CREATE INDEX comments_page_idx ON comments (workspace_id, project_id, id DESC);
DROP INDEX milestones_workspace_idx;
DROP INDEX deliverables_workspace_idx;
DROP INDEX comments_workspace_idx;

DROP POLICY milestones_select ON milestones;
CREATE POLICY milestones_select ON milestones FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR EXISTS (SELECT 1 FROM public.projects p
               WHERE p.id = milestones.project_id AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[]))
);

DROP POLICY deliverables_select ON deliverables;
CREATE POLICY deliverables_select ON deliverables FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                   WHERE p.id = deliverables.project_id
                                     AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
);

DROP POLICY comments_select ON comments;
CREATE POLICY comments_select ON comments FOR SELECT TO app_api USING (
    workspace_id = ANY ((SELECT app.member_workspace_ids())::uuid[])
    OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                   WHERE p.id = comments.project_id
                                     AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
);
DROP POLICY comments_insert ON comments;
CREATE POLICY comments_insert ON comments FOR INSERT TO app_api WITH CHECK (
    author_id = (SELECT app.current_user_id())
    AND (
        workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
        OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                       WHERE p.id = comments.project_id
                                         AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
    )
);
DROP POLICY comments_update ON comments;
CREATE POLICY comments_update ON comments FOR UPDATE TO app_api
    USING (
        author_id = (SELECT app.current_user_id())
        AND (
            workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
            OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                           WHERE p.id = comments.project_id
                                             AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
        )
    )
    WITH CHECK (
        author_id = (SELECT app.current_user_id())
        AND (
            workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
            OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                           WHERE p.id = comments.project_id
                                             AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
        )
    );
DROP POLICY comments_delete ON comments;
CREATE POLICY comments_delete ON comments FOR DELETE TO app_api USING (
    workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[])
    OR (
        author_id = (SELECT app.current_user_id())
        AND (
            workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin,member}'))::uuid[])
            OR (client_visible AND EXISTS (SELECT 1 FROM public.projects p
                                           WHERE p.id = comments.project_id
                                             AND p.client_id = ANY ((SELECT app.contact_client_ids())::uuid[])))
        )
    )
);

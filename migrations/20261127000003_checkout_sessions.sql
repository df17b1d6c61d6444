-- Open Checkout Sessions, so concurrent checkouts of one workspace and plan converge on one
-- session (and one subscription) instead of each getting its own that could be paid.
CREATE TABLE checkout_sessions (
    stripe_session_id text PRIMARY KEY,
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    plan_id           text NOT NULL REFERENCES plans (id),
    url               text NOT NULL,
    expires_at        timestamptz NOT NULL,
    -- Set by the billing worker on checkout.session.completed.
    completed_at      timestamptz,
    created_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_open_idx ON checkout_sessions (workspace_id, plan_id, expires_at DESC)
    WHERE completed_at IS NULL;

GRANT SELECT, INSERT ON checkout_sessions TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON checkout_sessions TO app_service;
ALTER TABLE checkout_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkout_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON checkout_sessions TO app_service USING (true) WITH CHECK (true);
-- Only owners and admins start checkouts, so only they see and record the sessions.
CREATE POLICY checkout_sessions_select ON checkout_sessions FOR SELECT TO app_api
    USING (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));
CREATE POLICY checkout_sessions_insert ON checkout_sessions FOR INSERT TO app_api
    WITH CHECK (workspace_id = ANY ((SELECT app.workspaces_with_role('{owner,admin}'))::uuid[]));

-- A client's contacts page (`WHERE workspace_id = $1 AND client_id = $2 ... ORDER BY user_id
-- DESC`) read the whole workspace's contacts through the workspace-only index and sorted them:
-- under a generic plan the planner cannot see that one client holds thousands. With the client
-- and the page's order in the workspace's index, the page walks the index and stops at the page;
-- the index still serves everything that looked contacts up by workspace alone.
DROP INDEX public.client_contacts_workspace_idx;
CREATE INDEX client_contacts_workspace_idx ON public.client_contacts USING btree (workspace_id, client_id, user_id);

-- The AI runs page (`WHERE workspace_id = $1 ... ORDER BY id DESC`) read its tenant through the
-- idempotency keys' unique index and sorted: under a generic plan the planner cannot tell the
-- two workspace-led indexes apart. The idempotency keys are looked up by both columns, so the key
-- leads now, and only the page's own index starts with the workspace.
ALTER TABLE public.ai_runs DROP CONSTRAINT ai_runs_idempotency_key;
ALTER TABLE public.ai_runs ADD CONSTRAINT ai_runs_idempotency_key UNIQUE (idempotency_key, workspace_id);

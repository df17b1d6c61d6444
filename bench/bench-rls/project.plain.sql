-- the same, explicit filters
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
-- The ids as uuid parameters, as the handlers bind them (not an expression a generic plan cannot see through).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws AND id = :pid;
SELECT id, project_id, milestone_id, title, description, url, status, client_visible, created_at, updated_at FROM deliverables WHERE workspace_id = :ws AND project_id = :pid ORDER BY id DESC LIMIT 26;
COMMIT;

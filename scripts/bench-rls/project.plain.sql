-- the same, explicit filters
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
BEGIN;
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = bench_uuid(2, :w) AND id = bench_uuid(4, :p);
SELECT id, project_id, milestone_id, title, description, url, status, client_visible, created_at, updated_at FROM deliverables WHERE workspace_id = bench_uuid(2, :w) AND project_id = bench_uuid(4, :p) ORDER BY id DESC LIMIT 26;
COMMIT;

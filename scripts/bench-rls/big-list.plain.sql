-- the same page, explicit filters
\set w 1
\set u 1
BEGIN;
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = bench_uuid(2, :w) ORDER BY id DESC LIMIT 26;
COMMIT;

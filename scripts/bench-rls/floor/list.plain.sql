-- The ceiling: the list page with explicit filters, checking nothing about the caller (superuser).
\set w random(2, 2000)
SELECT bench_uuid(1, :w) AS uid, bench_uuid(2, :w) AS ws \gset
BEGIN;
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws ORDER BY id DESC LIMIT 26;
COMMIT;

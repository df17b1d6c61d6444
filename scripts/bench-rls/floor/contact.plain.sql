-- The ceiling: a project's client-visible comments with explicit filters, checking nothing about
-- the caller (superuser).
\set p 1 + 3 * random(0, 6665)
SELECT bench_uuid(1, 3001) AS uid, bench_uuid(2, 1) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = :ws AND project_id = :pid AND client_visible ORDER BY id DESC LIMIT 26;
COMMIT;

-- the same page, explicit filters (client-visible only)
\set w 1
\set u 3001
\set p 1 + 3 * random(0, 6665)
BEGIN;
SELECT 1 FROM projects WHERE workspace_id = bench_uuid(2, :w) AND id = bench_uuid(4, :p);
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = bench_uuid(2, :w) AND project_id = bench_uuid(4, :p) AND client_visible ORDER BY id DESC LIMIT 26;
COMMIT;

-- the same page, explicit filters (client-visible only)
\set w 1
\set u 3001
\set p 1 + 3 * random(0, 6665)
-- The ids as uuid parameters, as the handlers bind them (not an expression a generic plan cannot see through).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = :ws AND project_id = :pid AND client_visible ORDER BY id DESC LIMIT 26;
COMMIT;

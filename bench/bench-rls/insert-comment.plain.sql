-- the same insert, no row-level security
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
-- The ids as uuid parameters, as the handlers bind them (not an expression a generic plan cannot see through).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES (gen_random_uuid(), :ws, :pid, :uid, 'A comment', false) RETURNING id, project_id, author_id, body, client_visible, created_at, updated_at;
COMMIT;

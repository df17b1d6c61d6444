-- the same insert, no row-level security
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
BEGIN;
INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES (gen_random_uuid(), bench_uuid(2, :w), bench_uuid(4, :p), bench_uuid(1, :u), 'A comment', false) RETURNING id, project_id, author_id, body, client_visible, created_at, updated_at;
COMMIT;

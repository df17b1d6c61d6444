-- a comment by the owner on one of the workspace's projects
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
BEGIN;
SELECT set_config('app.user_id', bench_uuid(1, :u)::text, true), app.ensure_user(bench_uuid(1, :u), 'bench', 'u' || :u, 'u' || :u || '@bench.test');
SELECT (SELECT role FROM workspace_members WHERE workspace_id = bench_uuid(2, :w) AND user_id = app.current_user_id()), EXISTS (SELECT 1 FROM client_contacts WHERE workspace_id = bench_uuid(2, :w) AND user_id = app.current_user_id());
SELECT 1 FROM projects WHERE workspace_id = bench_uuid(2, :w) AND id = bench_uuid(4, :p);
INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) VALUES (gen_random_uuid(), bench_uuid(2, :w), bench_uuid(4, :p), bench_uuid(1, :u), 'A comment', false) RETURNING id, project_id, author_id, body, client_visible, created_at, updated_at;
COMMIT;

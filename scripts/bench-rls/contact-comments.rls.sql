-- a project's comments as the client contact with many projects
\set w 1
\set u 3001
\set p 1 + 3 * random(0, 6665)
BEGIN;
SELECT set_config('app.user_id', bench_uuid(1, :u)::text, true), app.ensure_user(bench_uuid(1, :u), 'bench', 'u' || :u, 'u' || :u || '@bench.test');
SELECT (SELECT role FROM workspace_members WHERE workspace_id = bench_uuid(2, :w) AND user_id = app.current_user_id()), EXISTS (SELECT 1 FROM client_contacts WHERE workspace_id = bench_uuid(2, :w) AND user_id = app.current_user_id());
SELECT 1 FROM projects WHERE workspace_id = bench_uuid(2, :w) AND id = bench_uuid(4, :p);
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = bench_uuid(2, :w) AND project_id = bench_uuid(4, :p) ORDER BY id DESC LIMIT 26;
COMMIT;

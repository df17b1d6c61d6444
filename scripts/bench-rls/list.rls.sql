-- projects list, newest page, as the owner of a typical workspace (what the handler runs)
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
BEGIN;
SELECT set_config('app.user_id', bench_uuid(1, :u)::text, true), app.ensure_user(bench_uuid(1, :u), 'bench', 'u' || :u, 'u' || :u || '@bench.test');
SELECT (SELECT role FROM workspace_members WHERE workspace_id = bench_uuid(2, :w) AND user_id = app.current_user_id()), EXISTS (SELECT 1 FROM client_contacts WHERE workspace_id = bench_uuid(2, :w) AND user_id = app.current_user_id());
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = bench_uuid(2, :w) ORDER BY id DESC LIMIT 26;
COMMIT;

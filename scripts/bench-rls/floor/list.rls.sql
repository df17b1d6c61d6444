-- As the functions run it: BEGIN with app.begin_request (identity, user row, role, suspension),
-- then the page under row-level security.
\set w random(2, 2000)
SELECT bench_uuid(1, :w) AS uid, bench_uuid(2, :w) AS ws \gset
\startpipeline
BEGIN;
SELECT member_role, is_contact, contact_plan, project_visible FROM app.begin_request(:uid, 'bench', 'u' || :w, 'u' || :w || '@bench.test', 'bench', :ws, NULL);
\endpipeline
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws ORDER BY id DESC LIMIT 26;
COMMIT;

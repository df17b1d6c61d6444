-- As the functions run it: BEGIN with app.begin_request, then the page under row-level security.
\set p 1 + 3 * random(0, 6665)
SELECT bench_uuid(1, 3001) AS uid, bench_uuid(2, 1) AS ws, bench_uuid(4, :p) AS pid \gset
\startpipeline
BEGIN;
SELECT member_role, is_contact, contact_plan, project_visible FROM app.begin_request(:uid, 'bench', 'u3001', 'u3001@bench.test', 'bench', :ws, :pid);
\endpipeline
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = :ws AND project_id = :pid ORDER BY id DESC LIMIT 26;
COMMIT;

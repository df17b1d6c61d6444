-- As list.rls.sql after the rate limiter's own short transaction, in the same round trip, as the
-- HTTP stack sends every request: what PostgreSQL alone does for one HTTP request.
\set w random(2, 2000)
SELECT bench_uuid(1, :w) AS uid, bench_uuid(2, :w) AS ws \gset
\startpipeline
BEGIN;
SELECT rate_policy, quota, remaining, reset_seconds, allowed, retry_after FROM app.take_rate_limit(:uid, NULL, NULL, :ws, false);
COMMIT;
BEGIN;
SELECT member_role, is_contact, contact_plan, project_visible FROM app.begin_request(:uid, 'bench', 'u' || :w, 'u' || :w || '@bench.test', 'bench', :ws, NULL);
\endpipeline
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws ORDER BY id DESC LIMIT 26;
COMMIT;

-- projects list, always the same user and workspace (run on several connections)
\set page 26
\set w 7
\set p 1
\set u 7
-- The values as parameters, as the handlers bind them (not an expression a generic plan cannot
-- see through). The statements are the handlers' own (tests/tests/suite/bench_statements.rs
-- holds them to it), with the filters a request does not ask for bound to NULL: pgbench cannot
-- bind a NULL parameter, so those are literal NULLs, which the planner folds away where the
-- handler's generic plan tests them per row.
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
-- With -D limiter=1: a lease of the rate limit (one request in 32, the tokens a lease holds far
-- from the limit; a short transaction of its own), then BEGIN and the
-- request's first statement (identity, user row, the workspace entered and the caller's
-- access), all together as TenantTx sends them: one round trip. With -D limiter=0, without
-- the rate limit (row-level security's own cost).
\set lease random(1, 32)
\if :limiter = 1 AND :lease = 1
\startpipeline
BEGIN;
SELECT rate_policy, quota, remaining, reset_seconds, allowed, retry_after, granted FROM app.lease_rate_limit(:uid, NULL, NULL, :ws, false, 0, 32);
COMMIT;
BEGIN;
SELECT member_role, is_contact, portal_open, project_visible FROM app.begin_request(:uid, 'bench', 'u' || :u, 'u' || :u || '@bench.test', 'bench', :ws, NULL);
\endpipeline
\else
\startpipeline
BEGIN;
SELECT member_role, is_contact, portal_open, project_visible FROM app.begin_request(:uid, 'bench', 'u' || :u, 'u' || :u || '@bench.test', 'bench', :ws, NULL);
\endpipeline
\endif
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws AND (NULL::project_status IS NULL OR status = NULL) AND (NULL::uuid IS NULL OR client_id = NULL) AND (NULL::uuid IS NULL OR id < NULL) ORDER BY id DESC LIMIT :page;
COMMIT;

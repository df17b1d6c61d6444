-- Explicit filters that also check the caller, as an application without row-level security
-- must: the page only if the caller is a member (one index probe, inside the page's statement).
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
-- The ids as uuid parameters, as the handlers bind them (the same header as list.*.sql).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws AND EXISTS (SELECT 1 FROM workspace_members m WHERE m.workspace_id = :ws AND m.user_id = :uid) ORDER BY id DESC LIMIT 26;
COMMIT;

-- The same insert with the check an application without row-level security must make: only
-- if the caller is a member who may write (one index probe, inside the insert).
\set w random(2, 2000)
\set u :w
\set p 20001 + (:w - 2) * 40 + random(0, 39)
-- The ids as uuid parameters, as the handlers bind them (the same header as insert-comment.*.sql).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible) SELECT gen_random_uuid(), :ws, :pid, :uid, 'A comment', false WHERE EXISTS (SELECT 1 FROM workspace_members m WHERE m.workspace_id = :ws AND m.user_id = :uid AND m.role <> 'viewer') RETURNING id, project_id, author_id, body, client_visible, created_at, updated_at;
COMMIT;

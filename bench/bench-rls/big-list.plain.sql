-- the same page, explicit filters
\set w 1
\set p 1
\set u 1
-- The ids as uuid parameters, as the handlers bind them (not an expression a generic plan cannot see through).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
SELECT id, workspace_id, client_id, name, description, status, due_date, created_by, created_at, updated_at FROM projects WHERE workspace_id = :ws ORDER BY id DESC LIMIT 26;
COMMIT;

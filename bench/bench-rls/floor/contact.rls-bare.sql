-- Row-level security with the contact's identity, clients and project set by a bare set_config
-- statement and no access check at all: row-level security's own floor.
\set w 1
\set u 3001
\set p 1 + 3 * random(0, 6665)
-- The ids as uuid parameters, as the handlers bind them (the same header as ../contact-comments.*.sql).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
\startpipeline
BEGIN;
SELECT set_config('app.user_id', :uid, true), set_config('app.request_id', 'bench', true), set_config('app.entered_user', :uid, true), set_config('app.entered_workspace', :ws, true), set_config('app.entered_role', '', true), set_config('app.entered_clients', '{' || bench_uuid(3, 1) || '}', true), set_config('app.entered_project', :pid, true);
\endpipeline
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = :ws AND project_id = :pid ORDER BY id DESC LIMIT 26;
COMMIT;

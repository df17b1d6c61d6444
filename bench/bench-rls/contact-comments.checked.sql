-- Explicit filters that also check the caller: the page only if the project is one of the
-- contact's clients' (one join probe, inside the page's statement).
\set w 1
\set u 3001
\set p 1 + 3 * random(0, 6665)
-- The ids as uuid parameters, as the handlers bind them (the same header as contact-comments.*.sql).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
BEGIN;
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = :ws AND project_id = :pid AND client_visible AND EXISTS (SELECT 1 FROM projects p JOIN client_contacts c ON c.workspace_id = p.workspace_id AND c.client_id = p.client_id WHERE p.id = :pid AND p.workspace_id = :ws AND c.user_id = :uid) ORDER BY id DESC LIMIT 26;
COMMIT;

-- the same page, explicit filters (client-visible only)
\set w 1
\set u 3001
\set p 1 + 3 * random(0, 6665)
-- The ids as uuid parameters, as the handlers bind them (not an expression a generic plan cannot see through).
SELECT bench_uuid(1, :u) AS uid, bench_uuid(2, :w) AS ws, bench_uuid(4, :p) AS pid \gset
-- With -D limiter=1, the same share of rate limit leases as the RLS side (one request in 32), in
-- the same round trip as BEGIN.
\set lease random(1, 32)
\if :limiter AND :lease = 1
\startpipeline
BEGIN;
SELECT rate_policy, quota, remaining, reset_seconds, allowed, retry_after, granted FROM app.lease_rate_limit(:uid, NULL, NULL, :ws, false, 0, 32);
COMMIT;
BEGIN;
\endpipeline
\else
BEGIN;
\endif
SELECT id, project_id, author_id, body, client_visible, created_at, updated_at FROM comments WHERE workspace_id = :ws AND project_id = :pid AND client_visible ORDER BY id DESC LIMIT 26;
COMMIT;

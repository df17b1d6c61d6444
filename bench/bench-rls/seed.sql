-- A many-tenant database for the row-level security benchmark (bench/bench-rls.sh): 2,000
-- workspaces with 100,000 projects, 500,000 deliverables and 1,000,000 comments, plus one very
-- large tenant (20,000 projects) and one client contact with 1,000 projects. Ids are derived
-- from numbers (bench_uuid) so the pgbench scripts can name any row. Run as a superuser on a
-- freshly migrated database.
SET client_min_messages = warning;
-- Bulk data, not requests: no per-row triggers (plan limits, the audit log) while seeding.
SET session_replication_role = replica;

CREATE FUNCTION public.bench_uuid(kind integer, n integer) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (lpad(to_hex(kind), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$;
GRANT EXECUTE ON FUNCTION public.bench_uuid(integer, integer) TO app_api;

-- kinds: 1 user, 2 workspace, 3 client, 4 project, 5 deliverable, 6 comment
-- Users 1..2000 own workspaces 1..2000; user 3001 is the contact with many projects.
INSERT INTO users (id, issuer, subject, email)
SELECT bench_uuid(1, n), 'bench', 'u' || n, 'u' || n || '@bench.test' FROM generate_series(1, 2000) n
UNION ALL SELECT bench_uuid(1, 3001), 'bench', 'u3001', 'u3001@bench.test';

INSERT INTO workspaces (id, name, created_by)
SELECT bench_uuid(2, n), 'Workspace ' || n, bench_uuid(1, n) FROM generate_series(1, 2000) n;
INSERT INTO workspace_members (workspace_id, user_id, role)
SELECT bench_uuid(2, n), bench_uuid(1, n), 'owner' FROM generate_series(1, 2000) n;
-- Every workspace is on the top plan, so no limit or feature gets in the way.
INSERT INTO subscriptions (workspace_id, stripe_subscription_id, stripe_customer_id, plan_id, status, current_period_end)
SELECT bench_uuid(2, n), 'sub_bench_' || n, 'cus_bench_' || n, 'studio', 'active', now() + interval '30 days'
FROM generate_series(1, 2000) n;

-- Two clients per workspace: client 2w-1 and 2w.
INSERT INTO clients (id, workspace_id, name)
SELECT bench_uuid(3, 2 * w - k), bench_uuid(2, w), 'Client ' || (2 * w - k)
FROM generate_series(1, 2000) w, generate_series(0, 1) k;

-- Workspace 1 is the large tenant: 20,000 projects. The others have 40 each (79,960), for
-- 99,960 in all. Projects alternate between the workspace's two clients and none.
ALTER TABLE projects DISABLE TRIGGER projects_plan_limit;
INSERT INTO projects (id, workspace_id, client_id, name, status, created_by)
SELECT bench_uuid(4, p), bench_uuid(2, w),
       CASE p % 3 WHEN 0 THEN NULL WHEN 1 THEN bench_uuid(3, 2 * w - 1) ELSE bench_uuid(3, 2 * w) END,
       'Project ' || p, 'active', bench_uuid(1, w)
FROM (SELECT p, CASE WHEN p <= 20000 THEN 1 ELSE 2 + (p - 20001) / 40 END AS w
      FROM generate_series(1, 99960) p) numbered;
ALTER TABLE projects ENABLE TRIGGER projects_plan_limit;

-- The contact with many projects: user 3001 is a contact of workspace 1's first client, which
-- holds a third of the large tenant's projects (about 6,700); 1,000 of them get comments below.
INSERT INTO client_contacts (workspace_id, client_id, user_id) VALUES (bench_uuid(2, 1), bench_uuid(3, 1), bench_uuid(1, 3001));

-- Five deliverables and ten comments per project (every other one client-visible).
INSERT INTO deliverables (id, workspace_id, project_id, title, client_visible)
SELECT bench_uuid(5, (p - 1) * 5 + d), bench_uuid(2, CASE WHEN p <= 20000 THEN 1 ELSE 2 + (p - 20001) / 40 END),
       bench_uuid(4, p), 'Deliverable ' || d, d % 2 = 0
FROM generate_series(1, 99960) p, generate_series(1, 5) d;
INSERT INTO comments (id, workspace_id, project_id, author_id, body, client_visible)
SELECT bench_uuid(6, (p - 1) * 10 + c), bench_uuid(2, CASE WHEN p <= 20000 THEN 1 ELSE 2 + (p - 20001) / 40 END),
       bench_uuid(4, p), bench_uuid(1, CASE WHEN p <= 20000 THEN 1 ELSE 2 + (p - 20001) / 40 END),
       'Comment ' || c || ' on project ' || p, c % 2 = 0
FROM generate_series(1, 99960) p, generate_series(1, 10) c;

ANALYZE;

-- The benchmark measures what a request costs, not refusals: limits high enough that every
-- request is counted and allowed (the counting is the same work either way, plus the update).
UPDATE plans SET requests_per_minute = 10000000, expensive_per_minute = 10000000;

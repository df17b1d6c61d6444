#!/usr/bin/env bash
# The release-mode local stack under wrk, on the benchmark database of bench/bench-rls.sh:
# projects-list and projects-create, by one user on 4 connections and by 4 users, the list of a
# 20,000-project tenant beside a 50-project one's, beside the
# pgbench rate of the same list statement without row-level security (the ceiling on this
# machine). Not part of the test suite.
#
#   bench/bench-http.sh [--seconds N]     (run bench/bench-rls.sh once first: it seeds saas_bench)
#
# LOCAL_STACK_BIN=path runs that release binary instead of building this checkout's, to compare
# two builds on the same database in one sitting.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

seconds=15
[ "${1:-}" = --seconds ] && seconds="$2"
ensure_postgres
command -v wrk >/dev/null 2>&1 || die "wrk is required (apt-get install wrk)"
admin="${TEST_DATABASE_ADMIN_URL%/postgres}"
owner_url="$admin/saas_bench"
require_bench_database

stack_bin="$(local_stack_binary release)"
port="$(free_port)"
export DATABASE_URL="postgres://app_api:app_api@$PG_HOST:$PG_PORT/saas_bench"
export SERVICE_DATABASE_URL="postgres://app_service:app_service@$PG_HOST:$PG_PORT/saas_bench"
export MIGRATION_DATABASE_URL="$owner_url" LOG_FORMAT=json RUST_LOG=error DB_MAX_CONNECTIONS=8
"$stack_bin" serve --port "$port" >"$REPO_ROOT/target/bench-http.log" 2>&1 &
stack=$!
at_exit 'kill "$stack" 2>/dev/null || true'
for _ in $(seq 1 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/workspaces" || true)" = 401 ] && break
  kill -0 "$stack" 2>/dev/null || die "the local stack exited; see target/bench-http.log"
  sleep 0.2
done

# Four users, each with a new workspace of 50 projects on the top plan, its rate and project
# limits lifted (the benchmark measures requests served, not refused); a fifth user's workspace
# holds 20,000 projects, among saas_bench's 2,000 small ones: its first page must cost what a
# small tenant's does. Projects are seeded without the per-row triggers (replica mode).
base="http://127.0.0.1:$port/v1/workspaces"
tokens=() paths=()
user_with_workspace() { # who, projects
  local token ws
  token="$("$stack_bin" token --sub "bench-http-$1" --email "bench-http-$1@bench.test")"
  ws="$(curl -sf -X POST -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "{\"name\":\"HTTP $1\"}" "$base" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  psql "$owner_url" -q -c "INSERT INTO subscriptions (workspace_id, stripe_subscription_id, stripe_customer_id, plan_id, status, current_period_end)
                           VALUES ('$ws', 'sub_http_$ws', 'cus_http_$ws', 'studio', 'active', now() + interval '30 days')" \
                        -c "INSERT INTO entitlement_overrides (id, workspace_id, entitlement, value, reason, granted_by, expires_at)
                            SELECT gen_random_uuid(), '$ws', e, 100000000, 'benchmark', 'bench-http', now() + interval '1 day'
                            FROM unnest(ARRAY['requests_per_minute', 'expensive_per_minute', 'projects']) e" \
                        -c "BEGIN; SET LOCAL session_replication_role = replica;
                            INSERT INTO projects (id, workspace_id, name, status) SELECT app.uuid_v7(), '$ws', 'P' || n,
                                   (ARRAY['planned', 'active', 'completed']::project_status[])[1 + n % 3] FROM generate_series(1, $2) n;
                            COMMIT; ANALYZE projects"
  tokens+=("$token") paths+=("/v1/workspaces/$ws/projects")
}
for i in 1 2 3 4; do user_with_workspace "$i" 50; done
user_with_workspace big 20000

lua="$REPO_ROOT/target/bench-http.lua"
cat >"$lua" <<LUA
-- Each connection is one of the four users (or always the first, with "one"; the big tenant's
-- owner, with "big").
local tokens = { "${tokens[0]}", "${tokens[1]}", "${tokens[2]}", "${tokens[3]}", "${tokens[4]}" }
local paths = { "${paths[0]}", "${paths[1]}", "${paths[2]}", "${paths[3]}", "${paths[4]}" }
local n = 0
function setup(thread) n = n + 1; thread:set("id", n) end
function init(args)
  method = args[1]; one_user = args[2] == "one"; big = args[2] == "big"
  counter = 0
end
function request()
  counter = counter + 1
  local i = big and 5 or (one_user and 1 or ((id + counter) % 4) + 1)
  local headers = { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" }
  if method == "POST" then
    return wrk.format("POST", paths[i], headers, '{"name":"From wrk"}')
  end
  return wrk.format("GET", paths[i] .. "?limit=25", headers)
end
LUA

# Requests per second; any answer other than 2xx is reported (it would be a cheaper request).
rate() {
  local out
  out="$(wrk -t2 -c4 -d"${seconds}s" -s "$lua" "http://127.0.0.1:$port" -- "$1" "$2")"
  grep -q 'Non-2xx' <<<"$out" && echo "warning: $1 $2: $(grep 'Non-2xx' <<<"$out" | xargs)" >&2
  awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out"
}
ceiling="$(pgbench -n -M prepared -c 4 -j 2 -T "$seconds" -D limiter=0 -f bench/bench-rls/list.plain.sql "$owner_url" 2>/dev/null | awk '/^tps = / { printf "%.0f", $3 }')"
list_many="$(rate GET many)"
list_one="$(rate GET one)"
list_big="$(rate GET big)"
create_many="$(rate POST many)"
create_one="$(rate POST one)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
printf '%-44s %10s\n' "what (4 connections, ${seconds}s)" "per second"
printf '%-44s %10s\n' "pgbench: list statement, no RLS (ceiling)" "$ceiling"
printf '%-44s %10s   %s of the ceiling\n' "HTTP projects-list, 4 users" "$list_many" "$(ratio "$list_many" "$ceiling")"
printf '%-44s %10s   %s of 4 users\n' "HTTP projects-list, one user" "$list_one" "$(ratio "$list_one" "$list_many")"
printf '%-44s %10s   a page takes %s× as long as the 50-project one\n' "HTTP projects-list, 20,000-project tenant" "$list_big" "$(ratio "$list_one" "$list_big")"
printf '%-44s %10s\n' "HTTP projects-create, 4 users" "$create_many"
printf '%-44s %10s   %s of 4 users\n' "HTTP projects-create, one user" "$create_one" "$(ratio "$create_one" "$create_many")"

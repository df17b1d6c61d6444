#!/usr/bin/env bash
# Row-level security at scale: seeds a many-tenant database (saas_bench; see
# bench/bench-rls/seed.sql) and runs, side by side in one run, each query shape the handlers
# run under RLS as app_api (BEGIN with app.begin_request, then the query, as TenantTx does) against the same
# query with explicit filters and no RLS (as a superuser). Prints transactions per second and
# their ratio. Not part of the test suite.
#
#   bench/bench-rls.sh [--reseed] [--seconds N] [--clients N]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

seconds=15 clients=4 reseed=false
while [ $# -gt 0 ]; do
  case "$1" in
    --reseed) reseed=true ;;
    --seconds) seconds="$2"; shift ;;
    --clients) clients="$2"; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

ensure_postgres
command -v pgbench >/dev/null 2>&1 || die "pgbench is required (apt-get install postgresql-contrib)"
admin="${TEST_DATABASE_ADMIN_URL%/postgres}"
owner_url="$admin/saas_bench"
api_url="postgres://app_api:app_api@$PG_HOST:$PG_PORT/saas_bench"
exists="$(psql "$TEST_DATABASE_ADMIN_URL" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'saas_bench'")"
if $reseed || [ "$exists" != 1 ]; then
  say "creating and seeding saas_bench (2,000 workspaces, 1,000,000 comments; a few minutes)"
  psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS saas_bench WITH (FORCE)" >/dev/null
  MIGRATION_DATABASE_URL="$owner_url" cargo run -q -p local-stack -- migrate --dev-logins
  psql "$owner_url" -q -v ON_ERROR_STOP=1 -f bench/bench-rls/seed.sql
fi

run() { # url, script, clients, limiter (0 or 1) -> tps
  # The API role's side runs with generic plans and no bitmap scans, as shared::db::connect sets for the functions.
  local options=""
  [ "$1" = "$api_url" ] && options="-c plan_cache_mode=force_generic_plan -c enable_bitmapscan=off"
  PGOPTIONS="$options" pgbench -n -M prepared -D limiter="$4" -c "$3" -j "$(( $3 < 2 ? 1 : 2 ))" -T "$seconds" \
    -f "bench/bench-rls/$2" "$1" 2>/dev/null | awk '/^tps = / { printf "%.0f", $3 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# Each shape four ways, side by side: the request as the handlers run it (the rate limit's own
# short transaction, then BEGIN with app.begin_request and the query under RLS) against the same
# query with explicit filters after the same rate limit; and both without the rate limit, which
# is row-level security's own cost.
printf '%-26s %11s %11s %6s   %11s %11s %6s\n' "shape ($clients clients, ${seconds}s)" \
  "RLS+limit" "plain+limit" "ratio" "RLS" "plain" "ratio"
for shape in list big-list project contact-comments insert-comment; do
  rls_limited="$(run "$api_url" "$shape.rls.sql" "$clients" 1)"
  plain_limited="$(run "$owner_url" "$shape.plain.sql" "$clients" 1)"
  rls="$(run "$api_url" "$shape.rls.sql" "$clients" 0)"
  plain="$(run "$owner_url" "$shape.plain.sql" "$clients" 0)"
  printf '%-26s %11s %11s %6s   %11s %11s %6s\n' "$shape" "$rls_limited" "$plain_limited" \
    "$(ratio "$rls_limited" "$plain_limited")" "$rls" "$plain" "$(ratio "$rls" "$plain")"
done
one="$(run "$api_url" one-user-list.rls.sql "$clients" 1)"
many="$(run "$api_url" list.rls.sql "$clients" 1)"
printf '%-26s %11s %11s %6s\n' "one user vs $clients users" "$one" "$many" "$(ratio "$one" "$many")"

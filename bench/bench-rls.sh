#!/usr/bin/env bash
# The database's work per request at scale: seeds a skewed many-tenant database (saas_bench: 2,000
# workspaces of 40 projects and one of 20,000; see bench/bench-rls/seed.sql) and runs, side by
# side in one run, each request shape as the functions ship it (as app_api, with their
# connection settings) against the plain statement and the plain statement with an
# application's own access check (as a superuser). Prints transactions per second and the
# ratios. Not part of the test suite.
#
#   bench/bench-rls.sh [--reseed] [--seconds N] [--clients N] [--rounds N]
#
# Each cell runs --rounds times (default 3), the rounds interleaved across every cell, and the
# median is reported: on a small shared machine one run of one cell can be off by 30%.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

seconds=10 clients=4 reseed=false rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --reseed) reseed=true ;;
    --seconds) seconds="$2"; shift ;;
    --clients) clients="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
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

# The database's work per request, each shape three ways side by side: the plain statement with
# no check at all; the same with the check an application without row-level security must make
# (membership, or the contact's client, probed inside the statement); and the whole sequence as
# the functions ship it: its share of rate limit leases (one request in 32: a busy caller's
# instance leases 32 tokens at a time far from the limit), the opening (BEGIN and
# app.begin_request in one round trip), the page under row-level security, COMMIT.
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)) }'; }
shapes=(list big-list project contact-comments insert-comment)
declare -A runs
for round in $(seq 1 "$rounds"); do
  say "round $round of $rounds"
  for shape in "${shapes[@]}"; do
    runs[$shape.plain]+=" $(run "$owner_url" "$shape.plain.sql" "$clients" 0)"
    runs[$shape.checked]+=" $(run "$owner_url" "$shape.checked.sql" "$clients" 0)"
    runs[$shape.shipped]+=" $(run "$api_url" "$shape.rls.sql" "$clients" 1)"
  done
  runs[one-user]+=" $(run "$api_url" one-user-list.rls.sql "$clients" 1)"
done

printf '%-18s %9s %9s %9s %8s %8s\n' "shape ($clients clients, ${seconds}s × $rounds)" \
  "plain" "checked" "shipped" "÷plain" "÷checked"
declare -A shipped_tps
for shape in "${shapes[@]}"; do
  plain="$(median <<<"${runs[$shape.plain]}")"
  checked="$(median <<<"${runs[$shape.checked]}")"
  shipped="$(median <<<"${runs[$shape.shipped]}")"
  shipped_tps[$shape]="$shipped"
  printf '%-18s %9s %9s %9s %8s %8s\n' "$shape" "$plain" "$checked" "$shipped" \
    "$(ratio "$shipped" "$plain")" "$(ratio "$shipped" "$checked")"
done
one="$(median <<<"${runs[one-user]}")"
printf '%-18s %9s (one user on %s connections ÷ %s users: %s)\n' "one-user-list" "$one" "$clients" "$clients" \
  "$(ratio "$one" "${shipped_tps[list]}")"
printf 'the 20,000-project tenant'"'"'s page takes %s× as long as a 40-project tenant'"'"'s (shipped)\n' \
  "$(ratio "${shipped_tps[list]}" "${shipped_tps[big-list]}")"

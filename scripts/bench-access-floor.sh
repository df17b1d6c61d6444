#!/usr/bin/env bash
# What a request's access check costs, and the floor under any design that makes one in the
# database: each variant of scripts/bench-rls/floor/ (the list page and the many-project
# contact's comment page) runs a fixed number of transactions while /proc/stat counts the whole
# machine's CPU (server, pgbench and kernel), alternated --rounds times. CPU per transaction is
# steadier than transactions per second on a small, noisy machine; run it on an idle one.
# Not part of the test suite.
#
#   scripts/bench-access-floor.sh [--transactions N] [--rounds N]
#
# Run scripts/bench-rls.sh once first: it seeds saas_bench.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

transactions=8000 rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --transactions) transactions="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

ensure_postgres
command -v pgbench >/dev/null 2>&1 || die "pgbench is required (apt-get install postgresql-contrib)"
[ -r /proc/stat ] || die "/proc/stat is required (Linux)"
admin="${TEST_DATABASE_ADMIN_URL%/postgres}"
owner_url="$admin/saas_bench"
api_url="postgres://app_api:app_api@$PG_HOST:$PG_PORT/saas_bench"
[ "$(psql "$TEST_DATABASE_ADMIN_URL" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'saas_bench'")" = 1 ] ||
  die "no saas_bench database: run scripts/bench-rls.sh first"

busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

cpu_per_transaction() { # variant file -> microseconds of machine CPU per transaction
  local file="scripts/bench-rls/floor/$1.sql" url="$api_url" options="-c plan_cache_mode=force_generic_plan"
  # The explicit-filter variants run as the superuser, without row-level security; the rest as
  # app_api with generic plans, as shared::db::connect sets for the functions.
  case "$1" in *.plain*) url="$owner_url" options="" ;; esac
  local before after
  before="$(busy_ticks)"
  PGOPTIONS="$options" pgbench -n -M prepared -c 4 -j 2 -t "$transactions" -f "$file" "$url" >/dev/null 2>&1 ||
    die "pgbench failed on $file"
  after="$(busy_ticks)"
  awk -v t="$(( after - before ))" -v hz="$(getconf CLK_TCK)" -v n="$(( transactions * 4 ))" \
    'BEGIN { printf "%.0f", t / hz / n * 1e6 }'
}

variants=(list.plain list.plain-checked list.rls-bare list.rls-bare-checked list.rls list.rls-limited
          contact.plain contact.plain-checked contact.rls-bare contact.rls-bare-checked contact.rls)
declare -A total
for v in "${variants[@]}"; do total[$v]=0; done
for round in $(seq 1 "$rounds"); do
  say "round $round of $rounds"
  for v in "${variants[@]}"; do
    us="$(cpu_per_transaction "$v")"
    total[$v]=$(( ${total[$v]} + us ))
    printf '  %-26s %6s µs\n' "$v" "$us" >&2
  done
done

printf '%-26s %12s %16s\n' "variant (4 clients)" "CPU per tx" "plain ÷ this"
for v in "${variants[@]}"; do
  plain="${v%%.*}.plain"
  awk -v v="$v" -v us="${total[$v]}" -v p="${total[$plain]}" -v r="$rounds" \
    'BEGIN { printf "%-26s %9.0f µs %16.2f\n", v, us / r, p / us }'
done

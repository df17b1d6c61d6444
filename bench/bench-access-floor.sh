#!/usr/bin/env bash
# What a request's access check costs, and the floor under any design that makes one in the
# database: each variant below (the list page and the many-project contact's comment page) runs
# a fixed number of transactions while /proc/stat counts the whole machine's CPU (server, pgbench
# and kernel), alternated --rounds times. CPU per transaction is
# steadier than transactions per second on a small, noisy machine; run it on an idle one.
# Not part of the test suite.
#
#   bench/bench-access-floor.sh [--transactions N] [--rounds N]
#
# Run bench/bench-rls.sh once first: it seeds saas_bench.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
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
require_bench_database

busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# Each variant: its label, its script, the rate limiter (-D limiter) and who runs it. The plain and
# RLS sides are bench/bench-rls.sh's own scripts; floor/ holds the variants in between.
variants=(
  "list.plain              list.plain.sql                        0 owner"
  "list.plain-checked      list.checked.sql                      0 owner"
  "list.rls-bare           floor/list.rls-bare.sql               0 api"
  "list.rls-bare-checked   floor/list.rls-bare-checked.sql       0 api"
  "list.rls                list.rls.sql                          0 api"
  "list.shipped            list.rls.sql                          1 api"
  "contact.plain           contact-comments.plain.sql            0 owner"
  "contact.plain-checked   contact-comments.checked.sql          0 owner"
  "contact.rls-bare        floor/contact.rls-bare.sql            0 api"
  "contact.rls-bare-checked floor/contact.rls-bare-checked.sql   0 api"
  "contact.rls             contact-comments.rls.sql              0 api"
  "contact.shipped         contact-comments.rls.sql              1 api"
)

cpu_per_transaction() { # script, limiter, owner|api -> microseconds of machine CPU per transaction
  # The explicit-filter side runs as the superuser, without row-level security; the rest as
  # app_api with generic plans, as shared::db::connect sets for the functions.
  local url="$owner_url" options=""
  [ "$3" = api ] && url="$api_url" options="-c plan_cache_mode=force_generic_plan -c enable_bitmapscan=off"
  local before after
  before="$(busy_ticks)"
  PGOPTIONS="$options" pgbench -n -M prepared -D limiter="$2" -c 4 -j 2 -t "$transactions" \
    -f "bench/bench-rls/$1" "$url" >/dev/null 2>&1 || die "pgbench failed on $1"
  after="$(busy_ticks)"
  awk -v t="$(( after - before ))" -v hz="$(getconf CLK_TCK)" -v n="$(( transactions * 4 ))" \
    'BEGIN { printf "%.0f", t / hz / n * 1e6 }'
}

declare -A total
labels=()
for variant in "${variants[@]}"; do
  read -r label _ <<<"$variant"
  labels+=("$label") total[$label]=0
done
for round in $(seq 1 "$rounds"); do
  say "round $round of $rounds"
  for variant in "${variants[@]}"; do
    read -r v file limiter who <<<"$variant"
    us="$(cpu_per_transaction "$file" "$limiter" "$who")"
    total[$v]=$(( ${total[$v]} + us ))
    printf '  %-26s %6s µs\n' "$v" "$us" >&2
  done
done

printf '%-26s %12s %16s\n' "variant (4 clients)" "CPU per tx" "plain ÷ this"
for v in "${labels[@]}"; do
  plain="${v%%.*}.plain"
  awk -v v="$v" -v us="${total[$v]}" -v p="${total[$plain]}" -v r="$rounds" \
    'BEGIN { printf "%-26s %9.0f µs %16.2f\n", v, us / r, p / us }'
done

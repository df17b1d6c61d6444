#!/usr/bin/env bash
# Exports at scale (release build): the export worker writes the largest tenant of the
# benchmark database (seeded by bench/bench-rls.sh; run it once first) and typical ones to
# moto's S3, printing rows, size, time and the process's peak memory. Not part of the test suite.
#
#   bench/bench-export.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

ensure_postgres
ensure_python_tools
start_moto
admin="${TEST_DATABASE_ADMIN_URL%/postgres}"
exists="$(psql "$TEST_DATABASE_ADMIN_URL" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'saas_bench'")"
[ "$exists" = 1 ] || die "saas_bench does not exist: run bench/bench-rls.sh first (it seeds it)"
# The benchmark database is migrated with development logins (a worker role's password is its name).
psql "$admin/saas_bench" -qc "ALTER ROLE app_exporter WITH LOGIN PASSWORD 'app_exporter'" >/dev/null
BENCH_OWNER_URL="$admin/saas_bench" \
BENCH_EXPORTER_URL="postgres://app_exporter:app_exporter@$PG_HOST:$PG_PORT/saas_bench" \
RUST_LOG=error cargo run -q --release -p bench --bin bench-export

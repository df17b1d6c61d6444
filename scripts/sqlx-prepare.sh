#!/usr/bin/env bash
# The queries' contract with the schema. sqlx's query macros check each statement against a
# database at compile time; builds use the statements' descriptions committed in .sqlx/ (no
# database needed, `SQLX_OFFLINE=true` in .cargo/config.toml). This migrates a scratch database
# from migrations/ and describes every statement again (`cargo check` with the macros online):
#
#   scripts/sqlx-prepare.sh           rewrite .sqlx/ (after changing a query or a migration)
#   scripts/sqlx-prepare.sh --check   fail if .sqlx/ is stale (the test command makes the same
#                                     check inside its own build)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-query-data.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_postgres
create_query_database
say "describing every statement against migrations/"
describe_queries check --quiet --workspace --all-targets
if [ "${1:-}" = --check ]; then
  check_query_data
else
  find .sqlx -name 'query-*.json' -delete 2>/dev/null || mkdir -p .sqlx
  cp "$QUERY_DATA_DIR"/query-*.json .sqlx/
  say "wrote $(find .sqlx -name 'query-*.json' | wc -l) statements to .sqlx/"
fi

#!/usr/bin/env bash
# The queries' contract with the schema. sqlx's query macros check each statement against a
# database at compile time; builds use the statements' descriptions committed in .sqlx/ (no
# database needed, `SQLX_OFFLINE=true` in .cargo/config.toml). This migrates a scratch database
# from migrations/ and describes every statement again:
#
#   scripts/sqlx-prepare.sh           rewrite .sqlx/ (after changing a query or a migration)
#   scripts/sqlx-prepare.sh --check   fail if .sqlx/ is stale (the test command runs this)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_postgres
ensure_sqlx_cli

# A scratch database of this run's own (named by its process id), so two runs on one PostgreSQL
# do not collide; dropped on exit.
db="saas_sqlx_$$"
url="${TEST_DATABASE_ADMIN_URL%/postgres}/$db"
drop_db() { psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
trap drop_db EXIT
drop_db
psql "$TEST_DATABASE_ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
DATABASE_URL="$url" cargo sqlx migrate run --source migrations >/dev/null
say "cargo sqlx prepare ${1:-}"
DATABASE_URL="$url" cargo sqlx prepare --workspace ${1:-} -- --all-targets

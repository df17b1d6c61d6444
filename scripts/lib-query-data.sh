# The compile-time query data in .sqlx/, without sqlx-cli: sqlx's query macros, run with
# SQLX_OFFLINE=false, describe each statement against DATABASE_URL and, when SQLX_OFFLINE_DIR is
# set, save that description there. This is what `cargo sqlx prepare` drives; doing it here
# spares a from-source install of sqlx-cli and lets the test command describe the queries in
# the build it makes anyway. Sourced after lib.sh by scripts/sqlx-prepare.sh and scripts/test.sh.
# shellcheck shell=bash

# A scratch database migrated from migrations/, named by this shell's process id so two runs on
# one PostgreSQL do not collide; dropped on exit. Sets QUERY_DATABASE_URL.
create_query_database() {
  local db="saas_sqlx_$$"
  QUERY_DATABASE_URL="${TEST_DATABASE_ADMIN_URL%/postgres}/$db"
  at_exit "psql '$TEST_DATABASE_ADMIN_URL' -qc 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1 || true"
  psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  psql "$TEST_DATABASE_ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
  # Each migration in a transaction of its own, in order, as sqlx's migrator applies them.
  local migration
  for migration in "$REPO_ROOT"/migrations/*.sql; do
    psql "$QUERY_DATABASE_URL" -q -X -v ON_ERROR_STOP=1 --single-transaction -f "$migration" >/dev/null \
      || die "migration $(basename "$migration") failed on the scratch database"
  done
}

# Runs `cargo "$@"` with the query macros online against QUERY_DATABASE_URL, each statement's
# description saved in the fresh directory $QUERY_DATA_DIR. Cargo does not know the macros read
# the database, so the workspace's crate roots are touched first: every macro expands again,
# and the directory ends up with every statement the selected targets hold.
describe_queries() {
  QUERY_DATA_DIR="$REPO_ROOT/target/sqlx-described"
  rm -rf "$QUERY_DATA_DIR" && mkdir -p "$QUERY_DATA_DIR"
  cargo metadata --no-deps --format-version 1 --manifest-path "$REPO_ROOT/Cargo.toml" |
    python3 -c 'import json, sys; print("\n".join(t["src_path"] for p in json.load(sys.stdin)["packages"] for t in p["targets"]))' |
    while read -r root; do touch "$root"; done
  SQLX_OFFLINE=false DATABASE_URL="$QUERY_DATABASE_URL" SQLX_OFFLINE_DIR="$QUERY_DATA_DIR" cargo "$@"
}

# Fails unless .sqlx/ holds exactly the descriptions describe_queries saved: none missing, none
# left over from a statement that is gone, each the same JSON.
check_query_data() {
  python3 - "$QUERY_DATA_DIR" "$REPO_ROOT/.sqlx" <<'PY' || die ".sqlx/ does not match the queries and migrations: run scripts/sqlx-prepare.sh and commit .sqlx/"
import json, pathlib, sys
described, committed = (pathlib.Path(p) for p in sys.argv[1:3])
def load(directory):
    return {f.name: json.loads(f.read_text()) for f in directory.glob("query-*.json")}
now, then = load(described), load(committed)
problems = [f"missing from .sqlx/: {name} ({now[name]['query'][:60]!r}...)" for name in sorted(now.keys() - then.keys())]
problems += [f"no longer used, still in .sqlx/: {name}" for name in sorted(then.keys() - now.keys())]
problems += [f"differs: {name} ({now[name]['query'][:60]!r}...)" for name in sorted(now.keys() & then.keys()) if now[name] != then[name]]
for problem in problems:
    print(problem, file=sys.stderr)
if not now:
    print("no statement was described: did the build expand the query macros?", file=sys.stderr)
sys.exit(1 if problems or not now else 0)
PY
  say ".sqlx/ matches all $(find "$QUERY_DATA_DIR" -name 'query-*.json' | wc -l) statements"
}

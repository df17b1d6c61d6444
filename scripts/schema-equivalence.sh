#!/usr/bin/env bash
# Proves that migrations/ builds the same database as the migrations of an earlier commit: the
# check run once when the migrations of 2026-11-22 to 2026-12-07 were squashed into the baseline
# (docs/schema.md), and again whenever a squash is considered.
#
#   scripts/schema-equivalence.sh [REVISION]    # default: 71b4ede, the last commit before the baseline
#
# Each side is applied, file by file in a transaction of its own as sqlx's migrator does, to a
# scratch PostgreSQL cluster of its own (roles are cluster-wide, so sharing one cluster would let
# one side's roles stand in for the other's). Then the roles (pg_dumpall --roles-only), the schema
# (pg_dump --schema-only: every table, column, constraint, index, function body, trigger, policy,
# grant and owner) and the data the migrations insert are dumped and must be identical, apart
# from the dumps' random \restrict keys and the scratch clusters' own superuser line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

revision="${1:-71b4ede}"
git -C "$REPO_ROOT" rev-parse --verify --quiet "$revision^{commit}" >/dev/null \
  || die "no commit $revision in this clone (a shallow clone may lack it: git fetch --unshallow)"

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg_bin/initdb" ] || die "PostgreSQL's server binaries are missing (apt-get install postgresql)"
for tool in psql pg_dump pg_dumpall; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install postgresql-client)"; done

work="$(mktemp -d)"
chmod 755 "$work"
at_exit "rm -rf '$work'"

# initdb refuses to run as root; the postgres account runs the scratch clusters then.
as_cluster_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Applies the .sql files of $2, in order, to a new cluster in $work/$1 and writes its dumps.
dump_after_migrating() {
  local name="$1" migrations="$2" port
  port="$(free_port)"
  mkdir -p "$work/$name"
  [ "$(id -u)" = 0 ] && chown postgres "$work/$name"
  as_cluster_user "$pg_bin/initdb" -D "$work/$name/data" -U postgres --auth=trust >/dev/null
  as_cluster_user "$pg_bin/pg_ctl" -D "$work/$name/data" -l "$work/$name/log" -w \
    -o "-p $port -k $work/$name -c listen_addresses=''" start >/dev/null
  at_exit "'$pg_bin/pg_ctl' -D '$work/$name/data' -m immediate stop >/dev/null 2>&1 || runuser -u postgres -- '$pg_bin/pg_ctl' -D '$work/$name/data' -m immediate stop >/dev/null 2>&1 || true"
  local url="postgresql://postgres@/postgres?host=$work/$name&port=$port"
  local migration
  for migration in "$migrations"/*.sql; do
    psql "$url" -q -X -v ON_ERROR_STOP=1 --single-transaction -f "$migration" >/dev/null \
      || die "$name: $(basename "$migration") failed"
  done
  say "$name: $(ls "$migrations"/*.sql | wc -l) migration files applied"
  pg_dumpall --roles-only --dbname="$url" | grep -v '^\\\(un\)\?restrict\|^-- Dumped\|^ALTER ROLE postgres \|^CREATE ROLE postgres;' >"$work/$name.roles"
  pg_dump --schema-only "$url" | grep -v '^\\\(un\)\?restrict' >"$work/$name.schema"
  pg_dump --data-only --column-inserts "$url" | grep '^INSERT' >"$work/$name.data" || true
}

mkdir -p "$work/before"
git -C "$REPO_ROOT" archive "$revision" migrations | tar -x -C "$work/before" --strip-components=1
dump_after_migrating before "$work/before"
dump_after_migrating after "$REPO_ROOT/migrations"

different=0
for part in roles schema data; do
  if diff -u "$work/before.$part" "$work/after.$part" >"$work/$part.diff"; then
    say "$part: identical ($(wc -l <"$work/after.$part") lines)"
  else
    different=1
    cat "$work/$part.diff" >&2
    say "$part: DIFFERENT (above)"
  fi
done
[ "$different" = 0 ] || die "migrations/ does not build the database that $revision's migrations build"
say "migrations/ builds the same roles, schema and data as the migrations of $revision"

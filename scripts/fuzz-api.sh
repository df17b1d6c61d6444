#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document: starts the local stack (every function, the
# local Stripe and AI provider, moto) on a fresh database, then runs schemathesis over every
# operation once per kind of caller (owner, admin, member, viewer, client contact, API key,
# platform operator), checking for server errors and for responses, statuses, content types and
# headers the document does not describe. Any failure fails the script.
#
#   scripts/fuzz-api.sh [--max-examples N]
#
# LOCAL_STACK_BIN=path runs that debug or release binary instead of building this checkout's
# (the test command passes the one its own build made).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

max_examples=20
if [ "${1:-}" = "--max-examples" ]; then max_examples="$2"; fi

ensure_rust
ensure_postgres
ensure_python_tools
[ -n "${AWS_ENDPOINT_URL:-}" ] || start_moto

stack="$(local_stack_binary debug)"

# A database of this run's own (named by its process id), so two runs on one PostgreSQL do not
# collide; dropped on exit.
db="saas_fuzz_$$"
admin="${TEST_DATABASE_ADMIN_URL%/postgres}"
drop_db() { psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
drop_db
export MIGRATION_DATABASE_URL="$admin/$db"
export DATABASE_URL="postgres://app_api:app_api@$PG_HOST:$PG_PORT/$db"
export SERVICE_DATABASE_URL="postgres://app_service:app_service@$PG_HOST:$PG_PORT/$db"
export LOCAL_STRIPE_STATE="$REPO_ROOT/target/fuzz-stripe-$$.json"
export LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}"
rm -f "$LOCAL_STRIPE_STATE"
port="$(free_port)"
base="http://127.0.0.1:$port"
log="$REPO_ROOT/target/fuzz-stack.log"
"$stack" serve --seed --port "$port" >"$log" 2>&1 &
stack_pid=$!
at_exit 'kill "$stack_pid" 2>/dev/null || true; drop_db; rm -f "$LOCAL_STRIPE_STATE"'
wait_for_url "$base/v1/health" "$stack_pid" 150 "the local stack" "$log"
curl -sf "$base/v1/health" >/dev/null || die "the local stack did not become healthy; see $log"
say "local stack on $base (log: $log)"

export FUZZ_WORKSPACE_ID=01935c00-0000-7000-8000-000000000001
export FUZZ_CLIENT_ID=01935c00-0000-7000-8000-000000000002
export FUZZ_PROJECT_ID=01935c00-0000-7000-8000-000000000003
export FUZZ_MILESTONE_ID=01935c00-0000-7000-8000-000000000004
export FUZZ_DELIVERABLE_ID=01935c00-0000-7000-8000-000000000005
export FUZZ_COMMENT_ID=01935c00-0000-7000-8000-000000000006
token() { "$stack" token --sub "$1" --ttl-days 1; }
operator="$(token demo-operator)"
owner="$(token demo-owner)"
api() { curl -sf -X "$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$4" "$base$3"; }

# The fuzzer sends thousands of requests a minute: lift the demo workspace's rate limits for a
# day (through the admin API, as an operator would), and make an API key to fuzz with.
until_tomorrow="$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)"
for limit in requests_per_minute expensive_per_minute ai_runs_per_month; do
  api POST "$operator" "/v1/admin/workspaces/$FUZZ_WORKSPACE_ID/overrides" \
    "{\"entitlement\":\"$limit\",\"value\":1000000,\"expires_at\":\"$until_tomorrow\",\"reason\":\"fuzzing\"}" >/dev/null \
    || die "could not lift $limit"
done
api_key="$(api POST "$owner" "/v1/workspaces/$FUZZ_WORKSPACE_ID/api-keys" '{"name":"fuzz","role":"member"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

# One run per caller, with the credential for its security scheme (`bearer` or `api_key`), its
# output in target/fuzz-<caller>.log. Runs go two at a time (the machine's cores).
pids=() names=() failed=()
run() {
  local who="$1" scheme="$2" credential="$3"; shift 3
  local config="$REPO_ROOT/target/schemathesis-$who.toml"
  cp scripts/schemathesis.toml "$config"
  if [ "$scheme" = bearer ]; then
    printf '\n[auth.openapi.bearer]\nbearer = "%s"\n' "$credential" >>"$config"
  else
    printf '\n[auth.openapi.api_key]\napi_key = "%s"\n' "$credential" >>"$config"
  fi
  "$VENV/bin/st" --config-file "$config" run "$base/v1/openapi.json" --max-examples "$max_examples" --seed 1 \
    --report ndjson --report-dir "$REPO_ROOT/target/schemathesis-$who" "$@" >"$REPO_ROOT/target/fuzz-$who.log" 2>&1 &
  pids+=("$!") names+=("$who")
  if [ "${#pids[@]}" -ge 2 ]; then finish_runs; fi
}
finish_runs() {
  local i
  for i in "${!pids[@]}"; do
    local who="${names[$i]}" log="$REPO_ROOT/target/fuzz-${names[$i]}.log"
    if wait "${pids[$i]}"; then
      say "schemathesis as $who: $(grep -E '^Test cases:' -A1 "$log" | tail -1 | xargs)"
    else
      failed+=("$who")
      say "schemathesis as $who FAILED:"
      sed -n '/= FAILURES =/,/= WARNINGS =\|= SUMMARY =/p' "$log" >&2
      tail -5 "$log" >&2
    fi
  done
  pids=() names=()
}
# What deletes the demo's rows (or the caller) would leave later runs nothing to reach: those run
# last, once.
destructive=(workspaces_delete account_delete projects_delete clients_delete milestones_delete deliverables_delete
  comments_delete)
keep=()
for id in "${destructive[@]}"; do keep+=(--exclude-operation-id "$id"); done
say "schemathesis over every operation, $max_examples examples each, as each kind of caller"
run owner bearer "$owner" "${keep[@]}"
run admin bearer "$(token demo-admin)" "${keep[@]}"
run member bearer "$(token demo-member)" "${keep[@]}"
run viewer bearer "$(token demo-viewer)" "${keep[@]}"
run contact bearer "$(token demo-client)" "${keep[@]}"
run api-key api_key "$api_key" "${keep[@]}"
finish_runs
# The operator may suspend the demo workspace: after every tenant's run.
run operator bearer "$operator" "${keep[@]}"
finish_runs
leaving=()
for id in "${destructive[@]}"; do leaving+=(--include-operation-id "$id"); done
# (No stateful phase: what links to these operations is filtered out of this run.)
run owner-deleting bearer "$owner" "${leaving[@]}" --phases coverage,fuzzing
finish_runs

[ "${#failed[@]}" -eq 0 ] || die "schemathesis failed for: ${failed[*]} (logs: target/fuzz-*.log; the stack's: $log)"
say "schemathesis passed for every caller"

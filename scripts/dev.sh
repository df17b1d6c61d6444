#!/usr/bin/env bash
# Runs the whole system locally: PostgreSQL (started or installed if needed), migrations, the
# demo workspace, every HTTP route of every function on one port (default 3000) through the
# same handler code that Lambda runs, the Stripe webhook feeding the billing worker through a
# local SQS queue (moto), and the e-mail worker sending through moto's SES (every mail it sends,
# invitations included, is printed with its links), and the webhook dispatcher sending to the
# endpoints workspaces register (scripts/webhook-receiver.py is a local receiver that prints and
# verifies them), and live activity on ws://127.0.0.1:3000/v1/realtime through the activity
# fan-out worker (`cargo run -q -p local-stack -- watch` follows it). Prints a development token
# and example requests.
#
#   scripts/dev.sh [--reset] [--port N]
#   --reset   drop and recreate the local saas_dev database (and the local Stripe's account)
#             first, e.g. after editing a migration that was already applied locally
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_postgres
ensure_python_tools
start_moto
admin="${TEST_DATABASE_ADMIN_URL%/postgres}"
export MIGRATION_DATABASE_URL="${MIGRATION_DATABASE_URL:-$admin/saas_dev}"
export LOG_FORMAT="${LOG_FORMAT:-pretty}"
args=()
for arg in "$@"; do
  if [ "$arg" = "--reset" ]; then
    say "dropping the local database saas_dev"
    psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS saas_dev WITH (FORCE)" >/dev/null
    rm -f "$REPO_ROOT/target/local-stripe.json"   # the local Stripe's account goes with it
  else
    args+=("$arg")
  fi
done
# Not exec: the EXIT trap stops moto when the stack stops.
cargo run --quiet -p local-stack -- serve --seed "${args[@]}"

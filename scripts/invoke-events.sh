#!/usr/bin/env bash
# Sends every sample event in events/ to its function the way docs/local-development.md shows:
# `cargo lambda invoke FUNCTION --data-file events/FILE` against `cargo lambda watch`, with the
# local stack (seeded demo workspace, local Stripe and AI provider, queues in moto) behind them.
# The Stripe webhook's event is signed right before it is sent (`local-stack sign-stripe-event`).
# Prints each event's answer and fails if any invocation errs or answers 5xx. Not part of the
# test suite (it builds every function again under cargo-lambda); run it when events change:
#
#   scripts/invoke-events.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_postgres
ensure_python_tools
export PATH="$VENV/bin:$PATH"
start_moto

stack_port="$(free_port)"
watch_port="$(free_port)"
work="$REPO_ROOT/target/invoke-events"
mkdir -p "$work"

say "the local stack on :$stack_port (migrated and seeded saas_dev, the local Stripe and AI, queues in moto)"
cargo build -q -p local-stack
"$REPO_ROOT/target/debug/local-stack" serve --seed --port "$stack_port" >"$work/stack.log" 2>&1 &
stack_pid=$!
at_exit 'kill "$stack_pid" 2>/dev/null || true'
wait_for_url "http://127.0.0.1:$stack_port/v1/health" "$stack_pid" 600 "the local stack" "$work/stack.log"

queue_url() { "$VENV/bin/python" -c 'import boto3, sys; print(boto3.client("sqs").get_queue_url(QueueName=sys.argv[1])["QueueUrl"])' "$1"; }
cat >"$work/watch.env" <<EOF
DATABASE_URL=postgres://app_api:app_api@127.0.0.1:5432/saas_dev
SERVICE_DATABASE_URL=postgres://app_service:app_service@127.0.0.1:5432/saas_dev
ADMIN_DATABASE_URL=postgres://app_admin:app_admin@127.0.0.1:5432/saas_dev
AUTH_HS256_SECRET=local-development-secret-never-use-in-production
ADMIN_SUBJECTS=demo-operator
STRIPE_SECRET_KEY=sk_test_local_stripe
STRIPE_API_BASE=http://127.0.0.1:$stack_port/_stripe
STRIPE_WEBHOOK_SECRETS=whsec_local_development
AI_PROVIDER_API_KEY=sk-ant-local-provider
AI_PROVIDER_BASE_URL=http://127.0.0.1:$stack_port/_ai
BILLING_REDIRECT_ORIGINS=http://127.0.0.1:3000,http://localhost:3000
EMAIL_FROM=no-reply@saas.local
APP_BASE_URL=http://127.0.0.1:$stack_port
EXPORTS_BUCKET=saas-local-exports
FILES_BUCKET=saas-local-files
WEBHOOKS_ALLOW_LOOPBACK_HTTP=true
REALTIME_ENDPOINT=http://127.0.0.1:$stack_port
STRIPE_EVENTS_QUEUE_URL=$(queue_url stripe-events)
USAGE_QUEUE_URL=$(queue_url usage)
EMAIL_QUEUE_URL=$(queue_url email)
WEBHOOK_QUEUE_URL=$(queue_url webhooks)
ACTIVITY_QUEUE_URL=$(queue_url activity)
EXPORT_QUEUE_URL=$(queue_url exports)
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
LOG_FORMAT=pretty
EOF

say "cargo lambda watch on :$watch_port (the development tokens need shared/dev)"
cargo lambda watch --invoke-port "$watch_port" --env-file "$work/watch.env" --features shared/dev >"$work/watch.log" 2>&1 &
watch_pid=$!
at_exit 'kill "$watch_pid" 2>/dev/null || true'
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$watch_port/" && break
  kill -0 "$watch_pid" 2>/dev/null || die "cargo lambda watch exited; see $work/watch.log"
  sleep 1
done

# The function an event file is for: the longest function name its name starts with.
function_of() {
  local file="$1" best=""
  for function in $(ls functions); do
    case "$file" in "$function"*) [ ${#function} -gt ${#best} ] && best="$function" ;; esac
  done
  echo "$best"
}

failed=0
printf '%-34s %-20s %s\n' event function answer
for path in events/*.json; do
  name="$(basename "$path" .json)"
  function="$(function_of "$name")"
  [ -n "$function" ] || die "no function for events/$name.json"
  data="$path"
  if [ "$name" = stripe-webhook ]; then
    data="$work/stripe-webhook.json"
    "$REPO_ROOT/target/debug/local-stack" sign-stripe-event "$path" >"$data"
  fi
  if answer="$(cargo lambda invoke "$function" --invoke-port "$watch_port" --data-file "$data" --output-format json 2>&1)"; then
    summary="$(printf '%s' "$answer" | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    answer = json.loads(text)
except ValueError:
    print("unreadable: " + text[:120]); sys.exit(1)
if isinstance(answer, dict) and "statusCode" in answer:
    status = answer["statusCode"]
    print("HTTP", status); sys.exit(1 if status >= 500 else 0)
if isinstance(answer, dict) and answer.get("batchItemFailures"):
    print("batch item failures:", answer["batchItemFailures"]); sys.exit(1)
print(json.dumps(answer)[:100])
')" || { failed=1; summary="FAILED: $summary"; }
  else
    failed=1
    summary="FAILED: $(printf '%s' "$answer" | tail -n 3 | tr '\n' ' ' | cut -c1-200)"
  fi
  printf '%-34s %-20s %s\n' "$name" "$function" "$summary"
done
[ "$failed" = 0 ] || die "some events failed (logs: $work/watch.log, $work/stack.log)"
say "every event in events/ invoked its function"

#!/usr/bin/env bash
# The live-activity fan-out under load: CONNECTIONS real WebSocket clients on one workspace,
# EVENTS comments written one after another through the API, pushed through the outbox sweep,
# moto's SQS and the activity-fanout worker (release build). Prints delivered frames per second
# and commit-to-receipt latency percentiles. Not part of the test suite.
#
#   bench/bench-realtime.sh [CONNECTIONS] [EVENTS]     (default 1000 and 100)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

ensure_postgres
ensure_python_tools
start_moto
# A thousand sockets on each side of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
RUST_LOG=error cargo run -q --release -p bench --bin bench-realtime -- "${1:-1000}" "${2:-100}"

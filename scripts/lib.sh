# Shared helpers for scripts/dev.sh and scripts/test.sh. Each one starts or installs what it
# needs and says clearly what is missing when it cannot.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PG_HOST="${PGHOST_OVERRIDE:-127.0.0.1}"
PG_PORT="${PGPORT_OVERRIDE:-5432}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Runs COMMAND when the calling script exits, after those registered before it (bash keeps a
# single EXIT trap, so helpers register here instead of replacing each other's).
EXIT_COMMANDS=()
at_exit() {
  EXIT_COMMANDS+=("$1")
  trap 'for command in "${EXIT_COMMANDS[@]}"; do eval "$command"; done' EXIT
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

# PostgreSQL: use the running server, start an installed but stopped one, or install it.
ensure_postgres() {
  if ! command -v pg_isready >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    say "PostgreSQL is not installed; installing it from Debian's packages"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || die "could not install PostgreSQL (needs root or sudo): apt-get install postgresql"
  fi
  if ! pg_ready; then
    say "starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$version" ] || die "PostgreSQL is installed but has no cluster under /etc/postgresql"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start \
      || die "could not start PostgreSQL: pg_ctlcluster $version main start"
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
    pg_ready || die "PostgreSQL did not come up on $PG_HOST:$PG_PORT"
  fi
  export TEST_DATABASE_ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-$(admin_url)}"
}

# A superuser URL over TCP. Trust auth (as on this project's machines) needs no password; a fresh
# Debian install uses password auth on TCP, so the postgres role gets a local-only password.
admin_url() {
  if psql "postgres://postgres@$PG_HOST:$PG_PORT/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    echo "postgres://postgres@$PG_HOST:$PG_PORT/postgres"; return
  fi
  if psql "postgres://postgres:postgres@$PG_HOST:$PG_PORT/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    echo "postgres://postgres:postgres@$PG_HOST:$PG_PORT/postgres"; return
  fi
  say "giving the local postgres role the password 'postgres' for TCP connections"
  as_root su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null \
    || die "cannot connect to PostgreSQL as postgres; set TEST_DATABASE_ADMIN_URL to a superuser URL"
  echo "postgres://postgres:postgres@$PG_HOST:$PG_PORT/postgres"
}

# The benchmark database bench/bench-rls.sh seeds, which the other benchmarks read.
require_bench_database() {
  [ "$(psql "$TEST_DATABASE_ADMIN_URL" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'saas_bench'")" = 1 ] ||
    die "no saas_bench database: run bench/bench-rls.sh first"
}

# Python tools (moto, cfn-lint, SAM CLI, cargo-lambda) in .venv, pinned in scripts/requirements-dev.txt.
ensure_python_tools() {
  local stamp="$VENV/.requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$REPO_ROOT/scripts/requirements-dev.txt"; then return; fi
  command -v python3 >/dev/null 2>&1 || die "python3 is required (apt-get install python3)"
  if [ ! -x "$VENV/bin/pip" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV" 2>/dev/null || {
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
        || die "python3 -m venv failed; install python3-venv"
      python3 -m venv "$VENV"
    }
  fi
  say "installing moto, cfn-lint, the SAM CLI, cargo-lambda and schemathesis from PyPI"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO_ROOT/scripts/requirements-dev.txt" \
    || die "pip could not install scripts/requirements-dev.txt"
  cp "$REPO_ROOT/scripts/requirements-dev.txt" "$stamp"
}

# Headless Chromium and ChromeDriver, for the tests about what browsers enforce (CORS).
ensure_browser() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return; fi
  say "installing Chromium and ChromeDriver from Debian's packages (the browser tests)"
  as_root apt-get update -qq >/dev/null \
    && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || die "could not install the browser (needs root or sudo): apt-get install chromium chromium-driver"
}

# Waits (0.2 s at a time, at most TRIES times) until URL answers, dying if process PID exits:
#   wait_for_url URL PID TRIES NAME LOG
wait_for_url() {
  local url="$1" pid="$2" tries="$3" name="$4" log="$5"
  for _ in $(seq 1 "$tries"); do
    curl -sf "$url" >/dev/null 2>&1 && return
    kill -0 "$pid" 2>/dev/null || die "$name exited; see $log"
    sleep 0.2
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts moto's server on a free loopback port and points the AWS SDK at it (with dummy
# credentials), so nothing can reach real AWS. Stopped when the calling script exits.
start_moto() {
  local port log
  port="$(free_port)"
  log="$REPO_ROOT/target/moto.log"
  mkdir -p "$REPO_ROOT/target"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  at_exit 'kill "$MOTO_PID" 2>/dev/null || true'
  wait_for_url "http://127.0.0.1:$port/moto-api/" "$MOTO_PID" 50 "moto_server" "$log"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  unset AWS_PROFILE AWS_SESSION_TOKEN
  say "moto (local SQS and Secrets Manager) on $AWS_ENDPOINT_URL"
}

# The local stack's binary: LOCAL_STACK_BIN when set (a build to compare, or the one the test
# command's own build made), else this checkout's, built in PROFILE (debug or release).
local_stack_binary() {
  local profile="$1"
  if [ -n "${LOCAL_STACK_BIN:-}" ]; then echo "$LOCAL_STACK_BIN"; return; fi
  say "building the local stack ($profile)"
  local flags=(-q -p local-stack)
  [ "$profile" = release ] && flags+=(--release)
  cargo build "${flags[@]}" || die "the local stack did not build"
  echo "$REPO_ROOT/target/$profile/local-stack"
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "Rust is required: https://rustup.rs (then re-run)"
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
}

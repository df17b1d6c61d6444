#!/usr/bin/env bash
# The test suite: formatting, clippy's lints, a check that the SQL the macros verified at compile
# time still matches the migrations (as `cargo sqlx prepare --check` would), every Rust test
# against a real PostgreSQL and a local AWS-compatible server (moto), schemathesis over the local
# stack against openapi.json, a real browser (headless Chromium) for CORS, and cfn-lint and `sam validate --lint` on the SAM template. CI runs
# exactly this.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-query-data.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_postgres
ensure_python_tools
ensure_browser
start_moto

say "dropping databases left by earlier test runs"
psql "$TEST_DATABASE_ADMIN_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'saas\_test\_%'" |
  while read -r db; do psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null || true; done

# A fresh clone (CI) gains nothing from incremental compilation's bookkeeping, only its cost.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

say "cargo fmt --check"
cargo fmt --all -- --check

# One build of every target (what `cargo clippy --all-targets` covers), which also serves the
# tests and the fuzzing: every dependency compiles once, not once for clippy (metadata only) and
# again for the tests, and sqlx-cli is not needed. Clippy's driver compiles the workspace's own
# crates, with its lints as errors, passed the way `cargo clippy -- -D warnings` passes them; the
# query macros describe each statement against a database migrated from migrations/, and .sqlx/
# must match those descriptions exactly.
clippy_driver="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$clippy_driver" ] || die "clippy is required: rustup component add clippy"
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# CLIPPY_ARGS is how cargo-clippy talks to its driver, not a documented interface: a clippy
# warning planted in a scratch file must fail, or this toolchain no longer reads it that way.
probe="$REPO_ROOT/target/clippy-probe.rs"
mkdir -p "$REPO_ROOT/target" && echo 'pub fn probe(bytes: &Vec<u8>) -> usize { bytes.len() }' >"$probe"
if probe_output="$("$clippy_driver" --edition 2021 --crate-type lib --emit metadata -o "$probe.rmeta" "$probe" 2>&1)" ||
   ! grep -q 'ptr.arg' <<<"$probe_output"; then
  die "clippy's driver did not make its planted warning an error (CLIPPY_ARGS unread?): $probe_output"
fi
create_query_database
say "cargo build --all-targets: clippy's lints (-D warnings), each statement described against migrations/"
describe_queries build --quiet --workspace --all-targets
check_query_data

say "cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee "$REPO_ROOT/target/test-output.log"

# The API against its own OpenAPI document, as every kind of caller (schemathesis).
LOCAL_STACK_BIN="$REPO_ROOT/target/debug/local-stack" scripts/fuzz-api.sh --max-examples 10

say "cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml

say "sam validate --lint"
# Offline: the region only names the partition's resource specification; no call leaves.
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" validate --lint --template template.yaml

# The cross toolchain for Lambda's arm64 (cargo-lambda and zig), kept from rotting: one function
# built and laid out as for `sam deploy`, its bootstrap checked to be an aarch64 ELF. In CI (about
# five minutes on two cores: a release build of the dependencies for aarch64 and one fat-LTO
# link), or locally with BUILD_ARM64=1; scripts/build-lambda.sh builds them all.
if [ "${CI:-}" = "true" ] || [ "${BUILD_ARM64:-}" = 1 ]; then
  say "an arm64 Lambda build (authorizer)"
  scripts/build-lambda.sh authorizer
fi

say "all checks passed"
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$REPO_ROOT/target/test-output.log"

#!/usr/bin/env bash
# The test suite: formatting, lints, a check that the SQL the macros verified at compile time
# still matches the migrations (`cargo sqlx prepare --check`), every Rust test against a real
# PostgreSQL and a local AWS-compatible server (moto), schemathesis over the local stack against
# openapi.json, and cfn-lint and `sam validate --lint` on the SAM template. CI runs exactly this.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_postgres
ensure_python_tools
start_moto

say "dropping databases left by earlier test runs"
psql "$TEST_DATABASE_ADMIN_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'saas\_test\_%'" |
  while read -r db; do psql "$TEST_DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null || true; done

# A fresh clone (CI) gains nothing from incremental compilation's bookkeeping, only its cost.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# The queries' compile-time descriptions in .sqlx/ against a database migrated from migrations/.
scripts/sqlx-prepare.sh --check

say "cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee "$REPO_ROOT/target/test-output.log"

# The API against its own OpenAPI document, as every kind of caller (schemathesis).
scripts/fuzz-api.sh --max-examples 10

say "cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml

say "sam validate --lint"
# Offline: the region only names the partition's resource specification; no call leaves.
AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" validate --lint --template template.yaml

say "all checks passed"
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$REPO_ROOT/target/test-output.log"

#!/usr/bin/env bash
# Builds every function for AWS Lambda (arm64, provided.al2023) and lays the result out as
# `sam build` does, so `sam deploy` takes it as it is:
#
#   scripts/build-lambda.sh [FUNCTION ...]     # default: every crate under functions/
#
# One `cargo lambda build --release --arm64` for all the functions (the dependencies compile
# once; each binary is one fat-LTO link), with cargo-lambda and zig (the cross linker) from the
# project's Python tools. Then each function's `bootstrap` is checked to be an aarch64 ELF and
# copied to .aws-sam/build/<LogicalId>/, and .aws-sam/build/template.yaml is template.yaml with
# each function's CodeUri pointing there. Prints the build time and each binary's size.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_python_tools
export PATH="$VENV/bin:$PATH"
command -v cargo-lambda >/dev/null || die "cargo-lambda is missing from $VENV (scripts/requirements-dev.txt)"

functions=("$@")
if [ ${#functions[@]} -eq 0 ]; then
  mapfile -t functions < <(ls functions)
fi
packages=()
for function in "${functions[@]}"; do
  [ -f "functions/$function/Cargo.toml" ] || die "no function $function under functions/"
  packages+=(-p "$function")
done

say "cargo lambda build --release --arm64 (${#functions[@]} functions)"
started=$(date +%s)
SQLX_OFFLINE=true cargo lambda build --release --arm64 --lambda-dir target/lambda "${packages[@]}"
seconds=$(( $(date +%s) - started ))

python3 - "$seconds" "${functions[@]}" <<'PY'
import pathlib, re, shutil, sys

seconds, functions = int(sys.argv[1]), sys.argv[2:]
root = pathlib.Path(".")
template = (root / "template.yaml").read_text()
# Each function's logical id, from its BuildProperties' Binary.
logical = dict((binary, logical_id) for logical_id, binary in re.findall(
    r"^  ([A-Za-z0-9]+):\n    Type: AWS::Serverless::Function\n(?:    .*\n|\n)*?        Binary: ([a-z0-9-]+)\n",
    template, re.M))
build = root / ".aws-sam" / "build"
shutil.rmtree(build, ignore_errors=True)
build.mkdir(parents=True)
total = 0
print(f"{'function':<22} {'bytes':>10}")
for function in functions:
    bootstrap = root / "target" / "lambda" / function / "bootstrap"
    header = bootstrap.read_bytes()[:20]
    # ELF, 64-bit, little-endian, e_machine 183 (EM_AARCH64).
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1 or int.from_bytes(header[18:20], "little") != 183:
        sys.exit(f"{bootstrap} is not an aarch64 ELF executable")
    if function not in logical:
        sys.exit(f"template.yaml has no function whose Binary is {function}")
    target = build / logical[function]
    target.mkdir()
    shutil.copy2(bootstrap, target / "bootstrap")
    size = bootstrap.stat().st_size
    total += size
    print(f"{function:<22} {size:>10}")
    # The function's block: its CodeUri points at its directory, with nothing left to build.
    block = re.compile(
        rf"(^  {logical[function]}:\n    Type: AWS::Serverless::Function\n(?:.*\n)*?)    Metadata:\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: {function}\n((?:.*\n)*?      CodeUri: )\.\n",
        re.M)
    template, count = block.subn(rf"\1\2{logical[function]}\n", template, count=1)
    if count != 1:
        sys.exit(f"could not point {logical[function]}'s CodeUri at its build")
(build / "template.yaml").write_text(template)
print(f"{'total':<22} {total:>10}")
print(f"built {len(functions)} aarch64 bootstraps in {seconds // 60} min {seconds % 60} s; "
      f"`sam deploy` now deploys .aws-sam/build/template.yaml")
PY

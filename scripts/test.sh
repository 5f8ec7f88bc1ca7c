#!/usr/bin/env bash
# What `make test` runs: formatting and lint checks, then every test, then a
# one-line total so that a run which executed nothing cannot look green.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?

passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "total: $passed passed, $failed failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
    echo "no test ran" >&2
    exit 1
fi
exit "$status"

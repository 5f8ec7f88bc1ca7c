#!/usr/bin/env bash
# What `make test` runs: formatting and lint checks, then every test, then a
# one-line total so that a run which executed nothing cannot look green.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh --ensure

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if command -v cargo-deny >/dev/null 2>&1; then
    cargo deny check bans licenses sources
else
    echo "cargo-deny not installed: dependency policy not checked (cargo install cargo-deny)" >&2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?

# Every fuzz target still builds and runs a few seconds over its seeds.
if [ "$status" -eq 0 ] && command -v cargo-fuzz >/dev/null 2>&1; then
    for target in certificate keyfile token daemon_args verify; do
        ./fuzz/run.sh "$target" "${FUZZ_SECONDS:-5}" >"$log.fuzz" 2>&1 || { cat "$log.fuzz"; status=1; }
        grep -E "^Done [0-9]+ runs" "$log.fuzz" | sed "s/^/fuzz $target: /" || true
    done
    rm -f "$log.fuzz"
fi

passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "total: $passed passed, $failed failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
    echo "no test ran" >&2
    exit 1
fi
exit "$status"

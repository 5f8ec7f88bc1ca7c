#!/usr/bin/env bash
# Runs one fuzz target for a given time on the stable toolchain (no
# sanitizer; Rust's own checks catch panics and overflows in debug
# assertions). Usage: fuzz/run.sh TARGET SECONDS
#   targets: certificate keyfile token daemon_args verify
# A crash is saved under fuzz/artifacts/TARGET/; turn it into a regression
# test next to the rule it broke.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?target}
seconds=${2:-60}
mkdir -p "corpus/$target"
# The committed seeds stay as they are; new inputs go to a scratch corpus.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo fuzz run -s none "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1

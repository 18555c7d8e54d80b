#!/usr/bin/env bash
# The test command: formatting, lints, then every test (unit, storage conformance and recovery,
# in-process clusters with injected faults, real processes through scripts/cluster.sh).
# Everything builds once, in the dev profile (dependencies optimised), and is reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked -- --test-threads="${RAFTKA_TEST_THREADS:-2}"

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

# The compose deployment (compose.yaml and the Dockerfile's runtime), with the binaries built by
# cargo test above and a base image made locally (no registry). Needs Docker and root.
echo "== scripts/compose-test.sh"
if [[ -n "${RAFTKA_SKIP_COMPOSE:-}" ]]; then
  echo "skipped: RAFTKA_SKIP_COMPOSE is set"
elif ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "skipped: no Docker daemon"
else
  scripts/compose-test.sh
fi

# GET /metrics scraped by a real Prometheus (Debian's package, which .ci/run installs), with the
# binaries built above: the exact consumer lag through its HTTP API, and promtool's lint.
echo "== scripts/metrics-test.sh"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "skipped: prometheus is not installed (apt-get install prometheus; .ci/run installs it)"
else
  scripts/metrics-test.sh
fi

# The OpenAPI document (GET /openapi.json) against the node that serves it: schemathesis (from
# PyPI, into a cached venv) sends a few thousand generated requests over every operation to one
# node built above; any 5xx, undocumented status or content type, or reply off its schema fails.
echo "== scripts/openapi-test.sh"
if ! command -v python3 >/dev/null 2>&1; then
  echo "skipped: python3 is not installed (apt-get install python3 python3-venv; .ci/run installs them)"
else
  scripts/openapi-test.sh
fi

# The short fault run (STYLE.md: "then a short fault run"): real nodes in network namespaces,
# about 4 minutes. It reuses the dev build above (jepsen/run builds the same selection, so
# nothing recompiles) and removes everything it created: namespaces, nft rules, qdiscs, node
# processes, and with --clean its results directory when every cell passed (kept otherwise, for
# the histories and node logs). It needs root for the namespaces.
echo "== jepsen/run --profile ci"
if [[ -n "${RAFTKA_SKIP_JEPSEN:-}" ]]; then
  echo "skipped: RAFTKA_SKIP_JEPSEN is set"
elif ((EUID != 0)); then
  echo "skipped: jepsen/run needs root (network namespaces); CI runs as root"
else
  results="$(mktemp -d "${TMPDIR:-/tmp}/raftka-jepsen-ci.XXXXXX")"
  rc=0
  jepsen/run --profile ci --clean --results "$results" || rc=$?
  # Left empty (and so removed here) only when jepsen/run stopped before it started.
  rmdir "$results" 2>/dev/null || true
  exit "$rc"
fi

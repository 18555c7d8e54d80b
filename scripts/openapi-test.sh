#!/usr/bin/env bash
# The OpenAPI document against the server that serves it: schemathesis (PyPI, pinned, in a
# cached venv) generates requests for every operation of GET /openapi.json, valid and invalid,
# and checks every reply of a real single node:
#
#   not_a_server_error           no 5xx, whatever the input;
#   status_code_conformance      every status is one the document lists for the operation;
#   content_type_conformance     every reply has a content type the document lists;
#   response_schema_conformance  every body matches the document's schema for that status;
#   response_headers_conformance every documented header (x-request-id) is there and matches.
#
# Any failure fails the script, and so does a run of fewer than $MIN_REQUESTS requests or one
# with a 5xx. The counts come from the node's own request counter
# (raftka_http_requests_total), read before and after the run.
#
#   scripts/openapi-test.sh [--bin-dir DIR] [--max-examples N] [--seed N]
#
# (default bin dir: $CARGO_TARGET_DIR/debug or target/debug, as `cargo test` builds it). The
# venv lives in $RAFTKA_SCHEMATHESIS_VENV (default ~/.cache/raftka/schemathesis-<version>);
# the first run fills it from PyPI. Traffic goes only to 127.0.0.1; the run is bounded by
# --max-examples and by a timeout; only the node started here is stopped (by its PID), and the
# temp directory is removed, by the EXIT trap.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$RAFTKA_ROOT"
SCHEMATHESIS_VERSION="4.32.5"
MIN_REQUESTS=2000
bin_dir="${CARGO_TARGET_DIR:-target}/debug"
max_examples=100
seed=20261205
# The whole schemathesis run, at most (seconds).
run_timeout=480
while (($#)); do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --max-examples) max_examples="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) die "usage: $0 [--bin-dir DIR] [--max-examples N] [--seed N]" ;;
    esac
done
if ! is_uint "$max_examples" || ((max_examples == 0)); then
    die "--max-examples must be a positive integer"
fi
is_uint "$seed" || die "--seed must be a non-negative integer"
need_cmd python3 "apt-get install python3 python3-venv"
need_cmd curl
need_cmd timeout
[[ -x "$bin_dir/raftka-node" ]] || die "$bin_dir/raftka-node is missing: build it (cargo build -p raftka-node)"

# ---- schemathesis, in its own venv --------------------------------------------------------------
venv="${RAFTKA_SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-${HOME:-$RAFTKA_ROOT/target}/.cache}/raftka/schemathesis-$SCHEMATHESIS_VERSION}"
st="$venv/bin/schemathesis"
if [[ "$("$st" --version 2>/dev/null)" != *"version $SCHEMATHESIS_VERSION"* ]]; then
    info "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis failed"
fi
"$st" --version >/dev/null || die "$st does not run"

# ---- one node ----------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/raftka-openapi-test.XXXXXX")"
node_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$node_pid" ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill "$node_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$node_pid" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -f "$work/node.log" ]]; then
        print_log_tail "$work/node.log" 30
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# A free port on 127.0.0.1 (the kernel's pick; free when asked, taken by the node right after).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin_dir/raftka-node" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    >"$work/stdout" 2>"$work/node.log" &
node_pid=$!
for _ in $(seq 1 100); do
    grep -q '^ready ' "$work/stdout" 2>/dev/null && break
    kill -0 "$node_pid" 2>/dev/null || die "raftka-node exited before it was ready"
    sleep 0.1
done
grep -q '^ready ' "$work/stdout" || die "raftka-node not ready in 10 s"
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    [[ "$(http_code "$base/readyz")" == 200 ]] && break
    sleep 0.1
done
[[ "$(http_code "$base/readyz")" == 200 ]] || die "raftka-node not ready (/readyz) in 10 s"
# Membership requests answer 503 (retriable) until the controller has filled the node registry,
# shortly after the cluster forms; a rebalance of the still empty cluster answers 200 then.
rebalanced=""
for _ in $(seq 1 100); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "$base/v1/cluster/rebalance")" || true
    [[ "$code" == 200 ]] && { rebalanced=1; break; }
    sleep 0.1
done
[[ -n "$rebalanced" ]] || die "the node registry was not filled in 10 s"
info "raftka-node (PID $node_pid) on $base"

# ---- data for the document's examples ----------------------------------------------------------
# The examples name topic `orders`, group `billing`, user `alice`: with these in place the
# example requests reach the handlers' real work instead of a 404.
post() {
    curl -fsS --max-time 15 -o /dev/null -X POST "$base$1" -H 'content-type: application/json' -d "$2" ||
        die "seeding: POST $1 failed"
}
post /v1/topics '{"name":"orders","partitions":3,"replication_factor":1}'
post /v1/topics/orders/records \
    '{"records":[{"key":"alice","value":{"total":1}},{"key":"dave","value":2},{"value_base64":"AAEC","partition":2}]}'
post /v1/groups/billing/offsets/reset '{"topic":"orders","to":"earliest"}'
post /v1/security/users '{"name":"alice"}'
post /v1/security/acls \
    '{"principal":"alice","resource_type":"topic","resource_name":"orders","pattern_type":"literal","operation":"read","permission":"allow"}'

# Read from a file rather than from its URL: schemathesis leaves out the operation that serves
# the schema it loads, and GET /openapi.json is one of the operations to test.
curl -fsS --max-time 10 -o "$work/openapi.json" "$base/openapi.json" || die "GET /openapi.json failed"

# requests_by_status — "STATUS COUNT" lines from the node's request counter.
requests_by_status() {
    curl -fsS --max-time 10 "$base/metrics" |
        awk '/^raftka_http_requests_total\{/ {
                match($0, /status="[0-9]+"/); s = substr($0, RSTART + 8, 3); n[s] += $NF
            }
            END { for (s in n) print s, n[s] }' | sort
}
total() { awk '{ t += $2 } END { print t + 0 }'; }
before="$(requests_by_status)"

# ---- schemathesis --------------------------------------------------------------------------------
info "schemathesis run: every operation, --max-examples $max_examples, seed $seed"
started="$(now_s)"
rc=0
report_dir="$(abspath "${RAFTKA_OPENAPI_REPORT_DIR:-$work/report}")"
# The hooks bound the fetch long poll (see the file). Run from the temp directory: schemathesis
# keeps a cache (.schemathesis/) in its working directory.
(cd "$work" && SCHEMATHESIS_HOOKS="$RAFTKA_ROOT/scripts/openapi-hooks.py" \
    timeout "$run_timeout" "$st" --no-color run "$work/openapi.json" --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --request-timeout 45 \
    --generation-database none \
    --report junit,har --report-dir "$report_dir" \
    >"$work/schemathesis.txt" 2>&1) || rc=$?
elapsed=$(($(now_s) - started))
cat "$work/schemathesis.txt"
((rc != 124)) || die "schemathesis did not finish in ${run_timeout} s"
((rc == 0)) || die "schemathesis found failures (exit $rc)"

after="$(requests_by_status)"
# The request count of the run: after minus before, less the scrape that read `before`.
requests=$(($(total <<<"$after") - $(total <<<"$before") - 1))
server_errors=$(($(awk '$1 ~ /^5/' <<<"$after" | total) - $(awk '$1 ~ /^5/' <<<"$before" | total)))
operations="$(python3 -c '
import json, sys
paths = json.load(sys.stdin)["paths"]
print(sum(1 for item in paths.values() for m in item if m in ("get", "put", "post", "delete", "patch")))' <"$work/openapi.json")"
tested="$(sed -n 's/^ *Tested: \([0-9]*\)$/\1/p' "$work/schemathesis.txt")"
[[ "$tested" == "$operations" ]] || die "schemathesis tested ${tested:-no} operations of the document's $operations"
info "statuses the node answered during the run (status count):"
join -a1 -a2 -e0 -o '0,1.2,2.2' <(printf '%s\n' "$before") <(printf '%s\n' "$after") |
    awk '{ d = $3 - $2; if (d > 0) printf "    %s %d\n", $1, d }' >&2
info "requests: $requests over $operations operations in ${elapsed} s; 5xx: $server_errors"
((server_errors == 0)) || die "the node answered $server_errors requests with a 5xx"
((requests >= MIN_REQUESTS)) || die "only $requests requests (want at least $MIN_REQUESTS): raise --max-examples"
info "openapi test passed"

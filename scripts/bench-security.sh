#!/usr/bin/env bash
# What the production surface costs: `raftka bench produce` against a plain 3-node cluster (HTTP,
# auth off) and a secured one (HTTPS between clients and nodes and between the nodes, auth
# required with a user's bearer token checked against ACLs, /metrics scraped every second),
# both running at once, alternating for several rounds. Prints records/s, latency and server CPU
# per run, the medians and the secured/plain ratios. See --help and docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/bench-security.sh"
RECORDS=300000
ROUNDS=3
SIZE=100
BATCH=100
CONCURRENCY=16
MAX_SECONDS=300
BASE_PORT=26191
DIR="${TMPDIR:-/tmp}/raftka-bench-security"
NODE_BIN=""
RAFTKA_BIN=""

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Starts two 3-node clusters with scripts/cluster.sh: 'plain' (HTTP, auth off) on ports
BASE_PORT..+2 and 'secure' (cluster.sh start --tls, RAFTKA_AUTH=required) on BASE_PORT+10..+12.
On the secure one a user 'bench' gets a token and an ACL for the topics it benchmarks; while a
secure run goes, every node's /metrics is scraped once a second over HTTPS (as Prometheus would).
Then runs 'raftka bench produce' ROUNDS times on each, alternating which goes first, each run
on a new topic with 3 partitions and 3 replicas, verified. Server CPU is the user+system time
of that cluster's three node processes during the run. Metrics are collected on both clusters
(the registry has no off switch); only the secure one is scraped. Stops both at the end.

Options:
  --records N        records per run (default $RECORDS)
  --rounds R         rounds; each runs both clusters once (default $ROUNDS)
  --record-size B    value size (default $SIZE)
  --batch N          records per request (default $BATCH)
  --concurrency C    requests in flight (default $CONCURRENCY)
  --max-seconds S    bound of each run (default $MAX_SECONDS)
  --base-port P      HTTP port of the plain cluster's node 1 (default $BASE_PORT)
  --dir DIR          work directory (default $DIR; cleaned at start)
  --node-bin PATH    raftka-node binary (default: cluster.sh's, target/debug/raftka-node)
  --raftka-bin PATH  raftka CLI (default: target/debug/raftka)
  -h, --help         this help
EOF
}

while (($# > 0)); do
    case "$1" in
        --records) RECORDS="${2:?}"; shift 2 ;;
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
        --record-size) SIZE="${2:?}"; shift 2 ;;
        --batch) BATCH="${2:?}"; shift 2 ;;
        --concurrency) CONCURRENCY="${2:?}"; shift 2 ;;
        --max-seconds) MAX_SECONDS="${2:?}"; shift 2 ;;
        --base-port) BASE_PORT="${2:?}"; shift 2 ;;
        --dir) DIR="${2:?}"; shift 2 ;;
        --node-bin) NODE_BIN="${2:?}"; shift 2 ;;
        --raftka-bin) RAFTKA_BIN="${2:?}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see $PROG --help)" ;;
    esac
done
for v in "$RECORDS" "$ROUNDS" "$SIZE" "$BATCH" "$CONCURRENCY" "$MAX_SECONDS" "$BASE_PORT"; do
    is_uint "$v" || die "numeric options take whole numbers, got '$v'"
done
RAFTKA_BIN="${RAFTKA_BIN:-${CARGO_TARGET_DIR:-$RAFTKA_ROOT/target}/debug/raftka}"
[[ -x "$RAFTKA_BIN" ]] || die "raftka CLI $RAFTKA_BIN is missing (cargo build -p raftka-client --bin raftka)"
need_cmd curl "apt-get install -y curl"

PLAIN="$DIR/plain"
SECURE="$DIR/secure"
SECURE_PORT=$((BASE_PORT + 10))
SCRAPER_PID=""
STARTED=()
cleanup() {
    if [[ -n "$SCRAPER_PID" ]]; then kill "$SCRAPER_PID" 2>/dev/null || true; fi
    for d in "${STARTED[@]+"${STARTED[@]}"}"; do
        "$RAFTKA_ROOT/scripts/cluster.sh" stop --dir "$d" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

rm -rf "$DIR"
mkdir -p "$DIR"
bin_arg=()
if [[ -n "$NODE_BIN" ]]; then bin_arg=(--bin "$NODE_BIN"); fi

info "starting the plain cluster on 127.0.0.1:$BASE_PORT-$((BASE_PORT + 2))"
STARTED+=("$PLAIN")
env -u RAFTKA_AUTH -u RAFTKA_ADMIN_TOKEN -u RAFTKA_ADMIN_TOKEN_FILE \
    "$RAFTKA_ROOT/scripts/cluster.sh" start -n 3 --clean --dir "$PLAIN" --base-port "$BASE_PORT" \
    "${bin_arg[@]}" >/dev/null

info "starting the secure cluster (TLS, auth required) on 127.0.0.1:$SECURE_PORT-$((SECURE_PORT + 2))"
(
    umask 077
    od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$DIR/admin-token"
)
STARTED+=("$SECURE")
env -u RAFTKA_ADMIN_TOKEN RAFTKA_AUTH=required RAFTKA_ADMIN_TOKEN_FILE="$DIR/admin-token" \
    "$RAFTKA_ROOT/scripts/cluster.sh" start -n 3 --clean --tls --dir "$SECURE" \
    --base-port "$SECURE_PORT" "${bin_arg[@]}" >/dev/null
CA="$SECURE/tls/ca.pem"

plain_bootstrap="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))"
secure_bootstrap="127.0.0.1:$SECURE_PORT,127.0.0.1:$((SECURE_PORT + 1)),127.0.0.1:$((SECURE_PORT + 2))"
admin() {
    RAFTKA_BOOTSTRAP="$secure_bootstrap" RAFTKA_CA="$CA" RAFTKA_TOKEN_FILE="$DIR/admin-token" \
        "$RAFTKA_BIN" "$@"
}
admin user create bench >/dev/null
admin user token bench >"$DIR/bench-token" 2>/dev/null
admin acl add --principal bench --topic sec- --prefixed --operation all >/dev/null

# The scraper: every node's /metrics once a second over HTTPS, bounded in count and time.
(
    for ((i = 0; i < 3600; i++)); do
        for ((k = 0; k < 3; k++)); do
            curl -s --max-time 2 --cacert "$CA" -o /dev/null "https://127.0.0.1:$((SECURE_PORT + k))/metrics" || true
        done
        sleep 1
    done
) &
SCRAPER_PID=$!

mapfile -t PLAIN_PIDS < <(cat "$PLAIN"/node-*/pid)
mapfile -t SECURE_PIDS < <(cat "$SECURE"/node-*/pid)
RESULTS="$DIR/results"
mkdir -p "$RESULTS"

# run_one ROUND MODE — one bench produce run on the MODE cluster; appends
# "MODE rps p50 p99 cpu records" to $RESULTS/runs.
run_one() {
    local round="$1" mode="$2" out before cpu rps
    local -a pids env
    out="$RESULTS/run-$round-$mode.json"
    if [[ "$mode" == plain ]]; then
        pids=("${PLAIN_PIDS[@]}")
        env=(env -u RAFTKA_CA -u RAFTKA_TOKEN -u RAFTKA_TOKEN_FILE "RAFTKA_BOOTSTRAP=$plain_bootstrap")
    else
        pids=("${SECURE_PIDS[@]}")
        env=(env -u RAFTKA_TOKEN "RAFTKA_BOOTSTRAP=$secure_bootstrap" "RAFTKA_CA=$CA"
            "RAFTKA_TOKEN_FILE=$DIR/bench-token")
    fi
    before="$(cpu_seconds "${pids[@]}")"
    info "round $round: bench produce on the $mode cluster ($RECORDS records)"
    timeout "$((MAX_SECONDS + 120))" "${env[@]}" "$RAFTKA_BIN" bench produce --topic "sec-$mode-$round" \
        --partitions 3 --replication-factor 3 --records "$RECORDS" --record-size "$SIZE" \
        --batch "$BATCH" --concurrency "$CONCURRENCY" --max-seconds "$MAX_SECONDS" --json \
        2>"$RESULTS/run-$round-$mode.err" >"$out" ||
        die "bench produce on the $mode cluster failed (see $out and ${out%.json}.err)"
    cpu="$(awk -v a="$(cpu_seconds "${pids[@]}")" -v b="$before" 'BEGIN { printf "%.2f", a - b }')"
    rps="$(json_num "$out" records_per_sec)"
    [[ "$(json_num "$out" verified)" == "$RECORDS" ]] || die "run $round/$mode did not verify all $RECORDS records"
    printf '%s %s %s %s %s %s\n' "$mode" "$rps" "$(json_num "$out" p50_ms)" \
        "$(json_num "$out" p99_ms)" "$cpu" "$(json_num "$out" records)" >>"$RESULTS/runs"
}

: >"$RESULTS/runs"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2 == 1)); then order=(plain secure); else order=(secure plain); fi
    for mode in "${order[@]}"; do
        run_one "$r" "$mode"
    done
done

heading "bench produce, $RECORDS records of $SIZE B, batch $BATCH, concurrency $CONCURRENCY, $ROUNDS round(s)"
summarize_ab_runs "$RESULTS/runs" plain secure
info "raw results in $RESULTS"

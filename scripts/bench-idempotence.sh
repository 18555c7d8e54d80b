#!/usr/bin/env bash
# What idempotent produce costs: `raftka bench produce --idempotence off` and `--idempotence on`
# back to back on one 3-node cluster, alternating for several rounds, each run on a fresh topic.
# Prints records/s, latency and server CPU per run, the medians, and the on/off ratios.
# See `scripts/bench-idempotence.sh --help` and docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/bench-idempotence.sh"
RECORDS=500000
ROUNDS=3
SIZE=100
BATCH=100
CONCURRENCY=16
MAX_SECONDS=300
BASE_PORT=26091
DIR="${TMPDIR:-/tmp}/raftka-bench-idempotence"
NODE_BIN=""
RAFTKA_BIN=""

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Starts a 3-node cluster (scripts/cluster.sh, ports BASE_PORT..BASE_PORT+2), then runs
'raftka bench produce' ROUNDS times with --idempotence off and ROUNDS times with on, alternating
which goes first in each round (off,on / on,off / ...), each on a new topic with 3 partitions
and 3 replicas. Every run verifies that each acknowledged record is at its offset. Server CPU is
the user+system time of the three node processes during the run (its verification read
included). Stops the cluster at the end.

Options:
  --records N        records per run (default $RECORDS)
  --rounds R         rounds; each runs both modes once (default $ROUNDS)
  --record-size B    value size (default $SIZE)
  --batch N          records per request (default $BATCH)
  --concurrency C    requests in flight = idempotent producers (default $CONCURRENCY)
  --max-seconds S    bound of each run (default $MAX_SECONDS)
  --base-port P      HTTP port of node 1 (default $BASE_PORT)
  --dir DIR          cluster directory (default $DIR; cleaned at start)
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

CLUSTER_STARTED=0
cleanup() {
    if ((CLUSTER_STARTED)); then
        "$RAFTKA_ROOT/scripts/cluster.sh" stop --dir "$DIR" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

bin_arg=()
if [[ -n "$NODE_BIN" ]]; then bin_arg=(--bin "$NODE_BIN"); fi
info "starting 3 nodes on 127.0.0.1:$BASE_PORT-$((BASE_PORT + 2)) in $DIR"
CLUSTER_STARTED=1
"$RAFTKA_ROOT/scripts/cluster.sh" start -n 3 --clean --dir "$DIR" --base-port "$BASE_PORT" \
    "${bin_arg[@]}" >/dev/null
export RAFTKA_BOOTSTRAP="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))"
mapfile -t NODES < <(cat "$DIR"/node-*/pid)
RESULTS="$DIR/results"
mkdir -p "$RESULTS"

# run_one ROUND MODE — one bench produce run; appends "MODE rps p50 p99 cpu" to $RESULTS/runs.
run_one() {
    local round="$1" mode="$2" out before cpu rps
    out="$RESULTS/run-$round-$mode.json"
    before="$(cpu_seconds "${NODES[@]}")"
    info "round $round: bench produce --idempotence $mode ($RECORDS records)"
    timeout "$((MAX_SECONDS + 120))" "$RAFTKA_BIN" bench produce --topic "idem-$mode-$round" \
        --partitions 3 --replication-factor 3 --records "$RECORDS" --record-size "$SIZE" \
        --batch "$BATCH" --concurrency "$CONCURRENCY" --idempotence "$mode" \
        --max-seconds "$MAX_SECONDS" --json 2>/dev/null >"$out" ||
        die "bench produce --idempotence $mode failed (see $out)"
    cpu="$(awk -v a="$(cpu_seconds "${NODES[@]}")" -v b="$before" 'BEGIN { printf "%.2f", a - b }')"
    rps="$(json_num "$out" records_per_sec)"
    [[ "$(json_num "$out" verified)" == "$RECORDS" ]] || die "run $round/$mode did not verify all $RECORDS records"
    printf '%s %s %s %s %s %s\n' "$mode" "$rps" "$(json_num "$out" p50_ms)" \
        "$(json_num "$out" p99_ms)" "$cpu" "$(json_num "$out" records)" >>"$RESULTS/runs"
}

: >"$RESULTS/runs"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2 == 1)); then order=(off on); else order=(on off); fi
    for mode in "${order[@]}"; do
        run_one "$r" "$mode"
    done
done

heading "bench produce, $RECORDS records of $SIZE B, batch $BATCH, concurrency $CONCURRENCY, $ROUNDS round(s)"
summarize_ab_runs "$RESULTS/runs" off on
info "raw results in $RESULTS"

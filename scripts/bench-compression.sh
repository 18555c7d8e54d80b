#!/usr/bin/env bash
# What body compression costs and saves: `raftka bench produce --compression none|gzip|zstd`
# against one 3-node cluster, alternating codecs for several rounds. Prints per run records/s,
# latency, loopback bytes per record (all traffic: client requests and replies, the verifying
# fetches, and the uncompressed replication between the nodes) and server CPU per record.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/bench-compression.sh"
RECORDS=300000
ROUNDS=2
SIZE=100
BATCH=100
CONCURRENCY=16
MAX_SECONDS=120
BASE_PORT=26501
DIR="${TMPDIR:-/tmp}/raftka-bench-compression"
NODE_BIN=""
RAFTKA_BIN=""

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Starts a 3-node cluster (scripts/cluster.sh, ports BASE_PORT..+2) and runs 'raftka bench
produce' once per codec (none, gzip, zstd) in each round, on a new 3-partition RF-3 topic each
time, every record verified. Loopback bytes come from /proc/net/dev (lo), so keep other local
traffic away while it runs. The benchmark's values are a counter padded with 'x', which
compresses far better than real data: read the byte savings as an upper bound.

Options:
  --records N        records per run (default $RECORDS)
  --rounds R         rounds of the three codecs (default $ROUNDS)
  --record-size B    value size (default $SIZE)
  --batch N          records per request (default $BATCH)
  --concurrency C    requests in flight (default $CONCURRENCY)
  --max-seconds S    bound of each run (default $MAX_SECONDS)
  --base-port P      port of node 1 (default $BASE_PORT)
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
((RECORDS > 0)) || die "--records must be at least 1"
RAFTKA_BIN="${RAFTKA_BIN:-${CARGO_TARGET_DIR:-$RAFTKA_ROOT/target}/debug/raftka}"
[[ -x "$RAFTKA_BIN" ]] || die "raftka CLI $RAFTKA_BIN is missing (cargo build -p raftka-client --bin raftka)"

CLUSTER="$RAFTKA_ROOT/scripts/cluster.sh"
cleanup() { "$CLUSTER" stop --dir "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT

start_args=(start --dir "$DIR" -n 3 --base-port "$BASE_PORT" --clean)
[[ -n "$NODE_BIN" ]] && start_args+=(--bin "$NODE_BIN")
info "starting 3 nodes in $DIR"
"$CLUSTER" "${start_args[@]}" >/dev/null
load_cluster_env "$DIR"
bootstrap="$(node_addr 1),$(node_addr 2),$(node_addr 3)"
mapfile -t PIDS < <(cat "$DIR"/node-*/pid)
lo_bytes() { awk '/^ *lo:/ { print $2 }' /proc/net/dev; }

heading "bench produce, $RECORDS records of $SIZE B, batch $BATCH, concurrency $CONCURRENCY"
printf '%-6s %-6s %10s %8s %8s %14s %14s\n' round codec records/s "p50 ms" "p99 ms" "lo B/record" "CPU us/record"
for ((r = 1; r <= ROUNDS; r++)); do
    for codec in none gzip zstd; do
        out="$DIR/run-$r-$codec.json"
        b0="$(lo_bytes)"
        c0="$(cpu_seconds "${PIDS[@]}")"
        RAFTKA_BOOTSTRAP="$bootstrap" timeout "$((MAX_SECONDS + 120))" "$RAFTKA_BIN" bench produce \
            --compression "$codec" --topic "comp-$codec-$r" --partitions 3 --replication-factor 3 \
            --records "$RECORDS" --record-size "$SIZE" --batch "$BATCH" \
            --concurrency "$CONCURRENCY" --max-seconds "$MAX_SECONDS" --json \
            >"$out" 2>"${out%.json}.err" || die "bench produce with $codec failed (see $out)"
        b1="$(lo_bytes)"
        c1="$(cpu_seconds "${PIDS[@]}")"
        [[ "$(json_num "$out" verified)" == "$RECORDS" ]] || die "run $r/$codec did not verify all records"
        printf '%-6s %-6s %10.0f %8s %8s %14d %14s\n' "$r" "$codec" "$(json_num "$out" records_per_sec)" \
            "$(json_num "$out" p50_ms)" "$(json_num "$out" p99_ms)" "$(((b1 - b0) / RECORDS))" \
            "$(awk -v a="$c1" -v b="$c0" -v n="$RECORDS" 'BEGIN { printf "%.2f", (a - b) * 1e6 / n }')"
    done
done

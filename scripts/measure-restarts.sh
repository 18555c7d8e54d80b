#!/usr/bin/env bash
# The produce stall of planned restarts, with and without leadership handover, in one run on
# one machine: for each mode (handover on: the default; off: RAFTKA_SHUTDOWN_HANDOVER_MS=0 and no
# preferred-leader rebalance, the stop path before handover existed), a fresh cluster
# (scripts/cluster.sh), a 6-partition RF-3 topic, and a produce loop (one record per request,
# one request at a time, through a node that is not restarted) that records each request's send
# and acknowledgement times. Measured:
#
#   graceful stop   SIGTERM of the node leading the most partitions (then started again):
#                   the longest pause between two acknowledgements around it;
#   rolling restart `scripts/cluster.sh rolling-restart` of every node (leaderships first
#                   returned to their preferred replicas, so each node leads some): the longest
#                   pause and the number of failed requests.
#
#   scripts/measure-restarts.sh [--nodes N] [--runs R] [--node-bin PATH] [--base-port P]
#
# Every loop is bounded in count and time.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nodes=5
runs=3
node_bin=""
base_port=27091
while (($#)); do
    case "$1" in
        --nodes) nodes="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --node-bin) node_bin="$2"; shift 2 ;;
        --base-port) base_port="$2"; shift 2 ;;
        *) die "usage: $0 [--nodes N] [--runs R] [--node-bin PATH] [--base-port P]" ;;
    esac
done
need_cmd curl
need_cmd python3
cluster="$RAFTKA_ROOT/scripts/cluster.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/raftka-restarts.XXXXXX")"
dir="$work/cluster"
trap '"$cluster" stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# load LOG SECONDS — produce one record per request, one request at a time, for at most SECONDS
# (and 20,000 requests), through node 1 and, when a node refuses the connection (nothing sent),
# through the next; each line: send_ns ack_ns http_code.
load() {
    local log="$1" end=$(($(now_s) + $2)) i started code node=0 tries
    for ((i = 0; i < 20000; i++)); do
        (($(now_s) < end)) || break
        started="$(date +%s%N)"
        for ((tries = 0; tries < nodes * 20; tries++)); do
            code="$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 15 -XPOST \
                "http://127.0.0.1:$((base_port + node))/v1/topics/t/records" \
                -H 'content-type: application/json' \
                -d "{\"records\":[{\"key\":\"k$((i % 12))\",\"value\":$i}]}" || true)"
            [[ "$code" == 000 ]] || break
            node=$(((node + 1) % nodes))
            ((tries % nodes == nodes - 1)) && sleep 0.05
        done
        echo "$started $(date +%s%N) $code"
    done >"$log"
}

# pause LOG — the longest time between two acknowledgements (ms) and the failed requests.
pause() {
    awk '$3 == 200 { if (prev) { d = $2 - prev; if (d > max) max = d } prev = $2 }
         $3 != 200 { failed++ }
         END { printf "%d ms, %d failed of %d", max / 1000000, failed, NR }' "$1"
}

# leader_heavy — the node (not 1, which the load goes through) leading the most partitions.
leader_heavy() {
    curl -s "http://127.0.0.1:$base_port/v1/topics/t" | python3 -c '
import json, sys, collections
d = json.load(sys.stdin)
c = collections.Counter(p["leader"] for p in d["partitions"] if p["leader"] not in (None, 1))
print(c.most_common(1)[0][0] if c else 2)'
}

for mode in on off; do
    if [[ "$mode" == off ]]; then
        export RAFTKA_SHUTDOWN_HANDOVER_MS=0 RAFTKA_LEADER_REBALANCE_INTERVAL_MS=0
    else
        unset RAFTKA_SHUTDOWN_HANDOVER_MS RAFTKA_LEADER_REBALANCE_INTERVAL_MS
    fi
    args=(start -n "$nodes" --base-port "$base_port" --dir "$dir" --clean)
    [[ -n "$node_bin" ]] && args+=(--bin "$node_bin")
    "$cluster" "${args[@]}" >/dev/null 2>&1 || die "cluster start failed"
    curl -sf -XPOST "http://127.0.0.1:$base_port/v1/topics" -H 'content-type: application/json' \
        -d '{"name":"t","partitions":6,"replication_factor":3}' >/dev/null
    for run in $(seq 1 "$runs"); do
        victim="$(leader_heavy)"
        load "$work/stop.log" 12 &
        loop=$!
        sleep 3
        "$cluster" stop "$victim" --dir "$dir" >/dev/null 2>&1
        sleep 5
        "$cluster" restart "$victim" --dir "$dir" >/dev/null 2>&1
        wait "$loop"
        echo "handover $mode, run $run: graceful stop of node $victim: longest pause $(pause "$work/stop.log")"
        # Let leaderships settle (and, with handover on, return) before the next run.
        [[ "$mode" == on ]] && curl -s -XPOST "http://127.0.0.1:$base_port/v1/cluster/rebalance-leaders" >/dev/null
        sleep 2
    done
    curl -s -XPOST "http://127.0.0.1:$base_port/v1/cluster/rebalance-leaders" >/dev/null
    load "$work/rolling.log" 120 &
    loop=$!
    sleep 2
    started="$(now_s)"
    "$cluster" rolling-restart --dir "$dir" >/dev/null 2>&1 ||
        warn "rolling restart reported a problem"
    took=$(($(now_s) - started))
    kill "$loop" 2>/dev/null || true
    wait "$loop" 2>/dev/null || true
    echo "handover $mode: rolling restart of $nodes nodes in ${took} s: longest pause $(pause "$work/rolling.log")"
    "$cluster" stop --dir "$dir" >/dev/null 2>&1
done

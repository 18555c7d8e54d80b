#!/usr/bin/env bash
# The produce stall of membership changes, in one run on one machine: for each run, a fresh
# cluster (scripts/cluster.sh, release binaries by default), a 6-partition RF-3 topic filled
# with --prefill records (raftka bench produce), then a steady produce load (one record per
# request, one request at a time, round-robin over the partitions, at most --rate requests/s,
# through node 1 over one keep-alive connection; it moves to the next node only when a
# connection fails) during three phases:
#
#   baseline      no membership change, for --baseline-seconds;
#   reassign      one partition moved (POST /v1/cluster/reassignments): the partition led by
#                 the node that leads the most, moved to the nodes that hold none of its
#                 replicas, topped up with its followers (with 5 nodes: two new nodes and one
#                 follower), a new node first, so the leader itself leaves the group (the
#                 hardest single move); until GET /v1/cluster/reassignments is empty;
#   decommission  the node holding the most replicas (never node 1, which the load goes
#                 through) drained and removed (POST /v1/cluster/nodes/{id}/decommission),
#                 until GET /v1/cluster reports it removed.
#
# Each phase loads for 3 s before and after the change. Measured per phase: the longest time
# between two consecutive acknowledgements (the stall), the p50/p99/max latency of the requests
# sent while the change ran (the whole phase for the baseline), and the failed requests.
#
#   scripts/measure-reassign.sh [--nodes N] [--runs R] [--prefill RECORDS] [--rate R]
#       [--baseline-seconds S] [--timeout S] [--node-bin PATH] [--raftka-bin PATH]
#       [--base-port P] [--debug]
#
# Every loop is bounded in count and time; only the nodes of its own cluster directory are
# ever signalled (through scripts/cluster.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nodes=5
runs=2
prefill=300000
rate=200
baseline_s=15
timeout_s=180
profile=release
node_bin=""
raftka_bin=""
base_port=28091
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}
while (($#)); do
    case "$1" in
        --nodes) nodes="${2:?}"; shift 2 ;;
        --runs) runs="${2:?}"; shift 2 ;;
        --prefill) prefill="${2:?}"; shift 2 ;;
        --rate) rate="${2:?}"; shift 2 ;;
        --baseline-seconds) baseline_s="${2:?}"; shift 2 ;;
        --timeout) timeout_s="${2:?}"; shift 2 ;;
        --node-bin) node_bin="${2:?}"; shift 2 ;;
        --raftka-bin) raftka_bin="${2:?}"; shift 2 ;;
        --base-port) base_port="${2:?}"; shift 2 ;;
        --debug) profile=debug; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
for v in nodes runs prefill rate baseline_s timeout_s base_port; do
    is_uint "${!v}" || die "--${v//_/-} must be a non-negative integer"
done
((nodes >= 4 && nodes <= 9)) || die "--nodes must be 4..9 (a decommission leaves nodes-1 >= 3)"
((runs >= 1 && runs <= 10)) || die "--runs must be 1..10"
((rate >= 1 && rate <= 2000)) || die "--rate must be 1..2000"
need_cmd curl
need_cmd python3

target="${CARGO_TARGET_DIR:-$RAFTKA_ROOT/target}/$profile"
node_bin="${node_bin:-$target/raftka-node}"
raftka_bin="${raftka_bin:-$target/raftka}"
build_cmd="cargo build -p raftka-node -p raftka-client"
[[ "$profile" == release ]] && build_cmd="cargo build --release -p raftka-node -p raftka-client"
for b in "$node_bin" "$raftka_bin"; do
    [[ -x "$b" ]] || die "$b is missing; build it with: $build_cmd (or pass --node-bin/--raftka-bin)"
done

cluster="$RAFTKA_ROOT/scripts/cluster.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/raftka-reassign.XXXXXX")"
dir="$work/cluster"
trap '"$cluster" stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
api="http://127.0.0.1:$base_port"
topic=t
partitions=6

# A produce loop: one record per request, one request at a time, round-robin over the
# partitions, at most RATE requests/s, until the STOP file exists, MAX_S seconds pass or
# 1,000,000 requests were sent. One line per request: send_ns ack_ns status (000: no answer).
# shellcheck disable=SC2016 # Python source, not shell.
LOAD_PY='
import http.client, os, socket, sys, time
log, stop, rate, max_s, parts, topic = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
nodes = sys.argv[7].split(",")
node, conn = 0, None
gap = 1e9 / rate
end = time.time_ns() + max_s * 10**9
nxt = time.time_ns()
with open(log, "w") as out:
    for i in range(1_000_000):
        now = time.time_ns()
        if now >= end or os.path.exists(stop):
            break
        if nxt > now:
            time.sleep((nxt - now) / 1e9)
        nxt += gap
        body = "{\"records\":[{\"partition\":%d,\"value\":%d}]}" % (i % parts, i)
        sent = time.time_ns()
        status = "000"
        try:
            if conn is None:
                host, port = nodes[node].split(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=15)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request("POST", "/v1/topics/%s/records" % topic, body, {"content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            status = "%03d" % r.status
        except Exception:
            if conn is not None:
                conn.close()
            conn = None
            node = (node + 1) % len(nodes)
        out.write("%d %d %s\n" % (sent, time.time_ns(), status))
'

# Stats of a load log: the longest gap between consecutive acknowledgements over the whole log,
# and latencies of the requests sent in [FROM_NS, TO_NS] (0 0: every request).
# shellcheck disable=SC2016 # Python source, not shell.
STATS_PY='
import sys
log, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [l.split() for l in open(log) if l.strip()]
rows = [(int(s), int(a), c) for s, a, c in rows]
acks = sorted(a for s, a, c in rows if c == "200")
gap = max((b - a for a, b in zip(acks, acks[1:])), default=0) / 1e6
win = [r for r in rows if lo == 0 or lo <= r[0] <= hi]
lat = sorted((a - s) / 1e6 for s, a, c in win if c == "200")
def q(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0
failed = sum(1 for r in rows if r[2] != "200")
print("%d %d %.0f %.1f %.1f %.0f" % (len(rows), failed, gap, q(0.50), q(0.99), lat[-1] if lat else 0))
'

now_ns() { date +%s%N; }

# cluster_json — GET /v1/cluster through node 1.
cluster_json() { curl -sf --max-time 5 "$api/v1/cluster"; }

# start_load LOG MAX_S — starts the produce loop in the background; sets LOAD_PID.
start_load() {
    rm -f "$work/stop"
    local addrs="" i
    for ((i = 0; i < nodes; i++)); do
        addrs+="${addrs:+,}127.0.0.1:$((base_port + i))"
    done
    python3 -c "$LOAD_PY" "$1" "$work/stop" "$rate" "$2" "$partitions" "$topic" "$addrs" &
    LOAD_PID=$!
}

# stop_load — asks the loop to stop and waits for it.
stop_load() {
    touch "$work/stop"
    wait "$LOAD_PID" || warn "the produce loop exited with an error"
}

# wait_until SECONDS CMD... — runs CMD every 200 ms until it succeeds or SECONDS pass.
wait_until() {
    local end=$(($(now_s) + $1))
    shift
    while (($(now_s) < end)); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

no_moves() {
    curl -sf --max-time 5 "$api/v1/cluster/reassignments" |
        python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin)["reassignments"] else 1)'
}

# node_removed ID — true once GET /v1/cluster lists node ID as removed (or no longer lists it).
node_removed() {
    cluster_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = [n.get("state") for n in d["nodes"] if n["id"] == int(sys.argv[1])]
sys.exit(0 if not s or s[0] == "removed" else 1)' "$1"
}

# plan_move — prints "PARTITION REPLICAS_JSON": the partition led by the busiest leader, moved
# to the nodes outside its replicas plus one follower (new first: the leader leaves).
plan_move() {
    curl -sf --max-time 5 "$api/v1/topics/$topic" | python3 -c '
import collections, json, sys
d, n, rf = json.load(sys.stdin), int(sys.argv[1]), 3
parts = [p for p in d["partitions"] if p.get("leader")]
busiest = collections.Counter(p["leader"] for p in parts).most_common(1)[0][0]
p = next(p for p in parts if p["leader"] == busiest)
outside = [i for i in range(1, n + 1) if i not in p["replicas"]]
followers = [i for i in p["replicas"] if i != p["leader"]]
to = (outside + followers)[:rf]
print(p["partition"], json.dumps(to))' "$nodes"
}

# decommission_victim — the node (not 1) with the most replicas.
decommission_victim() {
    curl -sf --max-time 5 "$api/v1/topics/$topic" | python3 -c '
import collections, json, sys
d = json.load(sys.stdin)
c = collections.Counter(r for p in d["partitions"] for r in p["replicas"] if r != 1)
print(c.most_common(1)[0][0])'
}

# phase NAME LOG FROM_NS TO_NS TOOK — prints one result row and keeps it for the summary.
ROWS=()
phase() {
    local stats row
    stats="$(python3 -c "$STATS_PY" "$2" "$3" "$4")"
    read -r n failed gap p50 p99 max <<<"$stats"
    row="$(printf '| %s | %s | %s | %s ms | %s ms | %s ms | %s ms | %s of %s |' \
        "$run" "$1" "$5" "$gap" "$p50" "$p99" "$max" "$failed" "$n")"
    ROWS+=("$row")
    echo "$row"
}

info "binaries: $node_bin, $raftka_bin; $nodes nodes, $runs run(s), prefill $prefill records, load $rate requests/s"
for run in $(seq 1 "$runs"); do
    "$cluster" start -n "$nodes" --base-port "$base_port" --dir "$dir" --clean --bin "$node_bin" \
        >/dev/null 2>&1 || die "cluster start failed (see $dir/node-*/node.log)"
    info "run $run: prefilling $prefill records"
    "$raftka_bin" --bootstrap "127.0.0.1:$base_port" bench produce --topic "$topic" \
        --partitions "$partitions" --replication-factor 3 --records "$prefill" --batch 100 \
        --concurrency 8 --max-seconds 300 --no-verify >/dev/null 2>&1 ||
        die "prefill failed"
    curl -s -XPOST --max-time 10 "$api/v1/cluster/rebalance-leaders" >/dev/null || true
    sleep 2

    # (c) baseline
    start_load "$work/base.log" $((baseline_s + 60))
    sleep "$baseline_s"
    stop_load
    phase baseline "$work/base.log" 0 0 "-"

    # (a) one partition reassignment
    read -r part to < <(plan_move)
    start_load "$work/move.log" $((timeout_s + 60))
    sleep 3
    t0="$(now_ns)"
    code="$(curl -s -o "$work/move.json" -w '%{http_code}' --max-time 10 -XPOST \
        "$api/v1/cluster/reassignments" -H 'content-type: application/json' \
        -d "{\"topic\":\"$topic\",\"partition\":$part,\"replicas\":$to}")"
    [[ "$code" == 202 ]] || { stop_load; die "reassignment answered $code: $(cat "$work/move.json")"; }
    wait_until "$timeout_s" no_moves || warn "the move did not finish within $timeout_s s"
    t1="$(now_ns)"
    sleep 3
    stop_load
    phase "reassign $topic/$part to $to" "$work/move.log" "$t0" "$t1" "$(((t1 - t0) / 1000000)) ms"

    # (b) a decommission
    victim="$(decommission_victim)"
    start_load "$work/drain.log" $((timeout_s + 60))
    sleep 3
    t0="$(now_ns)"
    code="$(curl -s -o "$work/drain.json" -w '%{http_code}' --max-time 10 -XPOST \
        "$api/v1/cluster/nodes/$victim/decommission")"
    [[ "$code" == 202 ]] || { stop_load; die "decommission answered $code: $(cat "$work/drain.json")"; }
    wait_until "$timeout_s" node_removed "$victim" || warn "node $victim was not removed within $timeout_s s"
    t1="$(now_ns)"
    sleep 3
    stop_load
    moves="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("moves", [])))' "$work/drain.json")"
    phase "decommission node $victim ($moves moves)" "$work/drain.log" "$t0" "$t1" "$(((t1 - t0) / 1000000)) ms"
    "$cluster" stop --dir "$dir" >/dev/null 2>&1 || true
done

heading "Produce stall of membership changes ($nodes nodes, $partitions partitions RF 3, $prefill records prefilled, $rate requests/s, ${profile} build)"
echo "| run | change | took | longest gap between acks | p50 | p99 | max | failed |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"

#!/usr/bin/env bash
# What idle partitions cost: a 3-node cluster holding P partitions (RF 3) and no traffic at all.
# Prints each node's CPU (% of one core, from /proc/PID/stat over the window) and resident
# memory, after every partition has a leader and a warm-up. See --help and docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/measure-idle.sh"
PARTITIONS=1000
PER_TOPIC=100
SECONDS_WINDOW=30
WARMUP=15
BASE_PORT=26291
DIR="${TMPDIR:-/tmp}/raftka-measure-idle"
NODE_BIN=""
READY_TIMEOUT=600
USE=0
SETTLE_EACH=0

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Starts a 3-node cluster with scripts/cluster.sh (ports BASE_PORT..+2, data in DIR), creates
PARTITIONS partitions with replication factor 3 (topics idle-N of PER_TOPIC partitions each),
waits until every partition has a leader, lets it settle for WARMUP seconds, then measures each
node's CPU over WINDOW seconds with no client traffic (nothing but this script's two GETs per
node: /v1/cluster before and after). Prints one line per node and stops the cluster.

Options:
  --partitions P     partitions in all (default $PARTITIONS)
  --per-topic N      partitions per topic (default $PER_TOPIC; at most 1024)
  --seconds S        measurement window (default $SECONDS_WINDOW)
  --warmup S         settle time after the last leader is elected (default $WARMUP)
  --base-port P      port of node 1 (default $BASE_PORT)
  --dir DIR          cluster directory (default $DIR; cleaned at start)
  --node-bin PATH    raftka-node binary (default: cluster.sh's, target/debug/raftka-node;
                     measure release builds)
  --ready-timeout S  bound on waiting for the leaders (default $READY_TIMEOUT)
  --settle-each      after each topic, wait (bounded by --ready-timeout) until all replicas
                     created so far are quiesced before creating the next (the way to reach
                     thousands of partitions on a small machine: creation bursts are costly)
  --use              afterwards, produce one record to every partition (one request per
                     topic, through node 1) and read each back through node 2, then report
                     how long that took and the idle cost again
  -h, --help         this help
EOF
}

while (($# > 0)); do
    case "$1" in
        --partitions) PARTITIONS="${2:?}"; shift 2 ;;
        --per-topic) PER_TOPIC="${2:?}"; shift 2 ;;
        --seconds) SECONDS_WINDOW="${2:?}"; shift 2 ;;
        --warmup) WARMUP="${2:?}"; shift 2 ;;
        --base-port) BASE_PORT="${2:?}"; shift 2 ;;
        --dir) DIR="${2:?}"; shift 2 ;;
        --node-bin) NODE_BIN="${2:?}"; shift 2 ;;
        --ready-timeout) READY_TIMEOUT="${2:?}"; shift 2 ;;
        --use) USE=1; shift ;;
        --settle-each) SETTLE_EACH=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see $PROG --help)" ;;
    esac
done
for v in "$PARTITIONS" "$PER_TOPIC" "$SECONDS_WINDOW" "$WARMUP" "$BASE_PORT" "$READY_TIMEOUT"; do
    is_uint "$v" || die "numeric options take whole numbers, got '$v'"
done
((PER_TOPIC >= 1 && PER_TOPIC <= 1024)) || die "--per-topic must be 1..=1024"
((PARTITIONS >= 1)) || die "--partitions must be at least 1"
need_cmd curl "apt-get install -y curl"
need_cmd python3 "apt-get install -y python3"

CLUSTER="$RAFTKA_ROOT/scripts/cluster.sh"
cleanup() { "$CLUSTER" stop --dir "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT

start_args=(start --dir "$DIR" -n 3 --base-port "$BASE_PORT" --clean)
[[ -n "$NODE_BIN" ]] && start_args+=(--bin "$NODE_BIN")
info "starting 3 nodes in $DIR"
"$CLUSTER" "${start_args[@]}" >/dev/null
load_cluster_env "$DIR"
base="$(node_url 1)"

info "creating $PARTITIONS partitions (RF 3, $PER_TOPIC per topic)"
left=$PARTITIONS
n=0
while ((left > 0)); do
    this=$((left < PER_TOPIC ? left : PER_TOPIC))
    n=$((n + 1))
    # Bounded retries: a busy metadata leader may answer a retryable error; a retry after a
    # create whose answer was lost finds the topic there (409).
    for attempt in 1 2 3 4 5; do
        body="$(curl -s --max-time 120 -w '\n%{http_code}' -XPOST "$base/v1/topics" \
            -H 'content-type: application/json' \
            -d "{\"name\":\"idle-$n\",\"partitions\":$this,\"replication_factor\":3}")" || true
        code="${body##*$'\n'}"
        [[ "$code" == 201 || "$code" == 200 ]] && break
        [[ "$code" == 409 && $attempt -gt 1 ]] && break
        ((attempt < 5)) || die "creating topic idle-$n answered $code: ${body:0:300}"
        info "creating topic idle-$n answered $code (${body:0:200}); retrying"
        sleep 3
    done
    left=$((left - this))
    if ((SETTLE_EACH)); then
        want=$((3 * (PARTITIONS - left)))
        settle_deadline=$(($(now_s) + READY_TIMEOUT))
        while :; do
            quiet=0
            for i in 1 2 3; do
                q="$(curl -s --max-time 30 "$(node_url "$i")/metrics" |
                    awk '/^raftka_partition_groups_quiesced / {print $2}' || true)"
                quiet=$((quiet + ${q:-0}))
            done
            ((quiet >= want)) && break
            (($(now_s) < settle_deadline)) || die "only $quiet of $want replicas quiet after ${READY_TIMEOUT} s"
            sleep 2
        done
        info "$((PARTITIONS - left)) partitions created, all $want replicas quiet"
    fi
done

# Bounded by READY_TIMEOUT: every partition led, none under-replicated.
info "waiting for every partition to have a leader"
deadline=$(($(now_s) + READY_TIMEOUT))
t_create="$(now_s)"
while :; do
    state="$(curl -s --max-time 30 "$base/v1/cluster" | python3 -c '
import json, sys
d = json.load(sys.stdin)
parts = d.get("partitions", [])
print(sum(1 for p in parts if p.get("leader") is None) if parts else -1,
      d.get("under_replicated_partitions", -1))' 2>/dev/null || echo "? ?")"
    read -r leaderless under <<<"$state"
    [[ "$leaderless" == 0 && "$under" == 0 ]] && break
    (($(now_s) < deadline)) || die "not settled after ${READY_TIMEOUT} s: leaderless $leaderless, under-replicated $under"
    sleep 2
done
info "settled $(($(now_s) - t_create)) s after creation; warming up ${WARMUP} s"
sleep "$WARMUP"

pids=()
for i in 1 2 3; do pids+=("$(node_pid "$DIR" "$i")"); done

# Prints each node's CPU over SECONDS_WINDOW, its RSS and its quiesced partition replicas.
measure() {
    local before=() i after rss_kb pct total=0 t0 t1 quiet
    for p in "${pids[@]}"; do before+=("$(cpu_seconds "$p")"); done
    t0="$(date +%s%N)"
    sleep "$SECONDS_WINDOW"
    t1="$(date +%s%N)"
    heading "idle cost of $PARTITIONS partitions (RF 3, 3 nodes), over $SECONDS_WINDOW s$1"
    printf '%-6s %-8s %12s %10s %10s\n' node pid "cpu % core" "rss MiB" "quiesced"
    for i in 0 1 2; do
        after="$(cpu_seconds "${pids[$i]}")"
        rss_kb="$(awk '/^VmRSS:/ {print $2}' "/proc/${pids[$i]}/status")"
        pct="$(awk -v a="$after" -v b="${before[$i]}" -v t0="$t0" -v t1="$t1" \
            'BEGIN { printf "%.1f", 100 * (a - b) / ((t1 - t0) / 1e9) }')"
        total="$(awk -v t="$total" -v p="$pct" 'BEGIN { printf "%.1f", t + p }')"
        quiet="$(curl -s --max-time 30 "$(node_url $((i + 1)))/metrics" |
            awk '/^raftka_partition_groups_quiesced / {print $2}' || true)"
        printf '%-6s %-8s %12s %10s %10s\n' "$((i + 1))" "${pids[$i]}" "$pct" "$((rss_kb / 1024))" "${quiet:-?}"
    done
    printf 'total: %s%% of a core over 3 nodes (%s%% per node)\n' "$total" \
        "$(awk -v t="$total" 'BEGIN { printf "%.1f", t / 3 }')"
}

measure ""
((USE)) || exit 0

info "using every partition: one record each, then reading each back"
t_use="$(date +%s%N)"
python3 - "$(node_url 1)" "$(node_url 2)" "$PARTITIONS" "$PER_TOPIC" <<'PY'
import http.client, json, sys, time
from urllib.parse import urlparse
w, r = (urlparse(u) for u in sys.argv[1:3])
total, per_topic = int(sys.argv[3]), int(sys.argv[4])
writer = http.client.HTTPConnection(w.hostname, w.port, timeout=60)
reader = http.client.HTTPConnection(r.hostname, r.port, timeout=60)
def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"null")
left, n, produced, read = total, 0, 0, 0
while left > 0:
    this = min(left, per_topic); n += 1; left -= this
    topic = f"idle-{n}"
    recs = [{"partition": p, "value": f"{topic}/{p}"} for p in range(this)]
    for attempt in range(20):
        s, b = call(writer, "POST", f"/v1/topics/{topic}/records", {"records": recs})
        if s == 200:
            break
        time.sleep(0.5)
    else:
        sys.exit(f"produce to {topic} answered {s}: {b}")
    produced += len(b["offsets"])
    for p in range(this):
        s, b = call(reader, "GET", f"/v1/topics/{topic}/partitions/{p}/records?offset=0")
        vals = [x["value"] for x in b.get("records", [])] if s == 200 else []
        if vals != [f"{topic}/{p}"]:
            sys.exit(f"{topic}/{p}: read back {s} {b}")
        read += 1
print(f"produced {produced} records (one per partition) and read every one back")
PY
t_used="$(date +%s%N)"
printf 'used all %s partitions in %s s\n' "$PARTITIONS" \
    "$(awk -v a="$t_use" -v b="$t_used" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')"
info "idle again: waiting ${WARMUP} s"
sleep "$WARMUP"
measure " after use"

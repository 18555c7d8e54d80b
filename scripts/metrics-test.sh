#!/usr/bin/env bash
# GET /metrics against a real Prometheus: a 3-node cluster (scripts/cluster.sh, with the
# binaries of this checkout) scraped by Debian's `prometheus` on its own loopback port, with
# its own config and a temp storage dir (never the system service). Checks:
#
#   1. after a consumer group commits behind the head (two partitions committed, one not),
#      `sum(kafka_consumergroup_lag_sum{consumergroup="…"})` through Prometheus's HTTP API
#      (/api/v1/query) is the exact lag, and each partition's current offset is exported once;
#   2. `promtool check metrics` finds no problem in any node's /metrics.
#
#   scripts/metrics-test.sh [--bin-dir DIR]   (default: $CARGO_TARGET_DIR/debug or target/debug)
#
# Traffic goes only to 127.0.0.1. Every wait is bounded. Only the PIDs started here are
# stopped (the cluster through cluster.sh, which checks its recorded PIDs; Prometheus by its
# PID), and the temp directory is removed, by the EXIT trap.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$RAFTKA_ROOT"
bin_dir="${CARGO_TARGET_DIR:-target}/debug"
while (($#)); do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        *) die "usage: $0 [--bin-dir DIR]" ;;
    esac
done
need_cmd prometheus "apt-get install prometheus"
need_cmd promtool "apt-get install prometheus"
need_cmd curl
[[ -x "$bin_dir/raftka-node" ]] || die "$bin_dir/raftka-node is missing: build it (cargo build -p raftka-node)"

work="$(mktemp -d "${TMPDIR:-/tmp}/raftka-metrics-test.XXXXXX")"
prom_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$prom_pid" ]] && kill -0 "$prom_pid" 2>/dev/null; then
        kill "$prom_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$prom_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$prom_pid" 2>/dev/null || true
    fi
    if [[ -f "$work/cluster/cluster.env" ]]; then
        scripts/cluster.sh stop --dir "$work/cluster" --timeout 20 >/dev/null 2>&1 || true
    fi
    if ((rc != 0)); then
        for f in "$work"/cluster/node-*/node.log "$work/prometheus.log"; do
            [[ -f "$f" ]] && print_log_tail "$f" 30
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# free_port_run N — print a port P such that P..P+N-1 are all free on 127.0.0.1.
free_port_run() {
    local n="$1" base k ok
    for _ in $(seq 1 50); do
        base=$((20000 + RANDOM % 20000))
        ok=1
        for ((k = 0; k < n; k++)); do
            if port_in_use "$((base + k))"; then ok=0; break; fi
        done
        if ((ok)); then printf '%s' "$base"; return 0; fi
    done
    die "no free port range found"
}

# ---- the cluster ------------------------------------------------------------------------------
base="$(free_port_run 3)"
info "starting a 3-node cluster on 127.0.0.1:$base-$((base + 2))"
scripts/cluster.sh start -n 3 --base-port "$base" --dir "$work/cluster" \
    --bin "$bin_dir/raftka-node" --clean >/dev/null
node() { printf 'http://127.0.0.1:%s' "$((base + $1 - 1))"; }

topic="metrics-test"
group="prom-test"
curl -fsS -o /dev/null -X POST "$(node 1)/v1/topics" -H 'content-type: application/json' \
    -d "{\"name\":\"$topic\",\"partitions\":3,\"replication_factor\":3}"
# Partition p gets counts[p] records, through different nodes.
counts=(40 25 10)
for p in 0 1 2; do
    records="$(seq 1 "${counts[$p]}" | sed "s/.*/{\"partition\":$p,\"value\":&}/" | paste -sd, -)"
    curl -fsS -o /dev/null -X POST "$(node $((p + 1)))/v1/topics/$topic/records" \
        -H 'content-type: application/json' -d "{\"records\":[$records]}"
done
# The group commits partitions 0 and 1 behind the head; partition 2 has no commit (lag -1,
# left out of the sum, as kafka_exporter does).
commits=(15 5)
for p in 0 1; do
    curl -fsS -o /dev/null -X POST "$(node 1)/v1/groups/$group/offsets/reset" \
        -H 'content-type: application/json' \
        -d "{\"topic\":\"$topic\",\"to\":\"offset\",\"offset\":${commits[$p]},\"partitions\":[$p]}"
done
want_lag=$(((counts[0] - commits[0]) + (counts[1] - commits[1])))
info "group $group lags $want_lag records behind the head"

# ---- Prometheus --------------------------------------------------------------------------------
pport="$(free_port_run 1)"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: raftka
    static_configs:
      - targets: ['127.0.0.1:$base', '127.0.0.1:$((base + 1))', '127.0.0.1:$((base + 2))']
YAML
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
info "prometheus (PID $prom_pid) on 127.0.0.1:$pport"
prom="http://127.0.0.1:$pport"
for _ in $(seq 1 60); do
    [[ "$(http_code "$prom/-/ready")" == 200 ]] && break
    kill -0 "$prom_pid" 2>/dev/null || die "prometheus exited"
    sleep 0.5
done
[[ "$(http_code "$prom/-/ready")" == 200 ]] || die "prometheus not ready in 30 s"

# query EXPR — the value of a one-element instant vector ("" when empty).
query() {
    local body
    body="$(curl -fsS --max-time 5 "$prom/api/v1/query" --data-urlencode "query=$1")" || return 0
    if [[ "$body" =~ \"value\":\[[0-9.]+,\"([^\"]+)\"\] ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# wait_for EXPR WANT — until Prometheus answers WANT for EXPR (at most 60 s).
wait_for() {
    local got=""
    for _ in $(seq 1 120); do
        got="$(query "$1")"
        [[ "$got" == "$2" ]] && { info "$1 = $got"; return 0; }
        sleep 0.5
    done
    die "$1: got '${got}', want $2"
}

wait_for 'sum(up{job="raftka"})' 3
wait_for "sum(kafka_consumergroup_lag_sum{consumergroup=\"$group\"})" "$want_lag"
wait_for "sum by (consumergroup, topic) (kafka_consumergroup_lag_sum{consumergroup=\"$group\",topic=\"$topic\"})" "$want_lag"
wait_for "count(kafka_topic_partition_current_offset{topic=\"$topic\"})" 3
wait_for "sum(kafka_topic_partition_current_offset{topic=\"$topic\"})" "$((counts[0] + counts[1] + counts[2]))"
wait_for "kafka_consumergroup_lag{consumergroup=\"$group\",topic=\"$topic\",partition=\"2\"}" -1
wait_for "count(kafka_brokers)" 1
wait_for "sum(kafka_brokers)" 3

# ---- every query of the Grafana dashboard parses and runs (python3 reads the JSON) ------------
# shellcheck disable=SC2016 # Python source: the $ are Grafana variables, not shell.
dashboard_queries_py='
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["panels"]:
    for t in p["targets"]:
        print(t["expr"].replace("$job", ".*").replace("$__rate_interval", "1m"))
'
if command -v python3 >/dev/null 2>&1; then
    n=0
    while IFS= read -r expr; do
        body="$(curl -sS --max-time 5 "$prom/api/v1/query" --data-urlencode "query=$expr")"
        [[ "$body" == *'"status":"success"'* ]] || die "dashboard query failed: $expr: $body"
        n=$((n + 1))
    done < <(python3 -c "$dashboard_queries_py" deploy/grafana/raftka.json)
    ((n > 0)) || die "no query found in deploy/grafana/raftka.json"
    info "the dashboard's $n queries run in Prometheus"
else
    info "python3 not found: the dashboard's queries are not checked"
fi

# ---- promtool on every node's /metrics (now that every family is there) ----------------------
for id in 1 2 3; do
    curl -fsS "$(node "$id")/metrics" >"$work/metrics-$id.txt"
    if ! out="$(promtool check metrics <"$work/metrics-$id.txt" 2>&1)"; then
        die "promtool check metrics, node $id: $out"
    fi
    [[ -z "$out" ]] || die "promtool check metrics, node $id: $out"
done
# The lint covered the kafka families and the histograms, not a partial scrape.
for fam in kafka_consumergroup_lag_sum kafka_consumergroup_lag kafka_brokers \
    kafka_topic_partition_current_offset raftka_http_request_duration_seconds_bucket \
    raftka_storage_fsync_duration_seconds_bucket raftka_rocksdb_live_sst_bytes; do
    grep -q "^${fam}[{ ]" "$work"/metrics-{1,2,3}.txt || die "no node exported $fam"
done
info "promtool check metrics: no problem on any node"

info "metrics test passed"

#!/usr/bin/env bash
# Measures leader failover on a running local cluster: the time from `kill -9` (or, with
# --graceful, SIGTERM) of a partition's leader to the first acknowledged produce on that
# partition (through a surviving node), and the longest pause between two acknowledged produces
# around it.
#
#   scripts/measure-failover.sh [--dir DIR] [--runs N] [--graceful]
#
# Each run creates a 1-partition RF-3 topic, produces one record per request in a loop through
# a surviving node, kills (or stops) the leader, restarts it afterwards, and prints the gaps in
# ms. A graceful stop hands leadership over (`--shutdown-handover-ms`), so its pause is short.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${RAFTKA_CLUSTER_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cluster}"
runs=3
signal=KILL
what="killed (SIGKILL)"
while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --graceful) signal=TERM; what="stopped (SIGTERM)"; shift ;;
    *) echo "usage: $0 [--dir DIR] [--runs N] [--graceful]" >&2; exit 2 ;;
  esac
done
cluster="$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
load_cluster_env "$dir"

json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

for run in $(seq 1 "$runs"); do
  topic="failover-$(date +%s)-$run"
  base="$(node_addr 1)"
  # Just after the previous run's restart, a node may not count the restarted one as live yet
  # and refuses a replication factor of 3 for a moment: retry, at most 60 times 0.5 s.
  code=""
  for _ in $(seq 1 60); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -XPOST "http://$base/v1/topics" \
      -H 'content-type: application/json' \
      -d "{\"name\":\"$topic\",\"partitions\":1,\"replication_factor\":3}" || true)"
    case "$code" in 200 | 201 | 409) break ;; esac
    sleep 0.5
  done
  case "$code" in 200 | 201 | 409) ;; *) die "creating topic $topic through $base answered $code" ;; esac
  leader=""
  for _ in $(seq 1 60); do
    leader="$(curl -sf --max-time 10 "http://$base/v1/topics/$topic" | json_get 'd["partitions"][0]["leader"]' || true)"
    [[ "$leader" =~ ^[0-9]+$ ]] && break
    sleep 0.5
  done
  [[ "$leader" =~ ^[0-9]+$ ]] || die "topic $topic has no leader after 30 s"
  via=""
  for i in $(seq 1 "$CL_NODES"); do
    [ "$i" != "$leader" ] && { via="$(node_addr "$i")"; break; }
  done
  log="$(mktemp)"
  # Bounded load loop: at most 4000 requests or 30 s.
  (
    end=$(( $(date +%s) + 30 ))
    for _ in $(seq 1 4000); do
      [ "$(date +%s)" -ge "$end" ] && break
      started="$(date +%s%N)"
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 -XPOST "http://$via/v1/topics/$topic/records" \
        -H 'content-type: application/json' -d '{"records":[{"value":1}]}' || true)"
      echo "$started $(date +%s%N) $code"
    done
  ) >"$log" &
  loop=$!
  sleep 1
  # Signal the recorded PID directly so t0 is the moment of the signal, not of a script start.
  pid="$(node_pid "$dir" "$leader")" || die "node $leader is not running"
  t0="$(date +%s%N)"
  kill "-$signal" "$pid"
  sleep 8
  kill "$loop" 2>/dev/null || true
  wait "$loop" 2>/dev/null || true
  # The first request sent after the kill that was acknowledged; its completion time counts.
  first_ok="$(awk -v t0="$t0" '$1 > t0 && $3 == 200 { print $2; exit }' "$log")"
  # The longest time between two consecutive acknowledgements, over the whole run.
  pause="$(awk '$3 == 200 { if (prev) { d = $2 - prev; if (d > max) max = d } prev = $2 } END { printf "%d", max / 1000000 }' "$log")"
  failed="$(awk '$3 != 200 { n++ } END { print n + 0 }' "$log")"
  if [ -n "$first_ok" ]; then
    echo "run $run: leader $leader $what; first acknowledged produce after $(( (first_ok - t0) / 1000000 )) ms; longest pause between acks ${pause} ms; failed requests $failed"
  else
    echo "run $run: leader $leader $what; no acknowledged produce within 8 s"
  fi
  rm -f "$log"
  "$cluster" restart "$leader" --dir "$dir" >/dev/null 2>&1
done

#!/usr/bin/env bash
# A guided tour of the Raftka HTTP API against a running local cluster (see scripts/cluster.sh).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/demo.sh"
TOPIC="demo"

usage() {
    cat <<EOF
Usage: $PROG [--dir DIR] [--topic NAME]

Against a cluster started with scripts/cluster.sh: creates topic '$TOPIC' (3 partitions,
replication factor 3), produces a few keyed JSON records with curl, fetches them back from
every partition and shows the cluster state. Safe to run more than once (the topic is reused
and new records are appended).

Options:
  --dir DIR      Cluster directory (default: ${RAFTKA_CLUSTER_DIR:-<repo>/.cluster}).
  --topic NAME   Topic to use (default: $TOPIC).
  -h, --help     Show this help.
EOF
}

DIR=""
while (($# > 0)); do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --dir)
            DIR="${2:?--dir needs a value}"
            shift 2
            ;;
        --dir=*)
            DIR="${1#*=}"
            shift
            ;;
        --topic)
            TOPIC="${2:?--topic needs a value}"
            shift 2
            ;;
        --topic=*)
            TOPIC="${1#*=}"
            shift
            ;;
        *) die "unknown argument '$1' (see $PROG --help)" ;;
    esac
done
[[ "$TOPIC" =~ ^[A-Za-z0-9._-]+$ ]] || die "topic names may only use letters, digits, '.', '_' and '-'"

need_cmd curl "apt-get install -y curl"
DIR="$(abspath "${DIR:-$(default_cluster_dir)}")"
load_cluster_env "$DIR"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

HAVE_PY=0
if command -v python3 >/dev/null 2>&1; then
    HAVE_PY=1
fi

# The node the demo talks to; switches to another node when this one is unreachable.
NODE=""

pick_node() {
    local id
    for ((id = 1; id <= CL_NODES; id++)); do
        if [[ "$(node_ready_code "$id")" == 200 ]]; then
            NODE="$(node_addr "$id")"
            return 0
        fi
    done
    return 1
}

# api METHOD PATH [BODY] — call the API; sets CODE and writes the reply body to $TMP/body.
# Retries (bounded) on connection failures and on retriable errors whose outcome is
# not_applied, i.e. when the request certainly had no effect.
CODE=""
api() {
    local method="$1" path="$2" body="${3:-}" attempt
    local -a data=()
    if [[ -n "$body" ]]; then
        data=(-H 'content-type: application/json' --data-binary "$body")
    fi
    for ((attempt = 1; attempt <= 20; attempt++)); do
        CODE="$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 15 -X "$method" \
            "${data[@]+"${data[@]}"}" "http://$NODE$path")" || CODE=000
        if [[ "$CODE" == 000 ]]; then
            warn "node $NODE unreachable; trying another node"
            pick_node || sleep 1
            continue
        fi
        if [[ "$CODE" =~ ^5 ]] && grep -q '"retriable":[[:space:]]*true' "$TMP/body" &&
            { [[ "$method" == GET ]] || grep -q '"outcome":[[:space:]]*"not_applied"' "$TMP/body"; }; then
            warn "retriable error ($CODE): $(cat "$TMP/body"); retrying"
            sleep 0.5
            continue
        fi
        return 0
    done
    return 0
}

# show_body — pretty-print the last reply.
show_body() { pretty_json <"$TMP/body"; }

# expect CODE... — die with the reply unless the last call returned one of the codes.
expect() {
    local c
    for c in "$@"; do
        [[ "$CODE" == "$c" ]] && return 0
    done
    printf 'unexpected HTTP %s:\n' "$CODE" >&2
    show_body >&2
    die "the demo stopped; node logs are in $DIR/node-*/node.log"
}

# say CMD — show the equivalent curl command.
say() { printf '%s$ %s%s\n' "$_RK_BOLD" "$*" "$_RK_RESET"; }

pick_node || die "no node of the cluster in $DIR is ready; check: scripts/cluster.sh status --dir $DIR"
BASE="http://$NODE"

heading "1. The cluster"
say "curl -s $BASE/v1/cluster"
api GET /v1/cluster
expect 200
show_body

heading "2. Create topic '$TOPIC' (3 partitions, replication factor 3)"
CREATE="{\"name\":\"$TOPIC\",\"partitions\":3,\"replication_factor\":3,\"configs\":{}}"
say "curl -s -X POST $BASE/v1/topics -H 'content-type: application/json' -d '$CREATE'"
api POST /v1/topics "$CREATE"
if [[ "$CODE" == 409 ]]; then
    printf "topic '%s' already exists (HTTP 409) - reusing it\n" "$TOPIC"
else
    expect 200 201
    printf 'HTTP %s\n' "$CODE"
    show_body
fi

# Wait (bounded) until every partition has a leader.
deadline=$(($(now_s) + 30))
while true; do
    api GET "/v1/topics/$TOPIC"
    if [[ "$CODE" == 200 ]] && ! grep -q '"leader":[[:space:]]*null' "$TMP/body"; then
        break
    fi
    if (($(now_s) >= deadline)); then
        show_body
        die "partitions of '$TOPIC' still have no leader after 30 s"
    fi
    sleep 0.5
done

heading "3. Produce keyed JSON records"
RUN="$(now_s)"
RECORDS="{\"records\":[
  {\"key\":\"alice\",\"value\":{\"event\":\"signup\",\"plan\":\"free\",\"run\":$RUN}},
  {\"key\":\"dave\",\"value\":{\"event\":\"signup\",\"plan\":\"pro\",\"run\":$RUN}},
  {\"key\":\"alice\",\"value\":{\"event\":\"login\",\"run\":$RUN},\"headers\":{\"source\":\"demo.sh\"}},
  {\"key\":\"carol\",\"value\":{\"event\":\"signup\",\"plan\":\"team\",\"run\":$RUN}},
  {\"key\":\"dave\",\"value\":{\"event\":\"upgrade\",\"plan\":\"team\",\"run\":$RUN}},
  {\"value\":\"a keyless record (partition chosen round-robin)\"},
  {\"key\":\"blob\",\"value_base64\":\"AAECA/7/\"}
]}"
say "curl -s -X POST $BASE/v1/topics/$TOPIC/records -H 'content-type: application/json' -d '$RECORDS'"
api POST "/v1/topics/$TOPIC/records" "$RECORDS"
expect 200
show_body
printf '%s\n' "Records with the same key always land in the same partition, in order."

heading "4. Fetch the records back"
for p in 0 1 2; do
    say "curl -s '$BASE/v1/topics/$TOPIC/partitions/$p/records?offset=0&max_records=100'"
    api GET "/v1/topics/$TOPIC/partitions/$p/records?offset=0&max_records=100"
    expect 200
    if ((HAVE_PY)); then
        python3 - "$TMP/body" <<'PY' || show_body
import json, sys
reply = json.load(open(sys.argv[1]))
records = reply.get("records", [])
print(f"  partition high_watermark={reply.get('high_watermark')} "
      f"log_start_offset={reply.get('log_start_offset')} records={len(records)}")
for r in records:
    if r.get("value_base64") is not None:
        value = "<binary, base64 " + r["value_base64"] + ">"
    else:
        value = json.dumps(r.get("value"))
    headers = r.get("headers") or {}
    extra = f"  headers={json.dumps(headers)}" if headers else ""
    print(f"  offset={r.get('offset'):<4} key={json.dumps(r.get('key')):<8} value={value}{extra}")
PY
    else
        show_body
    fi
done

heading "5. Offsets of partition 0"
say "curl -s $BASE/v1/topics/$TOPIC/partitions/0/offsets"
api GET "/v1/topics/$TOPIC/partitions/0/offsets"
expect 200
show_body

heading "6. Describe the topic"
say "curl -s $BASE/v1/topics/$TOPIC"
api GET "/v1/topics/$TOPIC"
expect 200
show_body

heading "7. An error, for the record"
say "curl -s $BASE/v1/topics/no-such-topic"
api GET /v1/topics/no-such-topic
printf 'HTTP %s\n' "$CODE"
show_body

heading "Done."
printf 'The API is documented in docs/api.md. Cluster state: scripts/cluster.sh status --dir %s\n' "$DIR"

# shellcheck shell=bash
# Shared helpers for the Raftka operational scripts (cluster.sh, demo.sh, setup-and-demo.sh).
#
# Source it from a script that already runs under `set -euo pipefail`:
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Nothing here signals a process on its own: the cluster helpers only ever touch PIDs that
# cluster.sh recorded in a cluster directory, and only after checking (via /proc/PID/cmdline)
# that the PID still runs raftka-node with that node's data directory.

# Guard against double sourcing.
if [[ -n "${RAFTKA_LIB_SOURCED:-}" ]]; then
    return 0
fi
RAFTKA_LIB_SOURCED=1

# Repository root: the parent of this scripts/ directory.
RAFTKA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RAFTKA_ROOT

# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
    _RK_RED=$'\033[31m' _RK_YELLOW=$'\033[33m' _RK_GREEN=$'\033[32m' _RK_BOLD=$'\033[1m' _RK_RESET=$'\033[0m'
else
    _RK_RED='' _RK_YELLOW='' _RK_GREEN='' _RK_BOLD='' _RK_RESET=''
fi

# info MSG...  — progress message on stderr (stdout is kept for results).
info() { printf '%s==>%s %s\n' "$_RK_GREEN" "$_RK_RESET" "$*" >&2; }
# warn MSG...
warn() { printf '%swarning:%s %s\n' "$_RK_YELLOW" "$_RK_RESET" "$*" >&2; }
# die MSG...  — print an error and exit 1.
die() {
    printf '%serror:%s %s\n' "$_RK_RED" "$_RK_RESET" "$*" >&2
    exit 1
}
# heading MSG... — a bold heading on stdout.
heading() { printf '\n%s%s%s\n' "$_RK_BOLD" "$*" "$_RK_RESET"; }

# need_cmd CMD [HINT] — exit with a helpful message when CMD is not installed.
need_cmd() {
    if ! command -v "$1" >/dev/null 2>&1; then
        die "'$1' is required but not installed${2:+ ($2)}"
    fi
}

# is_uint VALUE — true when VALUE is a non-negative decimal integer.
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# now_s — seconds since the epoch (bash builtin, no fork).
now_s() { printf '%(%s)T' -1; }

# abspath PATH — absolute form of PATH (which need not exist yet); no symlink resolution.
abspath() {
    case "$1" in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$PWD" "${1#./}" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# HTTP (curl)
# ---------------------------------------------------------------------------------------------

# http_code URL [MAX_TIME] — print the HTTP status code of GET URL, or 000 when unreachable.
http_code() {
    local code
    code="$(curl -s "${CL_CURL_TLS[@]}" -o /dev/null -w '%{http_code}' --max-time "${2:-2}" "$1" 2>/dev/null)" || true
    printf '%s' "${code:-000}"
}

# pretty_json — pretty-print JSON from stdin when python3 is available (small objects and arrays
# stay on one line); pass the text through unchanged otherwise.
pretty_json() {
    local input
    input="$(cat)"
    if command -v python3 >/dev/null 2>&1 &&
        printf '%s' "$input" | python3 -c "$_RK_PRETTY_PY" 2>/dev/null; then
        return 0
    fi
    printf '%s\n' "$input"
}

# shellcheck disable=SC2016 # Python source, not shell.
_RK_PRETTY_PY='
import json, sys

def fmt(v, indent=0, width=120):
    flat = json.dumps(v, ensure_ascii=False)
    if len(flat) + indent <= width or not isinstance(v, (dict, list)) or not v:
        return flat
    pad = " " * (indent + 2)
    if isinstance(v, dict):
        items = [pad + json.dumps(k, ensure_ascii=False) + ": " + fmt(x, indent + 2, width) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + fmt(x, indent + 2, width) for x in v]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"

print(fmt(json.loads(sys.stdin.read())))
'

# ---------------------------------------------------------------------------------------------
# Cluster directory layout (shared by cluster.sh and demo.sh)
#
#   DIR/cluster.env       KEY=VALUE lines: NODES, BASE_PORT, HOST, BIN, DIR, PEERS (read, never sourced)
#   DIR/secret            cluster secret (mode 600): the one given at start, or a random one
#   DIR/.lock             flock(1) lock file serialising mutating commands
#   DIR/node-I/data       node I's data directory (--data-dir)
#   DIR/node-I/node.log   node I's stderr (appended across restarts)
#   DIR/node-I/stdout     node I's stdout of its latest start (the `ready ...` line)
#   DIR/node-I/pid        PID of node I's latest start (removed once it is known dead)
#   DIR/node-I/cmd        the exact command line used to start node I (informational)
# ---------------------------------------------------------------------------------------------

# default_cluster_dir — $RAFTKA_CLUSTER_DIR, else <repo>/.cluster.
default_cluster_dir() { printf '%s' "${RAFTKA_CLUSTER_DIR:-$RAFTKA_ROOT/.cluster}"; }

# cluster_env_get DIR KEY — print KEY's value from DIR/cluster.env (empty when absent).
# The file is parsed, not sourced, so a tampered file cannot execute code.
cluster_env_get() {
    local file="$1/cluster.env" key="$2" line
    [[ -f "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        if [[ "$line" == "$key="* ]]; then
            printf '%s' "${line#"$key"=}"
            return 0
        fi
    done <"$file"
}

# load_cluster_env DIR — read DIR/cluster.env into CL_NODES, CL_BASE_PORT, CL_HOST, CL_BIN,
# CL_PEERS; dies with a hint when the directory holds no cluster.
load_cluster_env() {
    local dir="$1"
    [[ -f "$dir/cluster.env" ]] ||
        die "no cluster in $dir (missing cluster.env); start one with: scripts/cluster.sh start --dir $dir"
    CL_NODES="$(cluster_env_get "$dir" NODES)"
    CL_BASE_PORT="$(cluster_env_get "$dir" BASE_PORT)"
    CL_HOST="$(cluster_env_get "$dir" HOST)"
    CL_BIN="$(cluster_env_get "$dir" BIN)"
    CL_PEERS="$(cluster_env_get "$dir" PEERS)"
    CL_HOST="${CL_HOST:-127.0.0.1}"
    if ! is_uint "$CL_NODES" || ((CL_NODES < 1)); then
        die "$dir/cluster.env: bad NODES '$CL_NODES'"
    fi
    is_uint "$CL_BASE_PORT" || die "$dir/cluster.env: bad BASE_PORT '$CL_BASE_PORT'"
    [[ -n "$CL_BIN" ]] || die "$dir/cluster.env: missing BIN"
    [[ -n "$CL_PEERS" ]] || die "$dir/cluster.env: missing PEERS"
    cluster_tls "$dir"
}

# CL_SCHEME, CL_CURL_TLS — http and no curl options, or for a TLS cluster (DIR/tls/node.pem
# exists, see cluster.sh start --tls) https and the cluster's CA.
CL_SCHEME=http
CL_CURL_TLS=()
# cluster_tls DIR — set CL_SCHEME and CL_CURL_TLS for the cluster in DIR.
cluster_tls() {
    if [[ -f "$1/tls/node.pem" ]]; then
        CL_SCHEME=https
        CL_CURL_TLS=(--cacert "$1/tls/ca.pem")
    else
        CL_SCHEME=http
        CL_CURL_TLS=()
    fi
}

# ccurl ARGS... — curl with the cluster's TLS options (needs load_cluster_env).
ccurl() { curl "${CL_CURL_TLS[@]}" "$@"; }

# node_port ID — HTTP port of node ID (needs load_cluster_env).
node_port() { printf '%s' "$((CL_BASE_PORT + $1 - 1))"; }
# node_addr ID — host:port of node ID (needs load_cluster_env).
node_addr() { printf '%s:%s' "$CL_HOST" "$(node_port "$1")"; }
# node_url ID — scheme://host:port of node ID (needs load_cluster_env).
node_url() { printf '%s://%s' "$CL_SCHEME" "$(node_addr "$1")"; }
# node_dir DIR ID — node ID's directory.
node_dir() { printf '%s/node-%s' "$1" "$2"; }

# check_node_id ID — die unless ID is a node of the loaded cluster.
check_node_id() {
    if ! is_uint "$1" || (($1 < 1 || $1 > CL_NODES)); then
        die "unknown node id '$1' (this cluster has nodes 1..$CL_NODES)"
    fi
}

# proc_state PID — one-letter process state from /proc/PID/stat (R, S, D, T, t, Z, ...), or
# nothing when the process does not exist.
proc_state() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    # Field 3, after the parenthesised command name (which may itself contain spaces or ')').
    stat="${stat##*) }"
    printf '%s' "${stat%% *}"
}

# pid_is_node PID DATA_DIR BIN — true when PID is a live (non-zombie) process whose command line
# is BIN (same basename) started with `--data-dir DATA_DIR`. Guards every signal we send against
# PID reuse.
pid_is_node() {
    local pid="$1" data_dir="$2" bin="$3" state arg prev="" exe_ok=0 dir_ok=0
    local -a argv=()
    if ! is_uint "$pid" || ((pid <= 1)); then
        return 1
    fi
    state="$(proc_state "$pid")"
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    { mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
    ((${#argv[@]} > 0)) || return 1
    for arg in "${argv[@]}"; do
        if [[ "${arg##*/}" == "${bin##*/}" ]]; then
            exe_ok=1
        fi
        if [[ "$prev" == "--data-dir" && "$arg" == "$data_dir" ]] || [[ "$arg" == "--data-dir=$data_dir" ]]; then
            dir_ok=1
        fi
        prev="$arg"
    done
    ((exe_ok && dir_ok))
}

# node_pid DIR ID — print the recorded PID of node ID when that process is still this node;
# prints nothing (and returns 1) otherwise. Needs load_cluster_env.
node_pid() {
    local dir="$1" id="$2" pid_file pid
    pid_file="$(node_dir "$dir" "$id")/pid"
    [[ -f "$pid_file" ]] || return 1
    pid="$(<"$pid_file")"
    pid="${pid//[[:space:]]/}"
    if pid_is_node "$pid" "$(node_dir "$dir" "$id")/data" "$CL_BIN"; then
        printf '%s' "$pid"
        return 0
    fi
    return 1
}

# signal_node DIR ID SIGNAL — send SIGNAL to node ID if (and only if) its recorded PID is still
# that node. Returns 1 when the node is not running.
signal_node() {
    local pid
    pid="$(node_pid "$1" "$2")" || return 1
    kill "-$3" "$pid" 2>/dev/null
}

# node_ready_code ID — HTTP status of node ID's /readyz (000 when unreachable).
node_ready_code() { http_code "$(node_url "$1")/readyz"; }
# node_health_code ID — HTTP status of node ID's /healthz.
node_health_code() { http_code "$(node_url "$1")/healthz"; }

# port_in_use PORT [HOST] — true when something accepts TCP connections on HOST:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# any_live_node_addr DIR — print the address of the first node whose /healthz answers 200.
any_live_node_addr() {
    local id
    for ((id = 1; id <= CL_NODES; id++)); do
        if [[ "$(node_health_code "$id")" == 200 ]]; then
            node_addr "$id"
            return 0
        fi
    done
    return 1
}

# print_log_tail FILE [LINES] — show the end of a log file on stderr, indented.
print_log_tail() {
    local file="$1" lines="${2:-20}"
    if [[ -s "$file" ]]; then
        printf '    --- last %s lines of %s ---\n' "$lines" "$file" >&2
        tail -n "$lines" "$file" | sed 's/^/    /' >&2
    else
        printf '    (%s is empty or missing)\n' "$file" >&2
    fi
}

# json_num FILE KEY — a number field of the flat one-line JSON object on FILE's last line ("" when
# absent).
json_num() {
    local line
    line="$(tail -n 1 "$1" 2>/dev/null || true)"
    if [[ "$line" =~ \"$2\":(-?[0-9.eE+-]+) ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# cpu_seconds PID... — user+system CPU seconds the processes have used so far.
cpu_seconds() {
    local pid stat ticks=0 hz
    hz="$(getconf CLK_TCK)"
    for pid in "$@"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        # Fields after the command name (which may hold spaces): state is field 3, utime 14,
        # stime 15; after stripping "pid (comm) " they are fields 12 and 13.
        read -r -a f <<<"${stat##*) }"
        ticks=$((ticks + f[11] + f[12]))
    done
    awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}

# summarize_ab_runs FILE BASE OTHER — prints the runs in FILE (lines "MODE records/s p50_ms
# p99_ms server_cpu_s records", MODE being BASE or OTHER), the medians of each mode and the
# OTHER/BASE ratios of throughput, latency and server CPU per record.
summarize_ab_runs() {
    awk -v base="$2" -v other="$3" '
        function median(a, n,    i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        {
            printf "%-6s %10.0f records/s  p50 %7.2f ms  p99 %7.2f ms  server CPU %6.2f s (%5.2f us/record)\n", \
                $1, $2, $3, $4, $5, $5 * 1e6 / $6
            n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4; cpr[$1, n[$1]] = $5 * 1e6 / $6
        }
        END {
            for (m = 0; m < 2; m++) {
                mode = m ? other : base
                k = n[mode]
                for (i = 1; i <= k; i++) { a[i] = rps[mode, i] } ; med_rps[mode] = median(a, k)
                for (i = 1; i <= k; i++) { a[i] = p50[mode, i] } ; med_p50[mode] = median(a, k)
                for (i = 1; i <= k; i++) { a[i] = p99[mode, i] } ; med_p99[mode] = median(a, k)
                for (i = 1; i <= k; i++) { a[i] = cpr[mode, i] } ; med_cpr[mode] = median(a, k)
                printf "median %-6s %10.0f records/s  p50 %7.2f ms  p99 %7.2f ms  %5.2f server CPU us/record\n", \
                    mode, med_rps[mode], med_p50[mode], med_p99[mode], med_cpr[mode]
            }
            printf "ratio %s/%s: throughput %.3f, p50 %.2f, p99 %.2f, server CPU per record %.2f\n", \
                other, base, med_rps[other] / med_rps[base], med_p50[other] / med_p50[base], \
                med_p99[other] / med_p99[base], med_cpr[other] / med_cpr[base]
        }' "$1"
}

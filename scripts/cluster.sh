#!/usr/bin/env bash
# Run a local Raftka cluster of real raftka-node processes on 127.0.0.1.
# See `scripts/cluster.sh --help`.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/cluster.sh"
DEFAULT_NODES=3
DEFAULT_BASE_PORT=19091
DEFAULT_HOST=127.0.0.1

usage() {
    cat <<EOF
Usage: $PROG COMMAND [ARGS] [OPTIONS]

Run a local Raftka cluster: N raftka-node processes on 127.0.0.1, node I listening on
BASE_PORT+I-1. Everything about a cluster lives in one directory (default: <repo>/.cluster,
or \$RAFTKA_CLUSTER_DIR); every command takes --dir to pick it.

Commands:
  start [-n N] [--base-port P] [--bin PATH] [--secret S] [--tls] [--clean]
                     Start N nodes (default $DEFAULT_NODES) and wait until every /readyz is 200,
                     then print id, address, PID and log file of each node. In a directory
                     that already holds a stopped cluster, the same cluster (same data, size
                     and ports) is started again unless --clean is given.
  stop [ID...]       SIGTERM the recorded nodes (all by default), wait, then SIGKILL the ones
                     still running after --timeout (default 20 s).
  status             Per node: address, state (up/paused/down), readiness, PID, log file.
  kill ID...         SIGKILL node(s) (a crash: no graceful shutdown).
  restart ID... [--no-wait]
                     Start node(s) again with the same arguments (stopping them gracefully
                     first if they are running) and wait until they are ready.
  rolling-restart [ID...]
                     Restart the nodes (all by default) one at a time: each only when every
                     partition is fully replicated (GET /v1/cluster under_replicated_partitions
                     is 0), with a graceful stop (the node hands its leaderships over first),
                     then waits for it to be ready and for full replication again. Finally
                     returns leaderships to their preferred replicas. --timeout bounds each
                     wait (default 120 s).
  pause ID...        SIGSTOP node(s) (simulates a hung process / GC pause).
  resume ID...       SIGCONT node(s).
  wait-ready [ID...] Wait until the node(s) (all by default) answer /readyz with 200.
  add-node [--id N] [--no-wait]
                     Start one more node that joins the running cluster (raftka-node --join,
                     seeded with the nodes that answer /readyz), as node N (default: one above
                     the highest node) on BASE_PORT+N-1, wait until it is ready, then print it
                     like start. From then on it is one of the cluster's nodes for every
                     command (stop, status, kill, restart, ...); restart starts it with --join
                     again. It holds no replicas until some are moved onto it (raftka cluster
                     rebalance).
  help               Show this help.

Options:
  --dir DIR          Cluster directory (default: ${RAFTKA_CLUSTER_DIR:-<repo>/.cluster}).
  -n, --nodes N      Number of nodes for start (default $DEFAULT_NODES).
  --base-port P      HTTP port of node 1 for start (default $DEFAULT_BASE_PORT).
  --bin PATH         raftka-node binary for start (default: target/debug/raftka-node of this
                     repo, built with cargo when missing).
  --secret S         Cluster secret for every node. Defaults to \$RAFTKA_CLUSTER_SECRET when
                     set, else a random one made at the cluster's first start. Stored in
                     DIR/secret (mode 600), which every node reads (--secret-file), so it shows
                     neither in ps nor in the nodes' environment.
  --tls              start: serve HTTPS only, to clients and between the nodes, with a CA and a
                     certificate for $DEFAULT_HOST made for the cluster in DIR/tls (openssl),
                     unless DIR/tls/{ca,node,node-key}.pem are there already. Kept for later
                     starts; clients need the CA: raftka --ca DIR/tls/ca.pem, curl --cacert.
  --clean            start: delete the directory's previous data and config first.
  --timeout SECS     Bound for waiting (ready: default 60, or \$RAFTKA_READY_TIMEOUT; stop: 20).
  --no-wait          restart, add-node: do not wait for readiness (e.g. when restarting every
                     node of a cluster one by one; follow with wait-ready).
  --id N             add-node: the new node's id (greater than every node's; default: the
                     highest plus one). Removed ids are never reused by the cluster.
  -h, --help         Show this help.

Layout of DIR:
  cluster.env        NODES, BASE_PORT, HOST, BIN, DIR, PEERS of the cluster (KEY=VALUE);
                     NODES is the highest node id (add-node raises it), PEERS the nodes that
                     formed the cluster
  secret             the cluster secret (mode 600)
  tls/               only with --tls: ca.pem, ca-key.pem, node.pem, node-key.pem
  node-I/data        node I's --data-dir
  node-I/node.log    node I's log (stderr, appended across restarts)
  node-I/stdout      node I's stdout of its latest start (its 'ready addr=... id=...' line)
  node-I/pid         node I's PID
  node-I/join        only for a node added with add-node: the --join seeds of its latest start

Only PIDs recorded in DIR are ever signalled, and only after /proc/PID/cmdline shows they
still run raftka-node with that node's data directory.

Examples:
  $PROG start -n 3
  $PROG status
  $PROG kill 2 && $PROG restart 2
  $PROG rolling-restart
  $PROG add-node && raftka cluster rebalance
  $PROG pause 1; sleep 5; $PROG resume 1
  $PROG stop
EOF
}

# ---------------------------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------------------------

CMD=""
DIR=""
NODES=""
BASE_PORT=""
BIN=""
SECRET=""
SECRET_SET=0
CLEAN=0
TLS=0
NO_WAIT=0
TIMEOUT=""
NEW_ID=""
IDS=()

parse_args() {
    if (($# == 0)); then
        usage
        exit 1
    fi
    while (($# > 0)); do
        case "$1" in
            -h | --help | help)
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
            -n | --nodes)
                NODES="${2:?$1 needs a value}"
                shift 2
                ;;
            --nodes=*)
                NODES="${1#*=}"
                shift
                ;;
            --base-port)
                BASE_PORT="${2:?--base-port needs a value}"
                shift 2
                ;;
            --base-port=*)
                BASE_PORT="${1#*=}"
                shift
                ;;
            --bin)
                BIN="${2:?--bin needs a value}"
                shift 2
                ;;
            --bin=*)
                BIN="${1#*=}"
                shift
                ;;
            --secret)
                SECRET="${2?--secret needs a value}"
                SECRET_SET=1
                shift 2
                ;;
            --secret=*)
                SECRET="${1#*=}"
                SECRET_SET=1
                shift
                ;;
            --timeout)
                TIMEOUT="${2:?--timeout needs a value}"
                shift 2
                ;;
            --timeout=*)
                TIMEOUT="${1#*=}"
                shift
                ;;
            --id)
                NEW_ID="${2:?--id needs a value}"
                shift 2
                ;;
            --id=*)
                NEW_ID="${1#*=}"
                shift
                ;;
            --clean)
                CLEAN=1
                shift
                ;;
            --tls)
                TLS=1
                shift
                ;;
            --no-wait)
                NO_WAIT=1
                shift
                ;;
            -*)
                die "unknown option '$1' (see $PROG --help)"
                ;;
            *)
                if [[ -z "$CMD" ]]; then
                    CMD="$1"
                else
                    IDS+=("$1")
                fi
                shift
                ;;
        esac
    done
    [[ -n "$CMD" ]] || die "no command given (see $PROG --help)"
    DIR="$(abspath "${DIR:-$(default_cluster_dir)}")"
    DIR="${DIR%/}"
    if [[ -n "$NODES" ]]; then
        if ! is_uint "$NODES" || ((NODES < 1 || NODES > 99)); then
            die "-n must be a number between 1 and 99, got '$NODES'"
        fi
    fi
    if [[ -n "$BASE_PORT" ]]; then
        if ! is_uint "$BASE_PORT" || ((BASE_PORT < 1024 || BASE_PORT > 65000)); then
            die "--base-port must be a number between 1024 and 65000, got '$BASE_PORT'"
        fi
    fi
    if [[ -n "$TIMEOUT" ]] && ! is_uint "$TIMEOUT"; then
        die "--timeout must be a whole number of seconds, got '$TIMEOUT'"
    fi
    if ((TLS)) && [[ "$CMD" != start ]]; then
        die "--tls is only for start (a cluster started with it keeps it; see $PROG --help)"
    fi
    if [[ -n "$NEW_ID" ]]; then
        [[ "$CMD" == add-node ]] || die "--id is only for add-node (see $PROG --help)"
        if ! is_uint "$NEW_ID" || ((NEW_ID < 1 || NEW_ID > 99)); then
            die "--id must be a number between 1 and 99, got '$NEW_ID'"
        fi
    fi
}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# lock_dir — serialise mutating commands on one cluster directory (fd 9; never inherited by the
# nodes, see launch_node).
lock_dir() {
    mkdir -p "$DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$DIR/.lock"
        flock -w 180 9 || die "another $PROG command holds $DIR/.lock"
    fi
}

ready_timeout() { printf '%s' "${TIMEOUT:-${RAFTKA_READY_TIMEOUT:-60}}"; }

# default_bin — the cargo output path of this repository.
default_bin() { printf '%s/debug/raftka-node' "${CARGO_TARGET_DIR:-$RAFTKA_ROOT/target}"; }

# resolve_bin PATH EXPLICIT — print the absolute binary path; build it with cargo when it is the
# default one and missing.
resolve_bin() {
    local bin="$1" explicit="$2"
    bin="$(abspath "$bin")"
    if [[ ! -x "$bin" ]]; then
        if ((explicit)); then
            die "binary $bin does not exist or is not executable"
        fi
        need_cmd cargo "install Rust from the rustup toolchain"
        info "building raftka-node (cargo build -p raftka-node --bin raftka-node) ..."
        (cd "$RAFTKA_ROOT" && cargo build -p raftka-node --bin raftka-node) >&2 ||
            die "cargo build failed"
        [[ -x "$bin" ]] || die "cargo build finished but $bin is missing"
    fi
    printf '%s' "$bin"
}

# ensure_secret — make DIR/secret (mode 600) when the cluster has none yet: 32 random bytes in
# hex. A cluster directory made before the scripts kept a secret gets one at its next start.
ensure_secret() {
    [[ -s "$DIR/secret" ]] && return 0
    (
        umask 077
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$DIR/secret.tmp"
        mv -f "$DIR/secret.tmp" "$DIR/secret"
    )
}

# ensure_tls — make DIR/tls (a CA, and one certificate for every node on $DEFAULT_HOST signed by
# it) unless it holds the three PEM files already, e.g. made by a test with its own tool.
ensure_tls() {
    local t="$DIR/tls"
    if [[ -s "$t/ca.pem" && -s "$t/node.pem" && -s "$t/node-key.pem" ]]; then
        return 0
    fi
    need_cmd openssl "apt-get install -y openssl"
    mkdir -p "$t"
    info "making a CA and a node certificate for $DEFAULT_HOST in $t"
    (
        umask 077
        set -e
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=Raftka local cluster CA" -keyout "$t/ca-key.pem" -out "$t/ca.pem" 2>/dev/null
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=raftka-node" -keyout "$t/node-key.pem" -out "$t/node.csr" 2>/dev/null
        printf '%s\n' "subjectAltName=IP:$DEFAULT_HOST,DNS:localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >"$t/node.ext"
        openssl x509 -req -in "$t/node.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" \
            -CAcreateserial -days 825 -extfile "$t/node.ext" -out "$t/node.pem" 2>/dev/null
        rm -f "$t/node.csr" "$t/node.ext" "$t/ca.srl"
    ) || die "openssl could not make the certificates in $t"
}

# launch_node ID — start node ID in the background, detached from this shell's session, and
# record its PID. Does not wait for readiness.
launch_node() {
    local id="$1" ndir addr pid deadline
    ndir="$(node_dir "$DIR" "$id")"
    addr="$(node_addr "$id")"
    mkdir -p "$ndir/data"
    local -a argv=("$CL_BIN" --id "$id" --listen "$addr" --data-dir "$ndir/data")
    if [[ -f "$ndir/join" ]]; then
        # Added with add-node: not one of the nodes that formed the cluster (--peers), so it
        # (re)joins through the nodes that answer now; with its stored id a restart needs none.
        join_seeds "$id" >"$ndir/join.tmp"
        mv -f "$ndir/join.tmp" "$ndir/join"
        argv+=(--join "$(<"$ndir/join")")
    else
        argv+=(--peers "$CL_PEERS")
    fi
    # NO_COLOR: the log goes to a file, so no ANSI colour codes (tracing-subscriber honours it).
    ensure_secret
    # TLS comes from DIR/tls only (the scripts' own curl calls follow it), never from the
    # caller's environment.
    local -a envs=(env -u RAFTKA_CLUSTER_SECRET -u RAFTKA_TLS_CERT -u RAFTKA_TLS_KEY -u RAFTKA_TLS_CA
        NO_COLOR=1 "RAFTKA_CLUSTER_SECRET_FILE=$DIR/secret")
    if [[ -f "$DIR/tls/node.pem" ]]; then
        envs+=("RAFTKA_TLS_CERT=$DIR/tls/node.pem" "RAFTKA_TLS_KEY=$DIR/tls/node-key.pem"
            "RAFTKA_TLS_CA=$DIR/tls/ca.pem")
    fi
    local -a detach=()
    if command -v setsid >/dev/null 2>&1; then
        # Own session: Ctrl-C in the terminal that ran `start` does not reach the nodes. A
        # background job of a non-interactive shell is no process-group leader, so setsid execs
        # in place and $! stays the node's PID.
        detach=(setsid)
    fi
    printf '%q ' "${argv[@]}" >"$ndir/cmd"
    printf '\n' >>"$ndir/cmd"
    printf '=== %s: %s starting node %s: %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$PROG" "$id" \
        "$(<"$ndir/cmd")" >>"$ndir/node.log"
    "${envs[@]}" "${detach[@]}" "${argv[@]}" </dev/null >"$ndir/stdout" 2>>"$ndir/node.log" 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$ndir/pid.tmp"
    mv -f "$ndir/pid.tmp" "$ndir/pid"
    # Wait (briefly) until the exec chain has reached raftka-node, so that later liveness checks
    # by command line are meaningful.
    deadline=$(($(now_s) + 5))
    while ! pid_is_node "$pid" "$ndir/data" "$CL_BIN"; do
        if [[ -z "$(proc_state "$pid")" || "$(proc_state "$pid")" == Z ]]; then
            break # exited already; wait_ready reports it
        fi
        if (($(now_s) > deadline)); then
            warn "node $id (pid $pid) does not show up as raftka-node in /proc/$pid/cmdline"
            break
        fi
        sleep 0.05
    done
}

# wait_ready TIMEOUT ID... — wait until each node answers /readyz 200. Fails early when a node
# process exits. Prints diagnostics and returns 1 on failure.
wait_ready() {
    local timeout="$1" id code deadline
    shift
    local -a pending=("$@") still=() dead=()
    deadline=$(($(now_s) + timeout))
    info "waiting up to ${timeout}s for node(s) ${pending[*]} to be ready ..."
    while ((${#pending[@]} > 0)); do
        still=()
        for id in "${pending[@]}"; do
            if ! node_pid "$DIR" "$id" >/dev/null; then
                dead+=("$id")
                continue
            fi
            code="$(node_ready_code "$id")"
            if [[ "$code" != 200 ]]; then
                still+=("$id")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        if ((${#dead[@]} > 0)); then
            for id in "${dead[@]}"; do
                warn "node $id exited before becoming ready"
                print_log_tail "$(node_dir "$DIR" "$id")/node.log" 30
            done
            return 1
        fi
        if ((${#pending[@]} == 0)); then
            break
        fi
        if (($(now_s) >= deadline)); then
            for id in "${pending[@]}"; do
                warn "node $id not ready after ${timeout}s (healthz $(node_health_code "$id"), readyz $(node_ready_code "$id"))"
                print_log_tail "$(node_dir "$DIR" "$id")/node.log" 30
            done
            return 1
        fi
        sleep 0.25
    done
    info "ready: node(s) $*"
}

# wait_gone TIMEOUT ID... — wait until none of the nodes runs any more; prints the ids still
# running on timeout and returns 1.
wait_gone() {
    local timeout="$1" id deadline
    shift
    local -a running=()
    deadline=$(($(now_s) + timeout))
    while true; do
        running=()
        for id in "$@"; do
            if node_pid "$DIR" "$id" >/dev/null; then
                running+=("$id")
            fi
        done
        ((${#running[@]} == 0)) && return 0
        if (($(now_s) >= deadline)); then
            printf '%s\n' "${running[@]}"
            return 1
        fi
        sleep 0.1
    done
}

# forget_dead ID... — remove the pid file of nodes that are known not to run.
forget_dead() {
    local id
    for id in "$@"; do
        if ! node_pid "$DIR" "$id" >/dev/null; then
            rm -f "$(node_dir "$DIR" "$id")/pid"
        fi
    done
}

# graceful_stop TIMEOUT ID... — SIGTERM (plus SIGCONT, for paused nodes), wait, then SIGKILL.
graceful_stop() {
    local timeout="$1" id pid
    shift
    local -a targets=() left=()
    for id in "$@"; do
        if pid="$(node_pid "$DIR" "$id")"; then
            targets+=("$id")
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true
            info "node $id (pid $pid): SIGTERM sent"
        else
            info "node $id: not running"
        fi
    done
    if ((${#targets[@]} > 0)); then
        mapfile -t left < <(wait_gone "$timeout" "${targets[@]}" || true)
        if ((${#left[@]} > 0)); then
            for id in "${left[@]}"; do
                if pid="$(node_pid "$DIR" "$id")"; then
                    warn "node $id (pid $pid) still running after ${timeout}s: SIGKILL"
                    kill -KILL "$pid" 2>/dev/null || true
                fi
            done
            if ! wait_gone 10 "${left[@]}" >/dev/null; then
                warn "some nodes survived SIGKILL: ${left[*]}"
            fi
        fi
    fi
    forget_dead "$@"
}

# require_ids — die unless at least one node id was given; validates each.
require_ids() {
    local id
    ((${#IDS[@]} > 0)) || die "'$CMD' needs at least one node id (see $PROG --help)"
    for id in "${IDS[@]}"; do
        check_node_id "$id"
        slot_used "$id" || die "no node $id in $DIR (add-node skipped that id)"
    done
}

# slot_used ID — true when node ID exists in this directory. Every id up to NODES does, except
# ids that add-node --id skipped (they have no node directory).
slot_used() { [[ -d "$(node_dir "$DIR" "$1")" ]]; }

# all_ids — print the ids of the cluster's nodes (1..N without skipped ids), one per line.
all_ids() {
    local id
    for ((id = 1; id <= CL_NODES; id++)); do
        if slot_used "$id"; then
            printf '%s\n' "$id"
        fi
    done
}

# join_seeds ID — the --join seeds for node ID: the other nodes that answer /readyz, or every
# other node when none does (a whole cluster starting at once), comma-separated.
join_seeds() {
    local self="$1" id seeds="" all=""
    for ((id = 1; id <= CL_NODES; id++)); do
        if ((id == self)) || ! slot_used "$id"; then
            continue
        fi
        all+="${all:+,}$(node_addr "$id")"
        if [[ "$(node_ready_code "$id")" == 200 ]]; then
            seeds+="${seeds:+,}$(node_addr "$id")"
        fi
    done
    printf '%s' "${seeds:-$all}"
}

# set_cluster_nodes N — rewrite NODES in DIR/cluster.env, keeping every other line.
set_cluster_nodes() {
    local line
    while IFS= read -r line || [[ -n "$line" ]]; do
        if [[ "$line" == NODES=* ]]; then
            printf 'NODES=%s\n' "$1"
        else
            printf '%s\n' "$line"
        fi
    done <"$DIR/cluster.env" >"$DIR/cluster.env.tmp"
    mv -f "$DIR/cluster.env.tmp" "$DIR/cluster.env"
    CL_NODES="$1"
}

# print_nodes ID... — table of id, address, PID and log file.
print_nodes() {
    local id pid
    printf '%-4s %-25s %-9s %s\n' ID ADDRESS PID LOG
    for id in "$@"; do
        pid="$(node_pid "$DIR" "$id")" || pid="-"
        printf '%-4s %-25s %-9s %s\n' "$id" "$(node_url "$id")" "$pid" \
            "$(node_dir "$DIR" "$id")/node.log"
    done
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

cmd_start() {
    local id port explicit_bin=0 bin peers="" old_nodes old_port old_bin old_peers=""
    local -a ids=()
    need_cmd curl "apt-get install -y curl"
    ((${#IDS[@]} == 0)) || die "start takes no node ids (use restart ID to start one node)"
    lock_dir

    if [[ -f "$DIR/cluster.env" ]]; then
        load_cluster_env "$DIR"
        for ((id = 1; id <= CL_NODES; id++)); do
            if node_pid "$DIR" "$id" >/dev/null; then
                die "a cluster is already running in $DIR (node $id is up); use '$PROG status --dir $DIR' or '$PROG stop --dir $DIR'"
            fi
        done
        if ((CLEAN)); then
            info "--clean: removing the previous cluster in $DIR"
            rm -rf "$DIR"/node-* "$DIR/cluster.env" "$DIR/secret" "$DIR/tls"
        else
            old_nodes="$CL_NODES" old_port="$CL_BASE_PORT" old_bin="$CL_BIN"
            if [[ -n "$NODES" && "$NODES" != "$old_nodes" ]] || [[ -n "$BASE_PORT" && "$BASE_PORT" != "$old_port" ]]; then
                die "$DIR holds a cluster of $old_nodes node(s) on base port $old_port; start it with the same settings, or pass --clean to discard its data"
            fi
            NODES="$old_nodes" BASE_PORT="$old_port"
            # Nodes added with add-node raise NODES but were never --peers: keep the list of
            # the nodes that formed the cluster.
            old_peers="$CL_PEERS"
            if [[ -z "$BIN" && -x "$old_bin" ]]; then
                BIN="$old_bin"
                explicit_bin=1
            fi
            info "starting the existing cluster in $DIR again (its data is kept)"
        fi
    elif ((CLEAN)); then
        rm -rf "$DIR"/node-* "$DIR/secret" "$DIR/tls"
    fi

    NODES="${NODES:-$DEFAULT_NODES}"
    BASE_PORT="${BASE_PORT:-$DEFAULT_BASE_PORT}"
    if [[ -n "$BIN" ]]; then
        explicit_bin=1
    else
        BIN="$(default_bin)"
    fi
    bin="$(resolve_bin "$BIN" "$explicit_bin")"

    for ((id = 1; id <= NODES; id++)); do
        port=$((BASE_PORT + id - 1))
        if [[ -n "$old_peers" ]] && ! slot_used "$id"; then
            continue
        fi
        if port_in_use "$port" "$DEFAULT_HOST"; then
            die "port $port on $DEFAULT_HOST is already in use (pick another --base-port)"
        fi
        peers+="${peers:+,}$id=$DEFAULT_HOST:$port"
    done
    peers="${old_peers:-$peers}"

    mkdir -p "$DIR"
    {
        printf '# Written by %s start; read (not sourced) by the scripts.\n' "$PROG"
        printf 'NODES=%s\n' "$NODES"
        printf 'BASE_PORT=%s\n' "$BASE_PORT"
        printf 'HOST=%s\n' "$DEFAULT_HOST"
        printf 'BIN=%s\n' "$bin"
        printf 'DIR=%s\n' "$DIR"
        printf 'PEERS=%s\n' "$peers"
    } >"$DIR/cluster.env.tmp"
    mv -f "$DIR/cluster.env.tmp" "$DIR/cluster.env"

    if ((SECRET_SET)) || [[ -n "${RAFTKA_CLUSTER_SECRET:-}" ]]; then
        ((SECRET_SET)) || SECRET="$RAFTKA_CLUSTER_SECRET"
        (
            umask 077
            printf '%s' "$SECRET" >"$DIR/secret"
        )
    fi
    ensure_secret
    if ((TLS)); then
        ensure_tls
    fi

    load_cluster_env "$DIR"
    if [[ -n "$old_peers" ]]; then
        mapfile -t ids < <(all_ids)
    else
        mapfile -t ids < <(seq 1 "$CL_NODES")
    fi
    info "starting ${#ids[@]} node(s) in $DIR (binary $CL_BIN)"
    for id in "${ids[@]}"; do
        launch_node "$id"
    done
    if ! wait_ready "$(ready_timeout)" "${ids[@]}"; then
        warn "cluster did not become ready; stopping the nodes that were started"
        graceful_stop 10 "${ids[@]}"
        die "start failed (logs are in $DIR/node-*/node.log)"
    fi
    heading "Raftka cluster of ${#ids[@]} node(s) is ready ($DIR)"
    print_nodes "${ids[@]}"
    if [[ "$CL_SCHEME" == https ]]; then
        printf '\nTry: curl -s --cacert %s %s/v1/cluster\n' "$DIR/tls/ca.pem" "$(node_url 1)"
        printf '     raftka --ca %s --bootstrap %s cluster status\n' "$DIR/tls/ca.pem" "$(node_addr 1)"
    else
        printf '\nTry: curl -s %s/v1/cluster\n' "$(node_url 1)"
    fi
    printf 'Stop it with: %s stop --dir %s\n' "$PROG" "$DIR"
}

cmd_stop() {
    local timeout="${TIMEOUT:-20}" id
    local -a ids=()
    load_cluster_env "$DIR"
    if ((${#IDS[@]} > 0)); then
        require_ids
        ids=("${IDS[@]}")
    else
        mapfile -t ids < <(all_ids)
    fi
    lock_dir
    graceful_stop "$timeout" "${ids[@]}"
    for id in "${ids[@]}"; do
        if node_pid "$DIR" "$id" >/dev/null; then
            die "node $id is still running"
        fi
    done
    info "stopped node(s) ${ids[*]} in $DIR"
}

cmd_status() {
    local id pid state ready health leader body
    load_cluster_env "$DIR"
    printf '%-4s %-25s %-7s %-6s %-9s %s\n' ID ADDRESS STATE READY PID LOG
    for ((id = 1; id <= CL_NODES; id++)); do
        slot_used "$id" || continue
        ready="-"
        if pid="$(node_pid "$DIR" "$id")"; then
            case "$(proc_state "$pid")" in
                T | t)
                    state=paused
                    ;;
                *)
                    health="$(node_health_code "$id")"
                    if [[ "$health" == 200 ]]; then
                        state=up
                    else
                        state="starting"
                    fi
                    if [[ "$(node_ready_code "$id")" == 200 ]]; then ready=yes; else ready=no; fi
                    ;;
            esac
        else
            pid="-" state=down
        fi
        printf '%-4s %-25s %-7s %-6s %-9s %s\n' "$id" "$(node_url "$id")" "$state" "$ready" \
            "$pid" "$(node_dir "$DIR" "$id")/node.log"
    done
    leader="unknown"
    for ((id = 1; id <= CL_NODES; id++)); do
        [[ "$(node_ready_code "$id")" == 200 ]] || continue
        body="$(ccurl -s --max-time 2 "$(node_url "$id")/v1/cluster" 2>/dev/null)" || continue
        if [[ "$body" =~ \"metadata_leader\":[[:space:]]*([0-9]+|null) ]]; then
            leader="${BASH_REMATCH[1]}"
            break
        fi
    done
    printf '\nmetadata leader: %s\n' "$leader"
}

cmd_kill() {
    local id pid
    load_cluster_env "$DIR"
    require_ids
    lock_dir
    for id in "${IDS[@]}"; do
        if pid="$(node_pid "$DIR" "$id")"; then
            kill -KILL "$pid" 2>/dev/null || true
            info "node $id (pid $pid): SIGKILL sent"
        else
            warn "node $id is not running"
        fi
    done
    if ! wait_gone 10 "${IDS[@]}" >/dev/null; then
        die "node(s) still running 10 s after SIGKILL"
    fi
    forget_dead "${IDS[@]}"
}

# relaunch ID — start a stopped node again with its recorded arguments, once its port is free.
relaunch() {
    local id="$1" deadline=$(($(now_s) + 10))
    while port_in_use "$(node_port "$id")" "$CL_HOST"; do
        if (($(now_s) >= deadline)); then
            die "port $(node_port "$id") is still in use by another process; cannot restart node $id"
        fi
        sleep 0.2
    done
    launch_node "$id"
    info "node $id restarted (pid $(node_pid "$DIR" "$id" || printf 'exited'))"
}

cmd_restart() {
    local id
    load_cluster_env "$DIR"
    require_ids
    [[ -x "$CL_BIN" ]] || die "binary $CL_BIN (from $DIR/cluster.env) is missing"
    lock_dir
    graceful_stop "${TIMEOUT:-20}" "${IDS[@]}"
    for id in "${IDS[@]}"; do
        relaunch "$id"
    done
    if ((NO_WAIT == 0)); then
        wait_ready "$(ready_timeout)" "${IDS[@]}" || die "restart of node(s) ${IDS[*]} failed"
    fi
    print_nodes "${IDS[@]}"
}

# under_replicated — GET /v1/cluster's under_replicated_partitions from any live node; prints
# nothing when no node answers or the field is missing.
under_replicated() {
    local addr body
    addr="$(any_live_node_addr)" || return 0
    body="$(ccurl -s --max-time 5 "$CL_SCHEME://$addr/v1/cluster" 2>/dev/null)" || return 0
    if [[ "$body" =~ \"under_replicated_partitions\":[[:space:]]*([0-9]+) ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# wait_fully_replicated TIMEOUT — wait until every partition has a leader and every follower is
# in sync.
wait_fully_replicated() {
    local deadline=$(($(now_s) + $1)) n=""
    while (($(now_s) < deadline)); do
        n="$(under_replicated)"
        [[ "$n" == 0 ]] && return 0
        sleep 0.5
    done
    warn "still ${n:-?} under-replicated partition(s) after $1 s"
    return 1
}

cmd_rolling_restart() {
    local timeout="${TIMEOUT:-120}" id addr started
    local -a ids=()
    load_cluster_env "$DIR"
    if ((${#IDS[@]} > 0)); then
        require_ids
        ids=("${IDS[@]}")
    else
        mapfile -t ids < <(all_ids)
    fi
    [[ -x "$CL_BIN" ]] || die "binary $CL_BIN (from $DIR/cluster.env) is missing"
    lock_dir
    started="$(now_s)"
    for id in "${ids[@]}"; do
        wait_fully_replicated "$timeout" ||
            die "not restarting node $id: the cluster is not fully replicated"
        info "rolling restart: node $id"
        graceful_stop 20 "$id"
        relaunch "$id"
        wait_ready "$timeout" "$id" || die "node $id did not become ready after its restart"
    done
    wait_fully_replicated "$timeout" || die "the cluster is not fully replicated after the restarts"
    # A node just back may still be a few entries behind (target_not_ready): a few rounds.
    local round body
    for round in 1 2 3 4 5 6 7 8 9 10; do
        addr="$(any_live_node_addr)" || break
        body="$(ccurl -s --max-time 60 -XPOST "$CL_SCHEME://$addr/v1/cluster/rebalance-leaders")" || body=""
        [[ -n "$body" && "$body" != *target_not_ready* && "$body" != *timed_out* ]] && break
        ((round < 10)) || warn "some leaderships are not back on their preferred replicas yet (nodes retry every --leader-rebalance-interval-ms)"
        sleep 1
    done
    info "rolling restart of node(s) ${ids[*]} done in $(($(now_s) - started)) s"
}

# cmd_signal SIGNAL VERB — pause/resume.
cmd_signal() {
    local sig="$1" verb="$2" id pid
    load_cluster_env "$DIR"
    require_ids
    lock_dir
    for id in "${IDS[@]}"; do
        if pid="$(node_pid "$DIR" "$id")"; then
            kill "-$sig" "$pid"
            info "node $id (pid $pid): $verb (SIG$sig)"
        else
            die "node $id is not running"
        fi
    done
}

cmd_add_node() {
    local id port ndir
    need_cmd curl "apt-get install -y curl"
    ((${#IDS[@]} == 0)) || die "add-node takes no node ids (use --id N to choose the new node's id)"
    load_cluster_env "$DIR"
    [[ -x "$CL_BIN" ]] || die "binary $CL_BIN (from $DIR/cluster.env) is missing"
    lock_dir
    # Read again under the lock: a concurrent add-node may have raised NODES.
    load_cluster_env "$DIR"
    id="${NEW_ID:-$((CL_NODES + 1))}"
    ((id > CL_NODES)) ||
        die "--id $id is taken: this cluster has nodes up to $CL_NODES (ids are never reused)"
    port="$(node_port "$id")"
    ((port <= 65535)) || die "node $id's port $port is out of range"
    if port_in_use "$port" "$CL_HOST"; then
        die "port $port on $CL_HOST (node $id) is already in use"
    fi
    any_live_node_addr >/dev/null || die "no node of $DIR answers /healthz: start the cluster first"
    ndir="$(node_dir "$DIR" "$id")"
    [[ ! -e "$ndir" ]] || die "$ndir already exists"
    mkdir -p "$ndir"
    # The marker that makes launch_node (now and on every restart) use --join.
    : >"$ndir/join"
    set_cluster_nodes "$id"
    launch_node "$id"
    info "node $id joining through $(<"$ndir/join") (pid $(node_pid "$DIR" "$id" || printf 'exited'))"
    if ((NO_WAIT == 0)); then
        wait_ready "$(ready_timeout)" "$id" ||
            die "node $id did not become ready (its log: $ndir/node.log; it stays recorded, stop it with '$PROG stop $id --dir $DIR')"
    fi
    heading "Node $id joined the cluster in $DIR"
    print_nodes "$id"
    printf '\nSpread replicas onto it with: raftka cluster rebalance --bootstrap %s\n' "$(node_addr 1)"
}

cmd_wait_ready() {
    local -a ids=()
    load_cluster_env "$DIR"
    if ((${#IDS[@]} > 0)); then
        require_ids
        ids=("${IDS[@]}")
    else
        mapfile -t ids < <(all_ids)
    fi
    wait_ready "$(ready_timeout)" "${ids[@]}" || die "node(s) not ready"
}

main() {
    parse_args "$@"
    case "$CMD" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        kill) cmd_kill ;;
        restart) cmd_restart ;;
        rolling-restart) cmd_rolling_restart ;;
        pause) cmd_signal STOP paused ;;
        resume) cmd_signal CONT resumed ;;
        wait-ready) cmd_wait_ready ;;
        add-node) cmd_add_node ;;
        *) die "unknown command '$CMD' (see $PROG --help)" ;;
    esac
}

main "$@"

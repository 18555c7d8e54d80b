#!/usr/bin/env bash
# The fault harness's network: one namespace per node and one for the clients, on a bridge that
# lives in a namespace of its own. See `jepsen/netns.sh --help`.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

PROG="jepsen/netns.sh"
PREFIX=rkj                  # keep in sync with jepsen/src/harness/topology.rs
BRIDGE_NS="$PREFIX-br"
BRIDGE="${PREFIX}0"
CLIENT_NS="$PREFIX-c"
CLIENT_IP=198.18.0.2        # 198.18.0.0/15: the benchmarking range (RFC 2544)
NODE_PORT=9092

usage() {
    cat <<EOF
Usage: $PROG COMMAND [ARGS]

The network of the fault harness (jepsen/run builds and removes it for you):

    namespace $BRIDGE_NS: bridge $BRIDGE, no address
    namespace $CLIENT_NS:  eth0 $CLIENT_IP/24         (the harness and its clients)
    namespace $PREFIX-nI:  eth0 198.18.0.(10+I)/24    (node I, port $NODE_PORT)

Every namespace has only lo and one veth on the bridge, and no default route: nothing can
leave the test's own hosts.

Commands:
  up [-n N]          Create the network for N nodes (default 5). Fails if any of its
                     namespaces already exists (run 'down' after a crashed run).
  down               Delete every namespace named $PREFIX-* (their veths go with them). Nodes
                     still running inside are not touched: stop them first (jepsen/run does).
  status             List the namespaces and their addresses and nft tables.
  exec ID|c CMD...   Run CMD inside node ID's namespace (or the client namespace with 'c'),
                     e.g. '$PROG exec 2 nft list ruleset'.
  start ID DIR BIN [ARGS...]
                     Start node ID by hand inside its namespace (the namespace-aware variant
                     of scripts/cluster.sh): data in DIR/node-ID/data, log in
                     DIR/node-ID/node.log, PID in DIR/node-ID/pid. ARGS go to raftka-node.
                     --peers names every node namespace, or only nodes 1..\$RKJ_NODES when
                     set (jepsen/run makes spare namespaces for nodes that join later; start
                     one of those by hand with RKJ_JOIN=198.18.0.11:$NODE_PORT, which passes
                     --join instead of --peers).
  kill ID DIR        SIGKILL node ID started by 'start' (checked against /proc/PID/cmdline).
  help               Show this help.
EOF
}

node_ns() { printf '%s-n%s' "$PREFIX" "$1"; }
node_ip() { printf '198.18.0.%s' "$((10 + $1))"; }

our_namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}-(br|c|n[0-9]+)$" || true
}

# veth NS IFNAME IP — a veth from the bridge to namespace NS, named eth0 inside it.
veth() {
    local ns="$1" host="$2" addr="$3"
    ip -n "$BRIDGE_NS" link add "$host" type veth peer name eth0 netns "$ns"
    ip -n "$BRIDGE_NS" link set "$host" master "$BRIDGE"
    ip -n "$BRIDGE_NS" link set "$host" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
}

cmd_up() {
    local n=5 id existing
    while (($# > 0)); do
        case "$1" in
            -n | --nodes)
                n="${2:?$1 needs a value}"
                shift 2
                ;;
            *) die "up: unknown argument '$1'" ;;
        esac
    done
    if ! is_uint "$n" || ((n < 1 || n > 200)); then
        die "up: bad node count '$n'"
    fi
    existing="$(our_namespaces)"
    [[ -z "$existing" ]] ||
        die "namespaces already exist: $(echo "$existing" | tr '\n' ' ')(remove them with: $PROG down)"
    need_cmd ip "apt-get install iproute2"
    ip netns add "$BRIDGE_NS"
    ip -n "$BRIDGE_NS" link set lo up
    ip -n "$BRIDGE_NS" link add "$BRIDGE" type bridge
    ip -n "$BRIDGE_NS" link set "$BRIDGE" up
    ip netns add "$CLIENT_NS"
    veth "$CLIENT_NS" "vc" "$CLIENT_IP"
    for ((id = 1; id <= n; id++)); do
        ip netns add "$(node_ns "$id")"
        veth "$(node_ns "$id")" "vn$id" "$(node_ip "$id")"
    done
    # No namespace may have a default route (nothing leaves the test's hosts).
    for ns in $(our_namespaces); do
        if ip -n "$ns" route show default | grep -q .; then
            die "namespace $ns has a default route"
        fi
    done
    info "network up: $n nodes, client namespace $CLIENT_NS"
}

cmd_down() {
    local ns
    for ns in $(our_namespaces); do
        ip netns delete "$ns" || warn "could not delete namespace $ns"
    done
}

cmd_status() {
    local ns
    for ns in $(our_namespaces); do
        printf '%s: %s\n' "$ns" "$(ip -n "$ns" -4 -o addr show 2>/dev/null | awk '$2 != "lo" {print $2, $4}' | tr '\n' ' ')"
        if ip netns exec "$ns" nft list tables 2>/dev/null | grep -q .; then
            ip netns exec "$ns" nft list ruleset | sed 's/^/    /'
        fi
    done
}

cmd_exec() {
    local target="${1:?exec: which node (or c)?}"
    shift
    if [[ "$target" == c ]]; then
        exec ip netns exec "$CLIENT_NS" "$@"
    fi
    is_uint "$target" || die "exec: bad node id '$target'"
    exec ip netns exec "$(node_ns "$target")" "$@"
}

cmd_start() {
    local id="${1:?start: node id}" dir="${2:?start: directory}" bin="${3:?start: raftka-node binary}"
    shift 3
    is_uint "$id" || die "start: bad node id '$id'"
    local nodes peers="" i ndir
    nodes="$(our_namespaces | grep -c -E "^${PREFIX}-n[0-9]+$" || true)"
    ((nodes >= id)) || die "start: no namespace for node $id (run: $PROG up)"
    if [[ -n "${RKJ_NODES:-}" ]]; then
        if ! is_uint "$RKJ_NODES" || ((RKJ_NODES > nodes)); then
            die "start: bad RKJ_NODES '$RKJ_NODES'"
        fi
        nodes="$RKJ_NODES"
    fi
    for ((i = 1; i <= nodes; i++)); do
        peers+="${peers:+,}$i=$(node_ip "$i"):$NODE_PORT"
    done
    local -a membership=(--peers "$peers")
    [[ -z "${RKJ_JOIN:-}" ]] || membership=(--join "$RKJ_JOIN")
    ndir="$(abspath "$dir")/node-$id"
    mkdir -p "$ndir/data"
    # A node with peers needs the cluster secret: unless the caller's environment gives one,
    # every node started in this directory shares a random one in DIR/secret.
    if [[ -z "${RAFTKA_CLUSTER_SECRET:-}${RAFTKA_CLUSTER_SECRET_FILE:-}" ]]; then
        local secret
        secret="$(abspath "$dir")/secret"
        [[ -s "$secret" ]] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$secret")
        membership+=(--secret-file "$secret")
    fi
    ip netns exec "$(node_ns "$id")" "$(abspath "$bin")" --id "$id" \
        --listen "$(node_ip "$id"):$NODE_PORT" --data-dir "$ndir/data" "${membership[@]}" "$@" \
        >"$ndir/stdout" 2>>"$ndir/node.log" </dev/null &
    echo $! >"$ndir/pid"
    info "node $id: pid $!, $(node_ip "$id"):$NODE_PORT, log $ndir/node.log"
}

cmd_kill() {
    local id="${1:?kill: node id}" dir="${2:?kill: directory}" ndir pid
    ndir="$(abspath "$dir")/node-$id"
    pid="$(cat "$ndir/pid" 2>/dev/null || true)"
    if pid_is_node "$pid" "$ndir/data" raftka-node; then
        kill -KILL "$pid"
    else
        warn "node $id is not running"
    fi
}

main() {
    local cmd="${1:-help}"
    shift || true
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        status) cmd_status ;;
        exec) cmd_exec "$@" ;;
        start) cmd_start "$@" ;;
        kill) cmd_kill "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 1
            ;;
    esac
}

main "$@"

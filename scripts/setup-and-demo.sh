#!/usr/bin/env bash
# From a fresh machine to a running 3-node Raftka cluster with demo data:
#   installs missing system packages, builds raftka-node, starts the cluster, runs the demo.
# The cluster is left running; the script ends by printing how to stop it.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/setup-and-demo.sh"
# What building (RocksDB's bindgen needs libclang) and the scripts (curl) need.
APT_PACKAGES=(clang libclang-dev curl)

usage() {
    cat <<EOF
Usage: $PROG [--dir DIR] [--base-port P] [--skip-apt]

  1. installs the missing ones of: ${APT_PACKAGES[*]} (apt-get update first; needs root or sudo)
  2. cargo build -p raftka-node
  3. scripts/cluster.sh start -n 3 (or reuses a cluster already running in DIR)
  4. scripts/demo.sh
and leaves the cluster running.

Options:
  --dir DIR        Cluster directory (default: ${RAFTKA_CLUSTER_DIR:-<repo>/.cluster}).
  --base-port P    HTTP port of node 1 (default 19091; nodes use P, P+1, P+2).
  --skip-apt       Do not check or install system packages.
  -h, --help       Show this help.
EOF
}

DIR=""
BASE_PORT=""
SKIP_APT=0
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
        --base-port)
            BASE_PORT="${2:?--base-port needs a value}"
            shift 2
            ;;
        --skip-apt)
            SKIP_APT=1
            shift
            ;;
        *) die "unknown argument '$1' (see $PROG --help)" ;;
    esac
done
DIR="$(abspath "${DIR:-$(default_cluster_dir)}")"

# ---------------------------------------------------------------------------------------------
heading "Step 1/4: system packages"
if ((SKIP_APT)); then
    info "skipped (--skip-apt)"
elif ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    warn "not a Debian/Ubuntu system: make sure these are installed yourself: ${APT_PACKAGES[*]}"
else
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    # RocksDB is C++: the cc crate needs a c++ compiler.
    if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
        missing+=(g++)
    fi
    if ((${#missing[@]} == 0)); then
        info "all present: ${APT_PACKAGES[*]}"
    else
        sudo_cmd=()
        if ((EUID != 0)); then
            need_cmd sudo "run this script as root to install: ${missing[*]}"
            sudo_cmd=(sudo)
        fi
        info "installing: ${missing[*]}"
        "${sudo_cmd[@]+"${sudo_cmd[@]}"}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]+"${sudo_cmd[@]}"}" \
            apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

# ---------------------------------------------------------------------------------------------
heading "Step 2/4: build raftka-node"
need_cmd cargo "install the Rust toolchain (rustup) first"
info "cargo build -p raftka-node (the first build compiles RocksDB and takes a while on 2 cores)"
(cd "$RAFTKA_ROOT" && cargo build -p raftka-node)
BIN="${CARGO_TARGET_DIR:-$RAFTKA_ROOT/target}/debug/raftka-node"
[[ -x "$BIN" ]] || die "build finished but $BIN is missing"

# ---------------------------------------------------------------------------------------------
heading "Step 3/4: start a 3-node cluster"
CLUSTER=("$RAFTKA_ROOT/scripts/cluster.sh")
running=0
if [[ -f "$DIR/cluster.env" ]]; then
    load_cluster_env "$DIR"
    for ((id = 1; id <= CL_NODES; id++)); do
        if node_pid "$DIR" "$id" >/dev/null; then
            running=1
        fi
    done
fi
if ((running)); then
    info "a cluster is already running in $DIR; reusing it"
    "${CLUSTER[@]}" wait-ready --dir "$DIR"
    "${CLUSTER[@]}" status --dir "$DIR"
else
    start_args=(start -n 3 --dir "$DIR" --bin "$BIN")
    if [[ -n "$BASE_PORT" ]]; then
        start_args+=(--base-port "$BASE_PORT")
    fi
    "${CLUSTER[@]}" "${start_args[@]}"
fi

# ---------------------------------------------------------------------------------------------
heading "Step 4/4: demo"
"$RAFTKA_ROOT/scripts/demo.sh" --dir "$DIR"

heading "The cluster is still running."
cat <<EOF
  status:        scripts/cluster.sh status --dir $DIR
  crash a node:  scripts/cluster.sh kill 2 --dir $DIR && scripts/cluster.sh restart 2 --dir $DIR
  stop it:       scripts/cluster.sh stop --dir $DIR
  API reference: docs/api.md
EOF

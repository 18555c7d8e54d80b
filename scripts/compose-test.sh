#!/usr/bin/env bash
# The compose deployment, end to end, with no registry: builds a Debian base image locally
# (debootstrap --variant=minbase, imported with `docker import`, cached), builds Raftka's image
# from it with the binaries of this checkout (Dockerfile target `prebuilt`), starts compose.yaml
# as its own project on free loopback ports, and checks:
#
#   1. the three containers become ready and form one cluster;
#   2. records produced through one container are consumed through another;
#   3. one container is stopped while producing continues through another, then started again;
#   4. every acknowledged record is read back once, through every container;
#   5. `down` leaves nothing of the project behind but its named volumes (removed at the end).
#
#   scripts/compose-test.sh [--bin-dir DIR]   (default: target/debug, as built by cargo test)
#
# Traffic goes only to the containers' ports published on 127.0.0.1. Every loop is bounded.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$RAFTKA_ROOT"
bin_dir=target/debug
while (($#)); do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        *) die "usage: $0 [--bin-dir DIR]" ;;
    esac
done
need_cmd docker
for b in raftka-node raftka; do
    [[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b is missing: build it (cargo build -p raftka-node -p raftka-client)"
done
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    die "neither 'docker compose' nor docker-compose is installed"
fi

# ---- the base image: Debian bookworm minbase, made here and cached ---------------------------
base_image="raftka-test-base:bookworm"
cache="${RAFTKA_TEST_CACHE:-/var/cache/raftka-test}"
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    tarball="$cache/bookworm-minbase.tar"
    if [[ ! -s "$tarball" ]]; then
        need_cmd debootstrap
        info "building a Debian bookworm minbase root filesystem (debootstrap, once per machine)"
        mkdir -p "$cache"
        rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
        debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
        tar -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    info "importing $tarball as $base_image"
    docker import "$tarball" "$base_image" >/dev/null
fi

# ---- Raftka's image from this checkout's binaries ---------------------------------------------
image="raftka:compose-test-$$"
info "building $image (target prebuilt, binaries from $bin_dir)"
docker build -q --target prebuilt --build-arg RUNTIME_IMAGE="$base_image" \
    --build-arg BIN_DIR="$bin_dir" -t "$image" . >/dev/null

# ---- the cluster ------------------------------------------------------------------------------
project="raftka-ci-$$"
# free_ports — pick three consecutive ports no one listens on, below the ephemeral range (where
# outgoing connections could hold them).
free_ports() {
    local p
    for _ in $(seq 1 50); do
        p=$((21000 + RANDOM % 11000))
        if ! port_in_use "$p" 127.0.0.1 && ! port_in_use $((p + 1)) 127.0.0.1 &&
            ! port_in_use $((p + 2)) 127.0.0.1; then
            base_port=$p
            export RAFTKA_PORT_1="$p" RAFTKA_PORT_2=$((p + 1)) RAFTKA_PORT_3=$((p + 2))
            return 0
        fi
    done
    die "no free ports"
}
# No RAFTKA_CLUSTER_SECRET: the raftka-secret service makes a random one (checked below).
export RAFTKA_IMAGE="$image"
unset RAFTKA_CLUSTER_SECRET
dc() { "${compose[@]}" -p "$project" -f compose.yaml "$@"; }
work="$(mktemp -d)"
cleanup() {
    local rc=$?
    if ((rc != 0)); then
        warn "compose test failed; container logs:"
        dc logs --no-color --tail 40 >&2 2>&1 || true
    fi
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    docker image rm -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
# A port taken between the check and the start (another process binding it): other ports.
for attempt in 1 2 3; do
    free_ports
    info "starting compose project $project on 127.0.0.1:$base_port-$((base_port + 2))"
    dc up -d --no-build >&2 && break
    ((attempt < 3)) || die "compose up failed 3 times"
    dc down -v >/dev/null 2>&1 || true
done

url() { printf 'http://127.0.0.1:%s' $((base_port + $1 - 1)); }
deadline=$(($(now_s) + 90))
for n in 1 2 3; do
    until [[ "$(http_code "$(url "$n")/readyz")" == 200 ]]; do
        (($(now_s) < deadline)) || die "container raftka-$n not ready within 90 s"
        sleep 0.5
    done
done
# Liveness comes from health probes between the nodes: wait for the first rounds.
deadline=$(($(now_s) + 30))
until [[ "$(curl -s "$(url 1)/v1/cluster" | grep -o '"alive":true' | wc -l)" == 3 ]]; do
    (($(now_s) < deadline)) || die "raftka-1 does not see 3 live nodes within 30 s"
    sleep 0.5
done
info "3 containers ready, one cluster"
secret="$(dc exec -T raftka-1 cat /run/raftka-secret/secret)"
[[ "$secret" =~ ^[0-9a-f]{64}$ ]] || die "the generated cluster secret is not 32 random bytes in hex"
info "the cluster secret was generated (32 random bytes), readable by the raftka user"

# ---- produce through raftka-1 while raftka-2 is stopped and started ---------------------------
code="$(curl -s -o "$work/create" -w '%{http_code}' -XPOST "$(url 1)/v1/topics" \
    -H 'content-type: application/json' \
    -d '{"name":"compose","partitions":3,"replication_factor":3}')"
[[ "$code" == 201 ]] || die "topic create: $code $(cat "$work/create")"

# produce_range FROM TO — one request per record through raftka-1; appends "value offset" of
# every acknowledged record to $work/acked. Bounded by the count and 60 s.
produce_range() {
    local i end=$(($(now_s) + 60)) body
    for ((i = $1; i < $2; i++)); do
        (($(now_s) < end)) || break
        body="$(curl -s --max-time 15 -XPOST "$(url 1)/v1/topics/compose/records" \
            -H 'content-type: application/json' \
            -d "{\"records\":[{\"key\":\"k$((i % 7))\",\"value\":\"v-$i\"}]}" || true)"
        if [[ "$body" =~ \"partition\":([0-9]+),\"offset\":([0-9]+) ]]; then
            printf 'v-%s %s %s\n' "$i" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" >>"$work/acked"
        fi
    done
}
: >"$work/acked"
produce_range 0 150
info "stopping raftka-2 while producing continues"
dc stop raftka-2 >&2
produce_range 150 300
info "starting raftka-2 again"
dc start raftka-2 >&2
deadline=$(($(now_s) + 90))
until [[ "$(http_code "$(url 2)/readyz")" == 200 ]]; do
    (($(now_s) < deadline)) || die "raftka-2 not ready again within 90 s"
    sleep 0.5
done
produce_range 300 400
acked=$(wc -l <"$work/acked")
((acked >= 300)) || die "only $acked of 400 produce requests were acknowledged"
info "$acked records acknowledged through raftka-1"

# ---- read everything back through each container ---------------------------------------------
# read_all N — every record of every partition through container N, as "value partition offset".
read_all() {
    local n="$1" p offset hw body
    for p in 0 1 2; do
        offset=0
        for _ in $(seq 1 100); do
            body="$(curl -s --max-time 15 "$(url "$n")/v1/topics/compose/partitions/$p/records?offset=$offset&max_records=1000")"
            [[ "$body" =~ \"high_watermark\":([0-9]+) ]] || die "fetch via raftka-$n: $body"
            hw="${BASH_REMATCH[1]}"
            grep -o '"offset":[0-9]*,"timestamp_ms":[0-9-]*,"key":"[^"]*","value":"v-[0-9]*"' <<<"$body" |
                sed -E "s/\"offset\":([0-9]+),.*\"value\":\"(v-[0-9]+)\"/\2 $p \1/"
            offset=$(grep -o '"offset":[0-9]*' <<<"$body" | tail -n1 | cut -d: -f2)
            offset=$((${offset:--1} + 1))
            ((offset < hw)) || break
        done
    done
}
for n in 1 2 3; do
    deadline=$(($(now_s) + 30))
    while :; do
        read_all "$n" | sort >"$work/read-$n"
        missing="$(sort "$work/acked" | comm -23 - "$work/read-$n" | wc -l)"
        ((missing == 0)) && break
        (($(now_s) < deadline)) || die "via raftka-$n: $missing acknowledged record(s) missing or at another offset"
        sleep 1
    done
    twice="$(cut -d' ' -f1 "$work/read-$n" | sort | uniq -d | wc -l)"
    ((twice == 0)) || die "via raftka-$n: $twice value(s) stored twice"
done
cmp -s "$work/read-1" "$work/read-2" && cmp -s "$work/read-1" "$work/read-3" ||
    die "the containers serve different logs"
info "every acknowledged record read back once, at its offset, through each container"

# ---- down leaves only the named volumes ------------------------------------------------------
dc down >&2
left_containers="$(docker ps -a --filter "label=com.docker.compose.project=$project" -q | wc -l)"
left_networks="$(docker network ls --filter "label=com.docker.compose.project=$project" -q | wc -l)"
volumes="$(docker volume ls --filter "label=com.docker.compose.project=$project" -q | wc -l)"
((left_containers == 0 && left_networks == 0)) ||
    die "down left $left_containers container(s) and $left_networks network(s)"
((volumes == 4)) || die "expected the 4 named volumes (3 data, 1 secret) to survive down, found $volumes"
info "down left only the 4 named volumes (now removed)"
echo "compose test: 1 passed, 0 failed"

#!/usr/bin/env bash
# Compare Raftka with NATS JetStream (3 nodes, R3, file storage) and Redis Streams (one node,
# appendfsync always and everysec) on this machine, in one run, over loopback only, and print
# the ratios. See `scripts/bench-compare.sh --help` and docs/benchmarks.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROG="scripts/bench-compare.sh"
RECORDS=200000
SIZE=100
MAX_SECONDS=300
LATENCY_RATE=2000
LATENCY_RECORDS=10000
IDLE_PARTITIONS=1000
IDLE_SECONDS=30
FAILOVER_RUNS=5
IDLE_WARMUP=15
IDLE_READY_TIMEOUT=600
WORK="${TMPDIR:-/tmp}/raftka-bench-compare"
NODE_BIN=""
RAFTKA_BIN=""
# Ports, all on 127.0.0.1 and below the ephemeral range: Raftka's comparison cluster
# 27091-27093, the failover cluster 27191-27193, the idle cluster 27291-27293 (not
# measure-idle.sh's default 26291, so a measure-idle.sh run of its own does not collide), NATS
# 14222-14224 (clients), 18222-18224 (monitoring), 16222-16224 (routes), Redis 16379.
RAFTKA_BASE_PORT=27091
FAILOVER_BASE_PORT=27191
IDLE_BASE_PORT=27291
NATS_PORT=14222
NATS_HTTP_PORT=18222
NATS_ROUTE_PORT=16222
REDIS_PORT=16379

usage() {
    cat <<USAGE
Usage: $PROG [OPTIONS]

Runs, one after the other on this machine and over loopback only:
  1. Raftka: a 3-node cluster (scripts/cluster.sh), raftka bench produce (batches of 100,
     16 requests in flight, verified) and raftka bench consume of the same records, then
     raftka bench e2e at a fixed rate (end-to-end latency, produce to consume);
  2. NATS JetStream 2.9 (Debian nats-server): 3 servers, stream with 3 replicas on file
     storage; acked publish (4 connections x 128 unacknowledged publishes) and a pull consume
     of the same messages (batches of 1000, no acks), then the fixed-rate end-to-end run;
  3. Redis Streams 7 (Debian redis-server), one node, appendfsync always, then everysec:
     XADD with 256 requests in flight, XREAD in reads of 1000, and redis-benchmark XADD
     (50 connections x 32 pipelined), then the fixed-rate end-to-end run (XREAD BLOCK);
  4. Raftka's idle cost: scripts/measure-idle.sh for each --idle-partitions count (a 3-node
     cluster with that many RF-3 partitions and no traffic: CPU % of a core and RSS per node);
  5. Raftka's leader failover: a 3-node cluster and scripts/measure-failover.sh --runs N (time
     from SIGKILL of a partition's leader to the first acknowledged produce);
then prints every figure, the throughput ratios Raftka / peer, one latency table for all
systems, the idle cost and the failover gaps.

The fixed-rate end-to-end runs send one record every 1/RATE s on an absolute schedule (a late
send is not made up by the next ones' waits), each carrying its send time; a consumer in the
same process records receive time minus send time. Raftka uses raftka bench e2e (3 partitions,
one long-polling consumer each); NATS and Redis use the load generator below (one stream, one
consumer: a JetStream pull consumer, or XREAD BLOCK on its own connection).

Raftka runs on release binaries: unless --node-bin and --raftka-bin are both given, the script
first runs cargo build --release --locked -p raftka-node -p raftka-client --bins and takes the
missing ones from \${CARGO_TARGET_DIR:-<repo>/target}/release.

nats-server, redis-server and redis-benchmark are installed with apt-get when missing. There is
no NATS load generator in Debian's packages, so the script writes a small Rust one (async-nats
and redis-rs, from crates.io) to WORK/peer-bench and builds it there, outside the repository.
Every run is bounded by its record count and by --max-seconds (idle and failover by their own
windows and a timeout). Only processes this script started are stopped.

Options:
  --records N       records (messages) per throughput run (default $RECORDS)
  --record-size B   value size in bytes (default $SIZE)
  --max-seconds S   bound of each throughput and latency run (default $MAX_SECONDS)
  --latency-rate R  records/s of the fixed-rate end-to-end runs (default $LATENCY_RATE)
  --latency-records N
                    records of each fixed-rate run (default $LATENCY_RECORDS; fewer when
                    --max-seconds ends the schedule first)
  --idle-partitions LIST
                    comma-separated partition counts for measure-idle.sh, e.g. 1000,10000
                    (default $IDLE_PARTITIONS; 0 or none: no idle measurement)
  --idle-seconds S  measure-idle.sh's measurement window (default $IDLE_SECONDS)
  --idle-base-port P
                    port of the idle cluster's node 1 (default $IDLE_BASE_PORT)
  --failover-runs N measure-failover.sh runs (default $FAILOVER_RUNS; 0: no failover measurement)
  --work DIR        scratch directory (default $WORK); its data is wiped at start
  --node-bin PATH   raftka-node binary (default: the release build, see above)
  --raftka-bin PATH raftka CLI (default: the release build, see above)
  --only PART       run only some parts (repeatable, or comma-separated). PART is a system,
                    raftka, nats or redis, or a kind of figure, throughput, latency, idle or
                    failover (idle and failover are Raftka's only). Systems and kinds combine:
                    what runs is every given kind (all when none is given) for every given
                    system (all when none is given). Examples: --only latency (the three
                    systems' fixed-rate runs), --only idle, --only failover, --only nats
                    (NATS throughput and latency), --only raftka,latency (Raftka's e2e only)
  -h, --help        this help

Ports (127.0.0.1): Raftka $RAFTKA_BASE_PORT-$((RAFTKA_BASE_PORT + 2)), failover cluster \
$FAILOVER_BASE_PORT-$((FAILOVER_BASE_PORT + 2)), idle cluster $IDLE_BASE_PORT-$((IDLE_BASE_PORT + 2)),
NATS $NATS_PORT-$((NATS_PORT + 2)), $NATS_HTTP_PORT-$((NATS_HTTP_PORT + 2)) and \
$NATS_ROUTE_PORT-$((NATS_ROUTE_PORT + 2)), Redis $REDIS_PORT. Each must be free.
USAGE
}

ONLY=()
while (($# > 0)); do
    case "$1" in
        --records) RECORDS="${2:?}"; shift 2 ;;
        --record-size) SIZE="${2:?}"; shift 2 ;;
        --max-seconds) MAX_SECONDS="${2:?}"; shift 2 ;;
        --latency-rate) LATENCY_RATE="${2:?}"; shift 2 ;;
        --latency-records) LATENCY_RECORDS="${2:?}"; shift 2 ;;
        --idle-partitions) IDLE_PARTITIONS="${2:?}"; shift 2 ;;
        --idle-seconds) IDLE_SECONDS="${2:?}"; shift 2 ;;
        --idle-base-port) IDLE_BASE_PORT="${2:?}"; shift 2 ;;
        --failover-runs) FAILOVER_RUNS="${2:?}"; shift 2 ;;
        --work) WORK="$(abspath "${2:?}")"; shift 2 ;;
        --node-bin) NODE_BIN="$(abspath "${2:?}")"; shift 2 ;;
        --raftka-bin) RAFTKA_BIN="$(abspath "${2:?}")"; shift 2 ;;
        --only) IFS=, read -r -a parts <<<"${2:?}"; ONLY+=("${parts[@]}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see $PROG --help)" ;;
    esac
done
for v in RECORDS SIZE MAX_SECONDS LATENCY_RATE LATENCY_RECORDS IDLE_SECONDS; do
    if ! is_uint "${!v}" || ((${!v} == 0)); then
        die "--records, --record-size, --max-seconds, --latency-rate, --latency-records and --idle-seconds take positive numbers ($v=${!v})"
    fi
done
if ! is_uint "$IDLE_BASE_PORT" || ((IDLE_BASE_PORT == 0 || IDLE_BASE_PORT > 65533)); then
    die "--idle-base-port takes a port number, not '$IDLE_BASE_PORT'"
fi
is_uint "$FAILOVER_RUNS" || die "--failover-runs takes a whole number, not '$FAILOVER_RUNS'"
IDLE_LIST=()
if [[ "$IDLE_PARTITIONS" != none && "$IDLE_PARTITIONS" != 0 ]]; then
    IFS=, read -r -a IDLE_LIST <<<"$IDLE_PARTITIONS"
    for p in "${IDLE_LIST[@]}"; do
        if ! is_uint "$p" || ((p == 0)); then
            die "--idle-partitions takes positive counts separated by commas, or 0 or none, not '$IDLE_PARTITIONS'"
        fi
    done
fi

# What runs: systems x kinds (idle and failover are Raftka's).
SYS_RAFTKA=1 SYS_NATS=1 SYS_REDIS=1
KIND_THROUGHPUT=1 KIND_LATENCY=1 KIND_IDLE=1 KIND_FAILOVER=1
if ((${#ONLY[@]} > 0)); then
    sys_given=0 kind_given=0
    for o in "${ONLY[@]}"; do
        case "$o" in
            raftka | nats | redis)
                ((sys_given)) || SYS_RAFTKA=0 SYS_NATS=0 SYS_REDIS=0
                sys_given=1
                case "$o" in raftka) SYS_RAFTKA=1 ;; nats) SYS_NATS=1 ;; redis) SYS_REDIS=1 ;; esac
                ;;
            throughput | latency | idle | failover)
                ((kind_given)) || KIND_THROUGHPUT=0 KIND_LATENCY=0 KIND_IDLE=0 KIND_FAILOVER=0
                kind_given=1
                case "$o" in
                    throughput) KIND_THROUGHPUT=1 ;;
                    latency) KIND_LATENCY=1 ;;
                    idle) KIND_IDLE=1 ;;
                    failover) KIND_FAILOVER=1 ;;
                esac
                ;;
            *) die "--only takes raftka, nats, redis, throughput, latency, idle or failover, not '$o'" ;;
        esac
    done
fi
RUN_RAFTKA_THROUGHPUT=$((SYS_RAFTKA && KIND_THROUGHPUT))
RUN_RAFTKA_LATENCY=$((SYS_RAFTKA && KIND_LATENCY))
RUN_NATS_THROUGHPUT=$((SYS_NATS && KIND_THROUGHPUT))
RUN_NATS_LATENCY=$((SYS_NATS && KIND_LATENCY))
RUN_REDIS_THROUGHPUT=$((SYS_REDIS && KIND_THROUGHPUT))
RUN_REDIS_LATENCY=$((SYS_REDIS && KIND_LATENCY))
RUN_RAFTKA=$((RUN_RAFTKA_THROUGHPUT || RUN_RAFTKA_LATENCY))
RUN_NATS=$((RUN_NATS_THROUGHPUT || RUN_NATS_LATENCY))
RUN_REDIS=$((RUN_REDIS_THROUGHPUT || RUN_REDIS_LATENCY))
RUN_IDLE=$((SYS_RAFTKA && KIND_IDLE && ${#IDLE_LIST[@]} > 0))
RUN_FAILOVER=$((SYS_RAFTKA && KIND_FAILOVER && FAILOVER_RUNS > 0))
if ! ((RUN_RAFTKA || RUN_NATS || RUN_REDIS || RUN_IDLE || RUN_FAILOVER)); then
    die "nothing to run: --only ${ONLY[*]} with --idle-partitions $IDLE_PARTITIONS and --failover-runs $FAILOVER_RUNS selects no measurement"
fi

# The end-to-end values carry a 29-byte header (send time and id).
LATENCY_SIZE=$((SIZE < 29 ? 29 : SIZE))
RESULTS="$WORK/results"
STARTED_PIDS=()
# Cluster directories (scripts/cluster.sh --dir) this script started a cluster in.
CLUSTER_DIRS=()

# stop_pids PID... — SIGTERM the given PIDs this script started, wait up to 10 s, then SIGKILL.
stop_pids() {
    local pid deadline
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$(($(now_s) + 10))
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && (($(now_s) < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    if ((${#STARTED_PIDS[@]} > 0)); then
        stop_pids "${STARTED_PIDS[@]}"
        STARTED_PIDS=()
    fi
    local dir
    for dir in ${CLUSTER_DIRS[@]+"${CLUSTER_DIRS[@]}"}; do
        stop_cluster "$dir"
    done
    CLUSTER_DIRS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_cluster DIR — stop the cluster this script started in DIR (cluster.sh only signals the
# PIDs recorded there, after checking they still run that node).
stop_cluster() {
    "$RAFTKA_ROOT/scripts/cluster.sh" stop --dir "$1" >/dev/null 2>&1 || true
}

# claim_cluster DIR BASE_PORT — checks the 3 ports are free and records DIR for cleanup.
claim_cluster() {
    local port
    for ((port = $2; port < $2 + 3; port++)); do
        ensure_port_free "$port"
    done
    CLUSTER_DIRS+=("$1")
}

# start_cluster DIR BASE_PORT — a 3-node cluster of $NODE_BIN on 127.0.0.1:BASE_PORT..+2.
start_cluster() {
    local dir="$1" base="$2"
    claim_cluster "$dir" "$base"
    "$RAFTKA_ROOT/scripts/cluster.sh" start -n 3 --clean --dir "$dir" --base-port "$base" \
        --bin "$NODE_BIN" >/dev/null
}

# ensure_raftka_bins — release builds of raftka-node and raftka unless both were given.
ensure_raftka_bins() {
    local need_node=$((RUN_RAFTKA || RUN_IDLE || RUN_FAILOVER)) need_cli=$RUN_RAFTKA target
    if ((need_node && ${#NODE_BIN} == 0 || need_cli && ${#RAFTKA_BIN} == 0)); then
        need_cmd cargo "install Rust from the rustup toolchain"
        info "building release binaries (cargo build --release --locked -p raftka-node -p raftka-client --bins)"
        (cd "$RAFTKA_ROOT" && cargo build --release --locked -p raftka-node -p raftka-client --bins) >&2
        # cargo takes a relative CARGO_TARGET_DIR from where it runs: the repository here.
        target="${CARGO_TARGET_DIR:-target}"
        [[ "$target" == /* ]] || target="$RAFTKA_ROOT/$target"
        NODE_BIN="${NODE_BIN:-$target/release/raftka-node}"
        RAFTKA_BIN="${RAFTKA_BIN:-$target/release/raftka}"
    fi
    if ((need_node)); then [[ -x "$NODE_BIN" ]] || die "raftka-node $NODE_BIN is missing"; fi
    if ((need_cli)); then [[ -x "$RAFTKA_BIN" ]] || die "raftka CLI $RAFTKA_BIN is missing"; fi
}

# ensure_packages — install nats-server / redis-server / redis-benchmark when missing.
ensure_packages() {
    local -a missing=()
    if ((RUN_NATS)) && ! command -v nats-server >/dev/null 2>&1; then missing+=(nats-server); fi
    if ((RUN_REDIS)) && ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
    if ((RUN_REDIS)) && ! command -v redis-benchmark >/dev/null 2>&1; then missing+=(redis-tools); fi
    if ((${#missing[@]} > 0)); then
        need_cmd apt-get "this script installs ${missing[*]} with apt-get (Debian)"
        info "installing ${missing[*]} (apt-get)"
        local sudo=()
        if ((EUID != 0)); then sudo=(sudo); fi
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ensure_port_free PORT
ensure_port_free() {
    if port_in_use "$1" 127.0.0.1; then
        die "port $1 on 127.0.0.1 is in use; stop what uses it first"
    fi
}

# record_cpu NAME BEFORE PIDS... — store the server CPU seconds used since BEFORE.
record_cpu() {
    local name="$1" before="$2"
    shift 2
    awk -v a="$(cpu_seconds "$@")" -v b="$before" 'BEGIN { printf "%.2f\n", a - b }' >"$RESULTS/$name.cpu"
}

# ratio A B — A/B with two decimals, or "-" when either is missing.
ratio() {
    if [[ -n "$1" && -n "$2" ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
    else
        printf '%s' "-"
    fi
}

# build_peer_bench — the throwaway NATS/Redis load generator, built outside the repository.
build_peer_bench() {
    need_cmd cargo "install Rust from the rustup toolchain"
    local dir="$WORK/peer-bench"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<'TOML'
[package]
name = "peer-bench"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
async-nats = "0.51"
redis = { version = "1.8", features = ["tokio-comp"] }
tokio = { version = "1", features = ["full"] }
hdrhistogram = "7.5"
futures = "0.3"
bytes = "1"

[workspace]
TOML
    cat >"$dir/src/main.rs" <<'RS'
// peer-bench: a throwaway load generator for NATS JetStream and Redis Streams, written and built
// by raftka's scripts/bench-compare.sh outside the repository. Prints one JSON line per run.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn report(name: &str, n: u64, secs: f64, h: &Histogram<u64>) {
    println!("{{\"bench\":\"{name}\",\"records\":{n},\"seconds\":{secs:.3},{}}}", figures(n, secs, h));
}

fn figures(n: u64, secs: f64, h: &Histogram<u64>) -> String {
    let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    format!(
        "\"records_per_sec\":{:.0},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}",
        n as f64 / secs, q(0.5), q(0.9), q(0.99), h.max() as f64 / 1000.0
    )
}

/// The fixed-rate end-to-end runs: what was sent and acknowledged, and the latency from send to
/// receipt of every record received (a histogram of microseconds).
struct E2e {
    sent: u64,
    acked: u64,
    got: u64,
    duplicates: u64,
    secs: f64,
    hist: Histogram<u64>,
}

fn report_e2e(name: &str, rate: u64, e: &E2e) {
    println!(
        "{{\"bench\":\"{name}\",\"latency_of\":\"end-to-end latency\",\"rate\":{rate},\"sent\":{},\"acked\":{},\"duplicates\":{},\"records\":{},\"seconds\":{:.3},{}}}",
        e.sent, e.acked, e.duplicates, e.got, e.secs, figures(e.got, e.secs, &e.hist)
    );
    if e.got < e.acked || e.duplicates > 0 {
        eprintln!("{name}: received {} of {} acknowledged records ({} duplicated)", e.got, e.acked, e.duplicates);
    }
}

/// A value of the end-to-end runs: send time (µs since the run's start, 16 digits), '-', the
/// record's id (12 digits), padded with 'x' to `size` bytes — the layout raftka bench e2e uses.
fn e2e_value(sent_us: u64, id: u64, pad: &str) -> String {
    format!("{sent_us:016}-{id:012}{pad}")
}

/// `(send time µs, id)` from a value written by `e2e_value`.
fn e2e_parse(v: &[u8]) -> Option<(u64, u64)> {
    let sent = std::str::from_utf8(v.get(..16)?).ok()?.parse().ok()?;
    let id = std::str::from_utf8(v.get(17..29)?).ok()?.parse().ok()?;
    Some((sent, id))
}

/// Receipts of the end-to-end runs: the latency histogram and which ids were seen.
struct Receipts {
    start: Instant,
    hist: Histogram<u64>,
    seen: Vec<u8>,
    got: u64,
    duplicates: u64,
}

impl Receipts {
    fn new(start: Instant, n: u64) -> Self {
        Receipts { start, hist: hist(), seen: vec![0; n as usize], got: 0, duplicates: 0 }
    }

    /// Records one received value; `now_us` is the receive time since the start.
    fn record(&mut self, now_us: u64, value: &[u8]) {
        let Some((sent_us, id)) = e2e_parse(value) else { return };
        let Some(slot) = self.seen.get_mut(id as usize) else { return };
        *slot = slot.saturating_add(1);
        if *slot == 1 {
            self.got += 1;
            self.hist.record(now_us.saturating_sub(sent_us).max(1)).ok();
        } else if *slot == 2 {
            self.duplicates += 1;
        }
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Sends `n` values at `rate`/s on an absolute schedule (record i is due at start + i/rate; a
/// late send does not shift the later ones), none due after `deadline`. `send` hands one value
/// to the client and returns a future of its acknowledgement, which is awaited in a task of its
/// own. Returns (sent, acknowledged).
async fn paced<F, Fut, A>(start: Instant, n: u64, rate: u64, size: usize, deadline: Instant, mut send: F) -> R<(u64, u64)>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = R<A>>,
    A: std::future::Future<Output = bool> + Send + 'static,
{
    let pad = "x".repeat(size.saturating_sub(29));
    let acked = Arc::new(AtomicU64::new(0));
    let mut acks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    for id in 0..n {
        let due = start + Duration::from_secs_f64(id as f64 / rate as f64);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let sent_us = start.elapsed().as_micros() as u64;
        let ack = send(e2e_value(sent_us, id, &pad)).await?;
        sent += 1;
        let acked = acked.clone();
        acks.spawn(async move {
            if ack.await {
                acked.fetch_add(1, Ordering::Relaxed);
            }
        });
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
    Ok((sent, acked.load(Ordering::Relaxed)))
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

#[tokio::main]
async fn main() -> R<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(num(a.len() - 1).max(1));
    match arg(1).as_str() {
        // nats-pub URL N SIZE CONNS INFLIGHT MAXSECS
        "nats-pub" => nats_pub(&arg(2), num(3), num(4) as usize, num(5) as usize, num(6) as usize, deadline).await,
        // nats-sub URL N MAXSECS
        "nats-sub" => nats_sub(&arg(2), num(3), deadline).await,
        // redis-xadd URL N SIZE INFLIGHT MAXSECS
        "redis-xadd" => redis_xadd(&arg(2), num(3), num(4) as usize, num(5) as usize, deadline).await,
        // redis-xread URL N MAXSECS
        "redis-xread" => redis_xread(&arg(2), num(3), deadline).await,
        // nats-e2e URL N RATE SIZE MAXSECS
        "nats-e2e" => nats_e2e(&arg(2), num(3), num(4).max(1), num(5) as usize, deadline).await,
        // redis-e2e URL N RATE SIZE MAXSECS
        "redis-e2e" => redis_e2e(&arg(2), num(3), num(4).max(1), num(5) as usize, deadline).await,
        other => Err(format!("unknown mode {other:?}").into()),
    }
}

/// (Re)creates stream NAME on SUBJECT: 3 replicas, file storage.
async fn create_stream(js: &async_nats::jetstream::Context, name: &str, subject: &str) -> R<()> {
    use async_nats::jetstream::stream;
    let _ = js.delete_stream(name).await;
    // The JetStream meta leader may still be electing: retry for up to 30 s.
    let mut tries = 0;
    loop {
        let created = js
            .create_stream(stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                num_replicas: 3,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => return Ok(()),
            Err(e) if tries < 60 => {
                tries += 1;
                eprintln!("create stream: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn nats_pub(url: &str, n: u64, size: usize, conns: usize, inflight: usize, deadline: Instant) -> R<()> {
    use async_nats::jetstream;
    // Connections are spread over the servers (one URL each, round-robin).
    let urls: Vec<&str> = url.split(',').collect();
    let js = jetstream::new(async_nats::connect(urls[0]).await?);
    create_stream(&js, "BENCH", "bench").await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let per = n / conns as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..conns {
        let js = jetstream::new(async_nats::connect(urls[i % urls.len()]).await?);
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let mut pending = std::collections::VecDeque::new();
            let mut done = 0u64;
            let mut sent = 0u64;
            while done < per && Instant::now() < deadline {
                while sent < per && pending.len() < inflight {
                    let t = Instant::now();
                    let ack = js.publish("bench", payload.clone()).await?;
                    pending.push_back((t, ack));
                    sent += 1;
                }
                if let Some((t, ack)) = pending.pop_front() {
                    ack.await?;
                    h.record(t.elapsed().as_micros().max(1) as u64).ok();
                    done += 1;
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((done, h))
        }));
    }
    let mut h = hist();
    let mut total = 0;
    for t in tasks {
        let (d, th) = t.await??;
        total += d;
        h.add(th).ok();
    }
    report("nats-publish-r3", total, start.elapsed().as_secs_f64(), &h);
    Ok(())
}

async fn nats_sub(url: &str, n: u64, deadline: Instant) -> R<()> {
    use async_nats::jetstream::{self, consumer};
    let first = url.split(',').next().unwrap_or(url);
    let js = jetstream::new(async_nats::connect(first).await?);
    let stream = js.get_stream("BENCH").await?;
    let c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let start = Instant::now();
    let mut h = hist();
    let mut got = 0u64;
    while got < n && Instant::now() < deadline {
        let t = Instant::now();
        let mut batch = c.fetch().max_messages(1000).messages().await?;
        while let Some(m) = batch.next().await {
            m?;
            got += 1;
        }
        h.record(t.elapsed().as_micros().max(1) as u64).ok();
    }
    report("nats-pull-consume", got, start.elapsed().as_secs_f64(), &h);
    Ok(())
}

async fn redis_xadd(url: &str, n: u64, size: usize, inflight: usize, deadline: Instant) -> R<()> {
    let client = redis::Client::open(url)?;
    let con = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("DEL").arg("bench").query_async(&mut con.clone()).await?;
    let value = "x".repeat(size);
    let per = n / inflight as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..inflight {
        let (mut con, value) = (con.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let mut done = 0;
            while done < per && Instant::now() < deadline {
                let t = Instant::now();
                let _: String = redis::cmd("XADD").arg("bench").arg("*").arg("v").arg(&value).query_async(&mut con).await?;
                h.record(t.elapsed().as_micros().max(1) as u64).ok();
                done += 1;
            }
            Ok::<_, redis::RedisError>((done, h))
        }));
    }
    let mut h = hist();
    let mut total = 0;
    for t in tasks {
        let (d, th) = t.await??;
        total += d;
        h.add(th).ok();
    }
    report("redis-xadd", total, start.elapsed().as_secs_f64(), &h);
    Ok(())
}

async fn redis_xread(url: &str, n: u64, deadline: Instant) -> R<()> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut last = "0-0".to_string();
    let start = Instant::now();
    let mut h = hist();
    let mut got = 0u64;
    while got < n && Instant::now() < deadline {
        let t = Instant::now();
        let reply: redis::Value = redis::cmd("XREAD").arg("COUNT").arg(1000).arg("STREAMS").arg("bench").arg(&last).query_async(&mut con).await?;
        h.record(t.elapsed().as_micros().max(1) as u64).ok();
        let entries = xread_entries(reply);
        if entries.is_empty() {
            break;
        }
        if let Some((id, _)) = entries.last() {
            last = id.clone();
        }
        got += entries.len() as u64;
    }
    report("redis-xread", got, start.elapsed().as_secs_f64(), &h);
    Ok(())
}

/// The entries of an XREAD reply for one stream, `[[stream, [[id, [field, value]], ...]]]`
/// (nil when a BLOCK timed out), as (id, first value).
fn xread_entries(reply: redis::Value) -> Vec<(String, Vec<u8>)> {
    use redis::Value;
    let entries = match reply {
        Value::Array(streams) => match streams.into_iter().next() {
            Some(Value::Array(mut s)) if s.len() == 2 => match s.pop() {
                Some(Value::Array(e)) => e,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Value::Array(mut parts) = e else { continue };
        let fields = parts.pop();
        let Some(Value::BulkString(id)) = parts.pop() else { continue };
        let value = match fields {
            Some(Value::Array(mut f)) if f.len() >= 2 => match f.swap_remove(1) {
                Value::BulkString(v) => v,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        out.push((String::from_utf8_lossy(&id).into_owned(), value));
    }
    out
}

/// Fixed-rate end to end on JetStream: the stream E2E (3 replicas, file storage), a pull
/// consumer (no acks) on the first server's connection, acked publishes from a connection to the
/// second server.
async fn nats_e2e(url: &str, n: u64, rate: u64, size: usize, deadline: Instant) -> R<()> {
    use async_nats::jetstream::{self, consumer};
    let urls: Vec<&str> = url.split(',').collect();
    let js = jetstream::new(async_nats::connect(urls[0]).await?);
    create_stream(&js, "E2E", "e2e").await?;
    let c: consumer::PullConsumer = js
        .get_stream("E2E")
        .await?
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = c.messages().await?;
    let publisher = jetstream::new(async_nats::connect(urls[1 % urls.len()]).await?);
    let start = Instant::now();
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let consumer = tokio::spawn({
        let expected = expected.clone();
        async move {
            let mut r = Receipts::new(start, n);
            while r.got < expected.load(Ordering::Relaxed) && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(m)) => {
                        let m = m?;
                        r.record(r.now_us(), &m.payload);
                    }
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(r)
        }
    });
    let (sent, acked) = paced(start, n, rate, size, deadline, |value| {
        let publisher = publisher.clone();
        async move {
            let ack = publisher.publish("e2e", value.into()).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(async move { ack.await.is_ok() })
        }
    })
    .await?;
    expected.store(acked, Ordering::Relaxed);
    let r = consumer.await??;
    let e = E2e { sent, acked, got: r.got, duplicates: r.duplicates, secs: start.elapsed().as_secs_f64(), hist: r.hist };
    report_e2e("nats-e2e-r3", rate, &e);
    Ok(())
}

/// Fixed-rate end to end on a Redis stream: XADD on one multiplexed connection, XREAD BLOCK on
/// another.
async fn redis_e2e(url: &str, n: u64, rate: u64, size: usize, deadline: Instant) -> R<()> {
    let client = redis::Client::open(url)?;
    let writer = client.get_multiplexed_async_connection().await?;
    let mut reader = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("DEL").arg("e2e").query_async(&mut writer.clone()).await?;
    let start = Instant::now();
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let consumer = tokio::spawn({
        let expected = expected.clone();
        async move {
            let mut r = Receipts::new(start, n);
            let mut last = "0-0".to_string();
            while r.got < expected.load(Ordering::Relaxed) && Instant::now() < deadline {
                let reply: redis::Value = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1000)
                    .arg("BLOCK")
                    .arg(100)
                    .arg("STREAMS")
                    .arg("e2e")
                    .arg(&last)
                    .query_async(&mut reader)
                    .await?;
                let now_us = r.now_us();
                for (id, value) in xread_entries(reply) {
                    r.record(now_us, &value);
                    last = id;
                }
            }
            Ok::<_, redis::RedisError>(r)
        }
    });
    let (sent, acked) = paced(start, n, rate, size, deadline, |value| {
        let mut con = writer.clone();
        async move {
            // The multiplexed connection queues the command at once; the task awaits the reply.
            let reply = tokio::spawn(async move {
                let id: redis::RedisResult<String> = redis::cmd("XADD").arg("e2e").arg("*").arg("v").arg(value).query_async(&mut con).await;
                id.is_ok()
            });
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(async move { matches!(reply.await, Ok(true)) })
        }
    })
    .await?;
    expected.store(acked, Ordering::Relaxed);
    let r = consumer.await??;
    let e = E2e { sent, acked, got: r.got, duplicates: r.duplicates, secs: start.elapsed().as_secs_f64(), hist: r.hist };
    report_e2e("redis-e2e", rate, &e);
    Ok(())
}
RS
    info "building the NATS/Redis load generator in $dir (first time: a few minutes)"
    (cd "$dir" && CARGO_TARGET_DIR="$WORK/peer-target" cargo build -q --release) >&2
}

# run_raftka — a 3-node cluster; bench produce (verified) then bench consume of those records;
# bench e2e at the fixed rate.
run_raftka() {
    local dir="$WORK/raftka" cli="$RAFTKA_BIN"
    info "Raftka: starting 3 nodes on 127.0.0.1:$RAFTKA_BASE_PORT-$((RAFTKA_BASE_PORT + 2)) ($NODE_BIN)"
    start_cluster "$dir" "$RAFTKA_BASE_PORT"
    local bootstrap="127.0.0.1:$RAFTKA_BASE_PORT,127.0.0.1:$((RAFTKA_BASE_PORT + 1)),127.0.0.1:$((RAFTKA_BASE_PORT + 2))"
    local -a nodes=()
    mapfile -t nodes < <(cat "$dir"/node-*/pid)
    local before
    if ((RUN_RAFTKA_THROUGHPUT)); then
        before="$(cpu_seconds "${nodes[@]}")"
        info "Raftka: bench produce, $RECORDS records of $SIZE B"
        RAFTKA_BOOTSTRAP="$bootstrap" timeout "$((MAX_SECONDS + 120))" "$cli" bench produce \
            --topic bench --partitions 3 --records "$RECORDS" --record-size "$SIZE" --batch 100 \
            --concurrency 16 --max-seconds "$MAX_SECONDS" --json 2>/dev/null | tee "$RESULTS/raftka-produce.txt" >&2
        # The produce run includes its verification read; the figure is an upper bound.
        record_cpu raftka-produce "$before" "${nodes[@]}"
        before="$(cpu_seconds "${nodes[@]}")"
        info "Raftka: bench consume"
        RAFTKA_BOOTSTRAP="$bootstrap" timeout "$((MAX_SECONDS + 60))" "$cli" bench consume \
            --topic bench --records "$RECORDS" --max-seconds "$MAX_SECONDS" --json 2>/dev/null |
            tee "$RESULTS/raftka-consume.txt" >&2
        record_cpu raftka-consume "$before" "${nodes[@]}"
    fi
    if ((RUN_RAFTKA_LATENCY)); then
        info "Raftka: bench e2e, $LATENCY_RECORDS records at $LATENCY_RATE records/s"
        RAFTKA_BOOTSTRAP="$bootstrap" timeout "$((MAX_SECONDS + 60))" "$cli" bench e2e \
            --records "$LATENCY_RECORDS" --rate "$LATENCY_RATE" --record-size "$LATENCY_SIZE" \
            --max-seconds "$MAX_SECONDS" --json 2>/dev/null |
            tee "$RESULTS/raftka-e2e.txt" >&2 || warn "raftka bench e2e failed"
    fi
    stop_cluster "$dir"
}

# run_nats — 3 nats-server processes with JetStream and cluster routes; publish then consume.
run_nats() {
    local i routes="" pid deadline peer="$1"
    for i in 0 1 2; do
        ensure_port_free "$((NATS_PORT + i))"
        ensure_port_free "$((NATS_HTTP_PORT + i))"
        ensure_port_free "$((NATS_ROUTE_PORT + i))"
        routes+="${routes:+, }nats-route://127.0.0.1:$((NATS_ROUTE_PORT + i))"
    done
    local -a pids=()
    for i in 0 1 2; do
        mkdir -p "$WORK/nats/n$i"
        cat >"$WORK/nats/n$i.conf" <<CONF
server_name: n$i
host: 127.0.0.1
port: $((NATS_PORT + i))
http: 127.0.0.1:$((NATS_HTTP_PORT + i))
jetstream { store_dir: "$WORK/nats/n$i" }
cluster {
  name: bench
  listen: 127.0.0.1:$((NATS_ROUTE_PORT + i))
  routes: [ $routes ]
}
CONF
        nats-server -c "$WORK/nats/n$i.conf" >"$WORK/nats/n$i.log" 2>&1 &
        pid=$!
        STARTED_PIDS+=("$pid")
        pids+=("$pid")
    done
    info "NATS: waiting for 3 JetStream servers (pids ${pids[*]})"
    deadline=$(($(now_s) + 60))
    for i in 0 1 2; do
        until [[ "$(http_code "http://127.0.0.1:$((NATS_HTTP_PORT + i))/healthz")" == 200 ]]; do
            (($(now_s) < deadline)) || die "nats-server n$i not healthy after 60 s (see $WORK/nats/n$i.log)"
            sleep 0.25
        done
    done
    local urls="nats://127.0.0.1:$NATS_PORT,nats://127.0.0.1:$((NATS_PORT + 1)),nats://127.0.0.1:$((NATS_PORT + 2))"
    local before
    if ((RUN_NATS_THROUGHPUT)); then
        before="$(cpu_seconds "${pids[@]}")"
        info "NATS: acked publish R3, $RECORDS messages of $SIZE B (4 connections x 128 in flight)"
        timeout "$((MAX_SECONDS + 60))" "$peer" nats-pub "$urls" "$RECORDS" "$SIZE" 4 128 "$MAX_SECONDS" |
            tee "$RESULTS/nats-publish.txt" >&2
        record_cpu nats-publish "$before" "${pids[@]}"
        before="$(cpu_seconds "${pids[@]}")"
        info "NATS: pull consume (batches of 1000, no acks)"
        timeout "$((MAX_SECONDS + 60))" "$peer" nats-sub "$urls" "$RECORDS" "$MAX_SECONDS" |
            tee "$RESULTS/nats-consume.txt" >&2
        record_cpu nats-consume "$before" "${pids[@]}"
    fi
    if ((RUN_NATS_LATENCY)); then
        info "NATS: end to end, $LATENCY_RECORDS messages at $LATENCY_RATE/s (stream E2E, R3)"
        timeout "$((MAX_SECONDS + 60))" "$peer" nats-e2e "$urls" "$LATENCY_RECORDS" "$LATENCY_RATE" \
            "$LATENCY_SIZE" "$MAX_SECONDS" | tee "$RESULTS/nats-e2e.txt" >&2 || warn "NATS end-to-end run failed"
    fi
    stop_pids "${pids[@]}"
    STARTED_PIDS=()
}

# run_redis FSYNC — one redis-server with AOF appendfsync FSYNC; XADD, XREAD, redis-benchmark.
run_redis() {
    local fsync="$1" peer="$2" pid deadline value
    ensure_port_free "$REDIS_PORT"
    mkdir -p "$WORK/redis-$fsync"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis-$fsync" \
        --appendonly yes --appendfsync "$fsync" --save "" --daemonize no \
        >"$WORK/redis-$fsync/redis.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    deadline=$(($(now_s) + 30))
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
        (($(now_s) < deadline)) || die "redis-server not answering after 30 s"
        sleep 0.2
    done
    local before url="redis://127.0.0.1:$REDIS_PORT/"
    if ((RUN_REDIS_THROUGHPUT)); then
        before="$(cpu_seconds "$pid")"
        info "Redis ($fsync): XADD, $RECORDS entries of $SIZE B, 256 in flight"
        timeout "$((MAX_SECONDS + 60))" "$peer" redis-xadd "$url" "$RECORDS" "$SIZE" 256 "$MAX_SECONDS" |
            tee "$RESULTS/redis-$fsync-xadd.txt" >&2
        record_cpu "redis-$fsync-xadd" "$before" "$pid"
        before="$(cpu_seconds "$pid")"
        info "Redis ($fsync): XREAD in reads of 1000"
        timeout "$((MAX_SECONDS + 60))" "$peer" redis-xread "$url" "$RECORDS" "$MAX_SECONDS" |
            tee "$RESULTS/redis-$fsync-xread.txt" >&2
        record_cpu "redis-$fsync-xread" "$before" "$pid"
        info "Redis ($fsync): redis-benchmark XADD, 50 connections x 32 pipelined"
        value="$(head -c "$SIZE" /dev/zero | tr '\0' x)"
        timeout "$((MAX_SECONDS + 60))" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$RECORDS" \
            -c 50 -P 32 -q XADD rb '*' v "$value" 2>/dev/null | tr '\r' '\n' | grep 'requests per second' |
            tail -n 1 >"$RESULTS/redis-$fsync-benchmark.txt" || true
        cat "$RESULTS/redis-$fsync-benchmark.txt" >&2
    fi
    if ((RUN_REDIS_LATENCY)); then
        info "Redis ($fsync): end to end, $LATENCY_RECORDS entries at $LATENCY_RATE/s (XADD, XREAD BLOCK)"
        timeout "$((MAX_SECONDS + 60))" "$peer" redis-e2e "$url" "$LATENCY_RECORDS" "$LATENCY_RATE" \
            "$LATENCY_SIZE" "$MAX_SECONDS" | tee "$RESULTS/redis-$fsync-e2e.txt" >&2 || warn "Redis ($fsync) end-to-end run failed"
    fi
    stop_pids "$pid"
    STARTED_PIDS=()
}

# run_idle P — scripts/measure-idle.sh with P partitions on its own cluster (WORK/idle, ports
# IDLE_BASE_PORT..+2); it stops that cluster itself, and so does cleanup when interrupted.
run_idle() {
    local p="$1" dir="$WORK/idle"
    claim_cluster "$dir" "$IDLE_BASE_PORT"
    info "idle cost of $p partitions (scripts/measure-idle.sh, ${IDLE_WARMUP} s warm-up, ${IDLE_SECONDS} s window)"
    NO_COLOR=1 timeout "$((IDLE_READY_TIMEOUT + IDLE_WARMUP + IDLE_SECONDS + 300))" \
        "$RAFTKA_ROOT/scripts/measure-idle.sh" --node-bin "$NODE_BIN" --partitions "$p" --dir "$dir" \
        --base-port "$IDLE_BASE_PORT" --seconds "$IDLE_SECONDS" --warmup "$IDLE_WARMUP" \
        --ready-timeout "$IDLE_READY_TIMEOUT" | tee "$RESULTS/idle-$p.txt" >&2 ||
        warn "measure-idle.sh --partitions $p failed"
    stop_cluster "$dir"
}

# run_failover — a 3-node cluster (WORK/failover, ports FAILOVER_BASE_PORT..+2) and
# scripts/measure-failover.sh --runs FAILOVER_RUNS on it.
run_failover() {
    local dir="$WORK/failover"
    info "failover: starting 3 nodes on 127.0.0.1:$FAILOVER_BASE_PORT-$((FAILOVER_BASE_PORT + 2))"
    start_cluster "$dir" "$FAILOVER_BASE_PORT"
    info "failover: scripts/measure-failover.sh --runs $FAILOVER_RUNS (SIGKILL of a partition's leader)"
    # Each run takes about 10 s and a restart (bounded by cluster.sh's 60 s readiness wait).
    timeout "$((FAILOVER_RUNS * 120 + 60))" "$RAFTKA_ROOT/scripts/measure-failover.sh" --dir "$dir" \
        --runs "$FAILOVER_RUNS" | tee "$RESULTS/failover.txt" >&2 || warn "measure-failover.sh failed"
    stop_cluster "$dir"
}

# dash VALUE — VALUE, or "-" when it is empty.
dash() { printf '%s' "${1:--}"; }

# summary_throughput — records/s, latency and server CPU of every throughput run; the ratios.
summary_throughput() {
    local rp rc np nc ra rac re rec rbe rbef
    rp="$(json_num "$RESULTS/raftka-produce.txt" records_per_sec)"
    rc="$(json_num "$RESULTS/raftka-consume.txt" records_per_sec)"
    np="$(json_num "$RESULTS/nats-publish.txt" records_per_sec)"
    nc="$(json_num "$RESULTS/nats-consume.txt" records_per_sec)"
    ra="$(json_num "$RESULTS/redis-always-xadd.txt" records_per_sec)"
    rac="$(json_num "$RESULTS/redis-always-xread.txt" records_per_sec)"
    re="$(json_num "$RESULTS/redis-everysec-xadd.txt" records_per_sec)"
    rec="$(json_num "$RESULTS/redis-everysec-xread.txt" records_per_sec)"
    rbe="" rbef=""
    if [[ -s "$RESULTS/redis-always-benchmark.txt" && "$(<"$RESULTS/redis-always-benchmark.txt")" =~ ([0-9.]+)\ requests ]]; then
        rbe="${BASH_REMATCH[1]}"
    fi
    if [[ -s "$RESULTS/redis-everysec-benchmark.txt" && "$(<"$RESULTS/redis-everysec-benchmark.txt")" =~ ([0-9.]+)\ requests ]]; then
        rbef="${BASH_REMATCH[1]}"
    fi
    heading "Throughput ($RECORDS records of $SIZE B; records/s, latency p50 / p99 in ms)"
    printf '%-44s %12s %10s %10s %12s %14s\n' "run" "records/s" "p50 ms" "p99 ms" "server CPU s" "records/CPU-s"
    local f label
    for f in raftka-produce:"Raftka produce R3 (fsync on majority)" raftka-consume:"Raftka consume" \
        nats-publish:"NATS JetStream publish R3 (no fsync)" nats-consume:"NATS JetStream pull consume" \
        redis-always-xadd:"Redis XADD, appendfsync always (1 node)" redis-always-xread:"Redis XREAD (always)" \
        redis-everysec-xadd:"Redis XADD, appendfsync everysec (1 node)" redis-everysec-xread:"Redis XREAD (everysec)"; do
        label="${f#*:}"
        f="$RESULTS/${f%%:*}.txt"
        [[ -s "$f" ]] || continue
        local cpu="-" per_cpu="-" n
        if [[ -s "${f%.txt}.cpu" ]]; then
            cpu="$(<"${f%.txt}.cpu")"
            n="$(json_num "$f" records)"
            per_cpu="$(ratio "${n:-0}" "$cpu")"
            [[ "$per_cpu" == - ]] || per_cpu="$(awk -v r="$per_cpu" 'BEGIN { printf "%.0f", r }')"
        fi
        printf '%-44s %12s %10s %10s %12s %14s\n' "$label" \
            "$(awk -v r="$(json_num "$f" records_per_sec)" 'BEGIN { printf "%.0f", r }')" \
            "$(dash "$(json_num "$f" p50_ms)")" "$(dash "$(json_num "$f" p99_ms)")" "$cpu" "$per_cpu"
    done
    [[ -z "$rbe" ]] || printf '%-44s %12s\n' "redis-benchmark XADD (always, 50x32 pipelined)" "$rbe"
    [[ -z "$rbef" ]] || printf '%-44s %12s\n' "redis-benchmark XADD (everysec, 50x32 pipelined)" "$rbef"
    ((RUN_RAFTKA_THROUGHPUT && (RUN_NATS_THROUGHPUT || RUN_REDIS_THROUGHPUT))) || return 0
    heading "Ratios (Raftka / peer, throughput; > 1 means Raftka is faster)"
    if ((RUN_NATS_THROUGHPUT)); then
        printf '%-44s %s\n' "produce / NATS JetStream R3 publish" "$(ratio "$rp" "$np")"
    fi
    if ((RUN_REDIS_THROUGHPUT)); then
        printf '%-44s %s\n' "produce / Redis XADD always" "$(ratio "$rp" "$ra")"
        printf '%-44s %s\n' "produce / Redis XADD everysec" "$(ratio "$rp" "$re")"
    fi
    if ((RUN_NATS_THROUGHPUT)); then
        printf '%-44s %s\n' "consume / NATS JetStream pull" "$(ratio "$rc" "$nc")"
    fi
    if ((RUN_REDIS_THROUGHPUT)); then
        printf '%-44s %s\n' "consume / Redis XREAD (always run)" "$(ratio "$rc" "$rac")"
        printf '%-44s %s\n' "consume / Redis XREAD (everysec run)" "$(ratio "$rc" "$rec")"
    fi
}

# summary_latency — one table of the fixed-rate end-to-end runs.
summary_latency() {
    local f label rate
    heading "End-to-end latency at a fixed rate (send to receipt by a consumer; $LATENCY_SIZE B values; ms)"
    printf '%-44s %8s %13s %9s %9s %9s %9s\n' "system" "rate/s" "received/sent" "p50" "p90" "p99" "max"
    for f in raftka-e2e:"Raftka R3 (3 partitions, fsync on majority)" nats-e2e:"NATS JetStream R3 (file, no fsync)" \
        redis-always-e2e:"Redis Streams, appendfsync always" redis-everysec-e2e:"Redis Streams, appendfsync everysec"; do
        label="${f#*:}"
        f="$RESULTS/${f%%:*}.txt"
        [[ -e "$f" ]] || continue
        rate="$(json_num "$f" rate)"
        printf '%-44s %8s %13s %9s %9s %9s %9s\n' "$label" "${rate:-$LATENCY_RATE}" \
            "$(dash "$(json_num "$f" records)")/$(dash "$(json_num "$f" sent)")" \
            "$(dash "$(json_num "$f" p50_ms)")" "$(dash "$(json_num "$f" p90_ms)")" \
            "$(dash "$(json_num "$f" p99_ms)")" "$(dash "$(json_num "$f" max_ms)")"
    done
}

# summary_idle — measure-idle.sh's table for each partition count.
summary_idle() {
    local p f
    heading "Idle cost (scripts/measure-idle.sh; per node: CPU % of one core over the window, RSS)"
    for p in "${IDLE_LIST[@]}"; do
        f="$RESULTS/idle-$p.txt"
        if grep -q '^total:' "$f" 2>/dev/null; then
            grep -v '^[[:space:]]*$' "$f"
        else
            printf '%s partitions: no result (see the messages above)\n' "$p"
        fi
    done
}

# summary_failover — p50 and max of measure-failover.sh's gaps.
summary_failover() {
    local f="$RESULTS/failover.txt"
    heading "Leader failover (scripts/measure-failover.sh: SIGKILL of a partition's leader; ms)"
    if ! grep -q '^run ' "$f" 2>/dev/null; then
        printf 'no result (see the messages above)\n'
        return 0
    fi
    awk '
        function num(re,    s) {
            if (!match($0, re)) return -1
            s = substr($0, RSTART, RLENGTH)
            gsub(/[^0-9]/, "", s)
            return s + 0
        }
        function median(a, n,    i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function row(label, a, n,    i, m) {
            if (n == 0) { printf "%-48s %8s %8s %6d\n", label, "-", "-", 0; return }
            m = a[1]
            for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]
            printf "%-48s %8.0f %8d %6d\n", label, median(a, n), m, n
        }
        /^run [0-9]+:/ {
            runs++
            v = num("first acknowledged produce after [0-9]+ ms"); if (v >= 0) gap[++ng] = v; else missed++
            v = num("longest pause between acks [0-9]+ ms"); if (v >= 0) pause[++np] = v
        }
        END {
            printf "%-48s %8s %8s %6s\n", "", "p50", "max", "runs"
            row("kill to first acknowledged produce", gap, ng)
            row("longest pause between two acknowledgements", pause, np)
            if (missed) printf "%d of %d runs had no acknowledged produce within 8 s of the kill\n", missed, runs
        }' "$f"
}

main() {
    # The load generator's build (WORK/peer-target) is kept between runs; data is not.
    rm -rf "$RESULTS" "$WORK/raftka" "$WORK/nats" "$WORK"/redis-* "$WORK/idle" "$WORK/failover"
    mkdir -p "$RESULTS"
    ensure_packages
    ensure_raftka_bins
    local peer="" p
    if ((RUN_NATS || RUN_REDIS)); then
        build_peer_bench
        peer="$WORK/peer-target/release/peer-bench"
    fi
    if ((RUN_RAFTKA)); then run_raftka; fi
    if ((RUN_NATS)); then run_nats "$peer"; fi
    if ((RUN_REDIS)); then
        run_redis always "$peer"
        run_redis everysec "$peer"
    fi
    if ((RUN_IDLE)); then
        for p in "${IDLE_LIST[@]}"; do run_idle "$p"; done
    fi
    if ((RUN_FAILOVER)); then run_failover; fi
    if ((RUN_RAFTKA_THROUGHPUT || RUN_NATS_THROUGHPUT || RUN_REDIS_THROUGHPUT)); then summary_throughput; fi
    if ((RUN_RAFTKA_LATENCY || RUN_NATS_LATENCY || RUN_REDIS_LATENCY)); then summary_latency; fi
    if ((RUN_IDLE)); then summary_idle; fi
    if ((RUN_FAILOVER)); then summary_failover; fi
    printf '\nRaw results: %s\n' "$RESULTS"
}

main

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
WORK="${TMPDIR:-/tmp}/raftka-bench-compare"
NODE_BIN=""
RAFTKA_BIN=""
RUN_RAFTKA=1
RUN_NATS=1
RUN_REDIS=1
RAFTKA_BASE_PORT=27091
NATS_PORT=14222
NATS_HTTP_PORT=18222
NATS_ROUTE_PORT=16222
REDIS_PORT=16379

usage() {
    cat <<USAGE
Usage: $PROG [OPTIONS]

Runs, one after the other on this machine and over loopback only:
  1. Raftka: a 3-node cluster (scripts/cluster.sh), raftka bench produce (batches of 100,
     16 requests in flight, verified) and raftka bench consume of the same records;
  2. NATS JetStream 2.9 (Debian nats-server): 3 servers, stream with 3 replicas on file
     storage; acked publish (4 connections x 128 unacknowledged publishes) and a pull consume
     of the same messages (batches of 1000, no acks);
  3. Redis Streams 7 (Debian redis-server), one node, appendfsync always, then everysec:
     XADD with 256 requests in flight, XREAD in reads of 1000, and redis-benchmark XADD
     (50 connections x 32 pipelined);
then prints every figure and the ratios Raftka / peer.

nats-server, redis-server and redis-benchmark are installed with apt-get when missing. There is
no NATS load generator in Debian's packages, so the script writes a small Rust one (async-nats
and redis-rs, from crates.io) to WORK/peer-bench and builds it there, outside the repository.
Every run is bounded by the record count and by --max-seconds. Only processes this script
started are stopped.

Options:
  --records N       records (messages) per run (default $RECORDS)
  --record-size B   value size in bytes (default $SIZE)
  --max-seconds S   bound of each run (default $MAX_SECONDS)
  --work DIR        scratch directory (default $WORK); its data is wiped at start
  --node-bin PATH   raftka-node binary (default: target/debug/raftka-node, built if missing)
  --raftka-bin PATH raftka CLI (default: built with cargo build -p raftka-client --release)
  --only raftka|nats|redis
                    run one system only (repeatable)
  -h, --help        this help
USAGE
}

ONLY=()
while (($# > 0)); do
    case "$1" in
        --records) RECORDS="${2:?}"; shift 2 ;;
        --record-size) SIZE="${2:?}"; shift 2 ;;
        --max-seconds) MAX_SECONDS="${2:?}"; shift 2 ;;
        --work) WORK="$(abspath "${2:?}")"; shift 2 ;;
        --node-bin) NODE_BIN="$(abspath "${2:?}")"; shift 2 ;;
        --raftka-bin) RAFTKA_BIN="$(abspath "${2:?}")"; shift 2 ;;
        --only) ONLY+=("${2:?}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see $PROG --help)" ;;
    esac
done
for v in RECORDS SIZE MAX_SECONDS; do
    if ! is_uint "${!v}" || ((${!v} == 0)); then
        die "--records, --record-size and --max-seconds take positive numbers ($v=${!v})"
    fi
done
if ((${#ONLY[@]} > 0)); then
    RUN_RAFTKA=0 RUN_NATS=0 RUN_REDIS=0
    for o in "${ONLY[@]}"; do
        case "$o" in
            raftka) RUN_RAFTKA=1 ;;
            nats) RUN_NATS=1 ;;
            redis) RUN_REDIS=1 ;;
            *) die "--only takes raftka, nats or redis, not '$o'" ;;
        esac
    done
fi

RESULTS="$WORK/results"
STARTED_PIDS=()
RAFTKA_CLUSTER_STARTED=0

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
    if ((RAFTKA_CLUSTER_STARTED)); then
        "$RAFTKA_ROOT/scripts/cluster.sh" stop --dir "$WORK/raftka" >/dev/null 2>&1 || true
        RAFTKA_CLUSTER_STARTED=0
    fi
}
trap cleanup EXIT

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
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn report(name: &str, n: u64, secs: f64, h: &Histogram<u64>) {
    let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    println!(
        "{{\"bench\":\"{name}\",\"records\":{n},\"seconds\":{secs:.3},\"records_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        n as f64 / secs, q(0.5), q(0.99), h.max() as f64 / 1000.0
    );
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
        other => Err(format!("unknown mode {other:?}").into()),
    }
}

async fn nats_pub(url: &str, n: u64, size: usize, conns: usize, inflight: usize, deadline: Instant) -> R<()> {
    use async_nats::jetstream::{self, stream};
    // Connections are spread over the servers (one URL each, round-robin).
    let urls: Vec<&str> = url.split(',').collect();
    let js = jetstream::new(async_nats::connect(urls[0]).await?);
    let _ = js.delete_stream("BENCH").await;
    // The JetStream meta leader may still be electing: retry for up to 30 s.
    let mut tries = 0;
    loop {
        let created = js
            .create_stream(stream::Config {
                name: "BENCH".into(),
                subjects: vec!["bench".into()],
                num_replicas: 3,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => break,
            Err(e) if tries < 60 => {
                tries += 1;
                eprintln!("create stream: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
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
        // [[stream, [[id, [f, v]], ...]]]
        let entries = match reply {
            redis::Value::Array(streams) => match streams.into_iter().next() {
                Some(redis::Value::Array(mut s)) if s.len() == 2 => match s.pop() {
                    Some(redis::Value::Array(e)) => e,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            if let redis::Value::Array(parts) = e {
                if let Some(redis::Value::BulkString(id)) = parts.first() {
                    last = String::from_utf8_lossy(id).into_owned();
                }
            }
        }
        got += entries.len() as u64;
    }
    report("redis-xread", got, start.elapsed().as_secs_f64(), &h);
    Ok(())
}
RS
    info "building the NATS/Redis load generator in $dir (first time: a few minutes)"
    (cd "$dir" && CARGO_TARGET_DIR="$WORK/peer-target" cargo build -q --release) >&2
}

# run_raftka — a 3-node cluster; bench produce (verified) then bench consume of those records.
run_raftka() {
    local node_bin="$NODE_BIN" cli="$RAFTKA_BIN" port
    need_cmd cargo "install Rust from the rustup toolchain"
    if [[ -z "$cli" ]]; then
        info "building the raftka CLI (cargo build --release -p raftka-client --bin raftka)"
        (cd "$RAFTKA_ROOT" && cargo build -q --release -p raftka-client --bin raftka) >&2
        cli="${CARGO_TARGET_DIR:-$RAFTKA_ROOT/target}/release/raftka"
    fi
    [[ -x "$cli" ]] || die "raftka CLI $cli is missing"
    for ((port = RAFTKA_BASE_PORT; port < RAFTKA_BASE_PORT + 3; port++)); do
        ensure_port_free "$port"
    done
    local -a bin_arg=()
    if [[ -n "$node_bin" ]]; then bin_arg=(--bin "$node_bin"); fi
    info "Raftka: starting 3 nodes on 127.0.0.1:$RAFTKA_BASE_PORT-$((RAFTKA_BASE_PORT + 2))"
    RAFTKA_CLUSTER_STARTED=1
    "$RAFTKA_ROOT/scripts/cluster.sh" start -n 3 --clean --dir "$WORK/raftka" \
        --base-port "$RAFTKA_BASE_PORT" "${bin_arg[@]}" >/dev/null
    local bootstrap="127.0.0.1:$RAFTKA_BASE_PORT,127.0.0.1:$((RAFTKA_BASE_PORT + 1)),127.0.0.1:$((RAFTKA_BASE_PORT + 2))"
    local -a nodes=()
    mapfile -t nodes < <(cat "$WORK"/raftka/node-*/pid)
    local before
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
    info "Raftka: bench e2e at 2000 records/s"
    RAFTKA_BOOTSTRAP="$bootstrap" timeout "$((MAX_SECONDS + 60))" "$cli" bench e2e \
        --records 10000 --rate 2000 --record-size "$SIZE" --max-seconds "$MAX_SECONDS" --json 2>/dev/null |
        tee "$RESULTS/raftka-e2e.txt" >&2 || warn "bench e2e failed"
    "$RAFTKA_ROOT/scripts/cluster.sh" stop --dir "$WORK/raftka" >/dev/null 2>&1 || true
    RAFTKA_CLUSTER_STARTED=0
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
    local before
    before="$(cpu_seconds "$pid")"
    info "Redis ($fsync): XADD, $RECORDS entries of $SIZE B, 256 in flight"
    timeout "$((MAX_SECONDS + 60))" "$peer" redis-xadd "redis://127.0.0.1:$REDIS_PORT/" "$RECORDS" "$SIZE" 256 "$MAX_SECONDS" |
        tee "$RESULTS/redis-$fsync-xadd.txt" >&2
    record_cpu "redis-$fsync-xadd" "$before" "$pid"
    before="$(cpu_seconds "$pid")"
    info "Redis ($fsync): XREAD in reads of 1000"
    timeout "$((MAX_SECONDS + 60))" "$peer" redis-xread "redis://127.0.0.1:$REDIS_PORT/" "$RECORDS" "$MAX_SECONDS" |
        tee "$RESULTS/redis-$fsync-xread.txt" >&2
    record_cpu "redis-$fsync-xread" "$before" "$pid"
    info "Redis ($fsync): redis-benchmark XADD, 50 connections x 32 pipelined"
    value="$(head -c "$SIZE" /dev/zero | tr '\0' x)"
    timeout "$((MAX_SECONDS + 60))" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$RECORDS" \
        -c 50 -P 32 -q XADD rb '*' v "$value" 2>/dev/null | tr '\r' '\n' | grep 'requests per second' |
        tail -n 1 >"$RESULTS/redis-$fsync-benchmark.txt" || true
    cat "$RESULTS/redis-$fsync-benchmark.txt" >&2
    stop_pids "$pid"
    STARTED_PIDS=()
}

# summary — every figure, and the ratios Raftka / peer.
summary() {
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
    heading "Results ($RECORDS records of $SIZE B; records/s, latency p50 / p99 in ms)"
    printf '%-44s %12s %10s %10s %12s %14s\n' "run" "records/s" "p50 ms" "p99 ms" "server CPU s" "records/CPU-s"
    local f label
    for f in raftka-produce:"Raftka produce R3 (fsync on majority)" raftka-consume:"Raftka consume" \
        raftka-e2e:"Raftka e2e at 2000/s (end-to-end latency)" \
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
            "$(json_num "$f" p50_ms)" "$(json_num "$f" p99_ms)" "$cpu" "$per_cpu"
    done
    [[ -z "$rbe" ]] || printf '%-44s %12s\n' "redis-benchmark XADD (always, 50x32 pipelined)" "$rbe"
    [[ -z "$rbef" ]] || printf '%-44s %12s\n' "redis-benchmark XADD (everysec, 50x32 pipelined)" "$rbef"
    heading "Ratios (Raftka / peer, throughput; > 1 means Raftka is faster)"
    printf '%-44s %s\n' "produce / NATS JetStream R3 publish" "$(ratio "$rp" "$np")"
    printf '%-44s %s\n' "produce / Redis XADD always" "$(ratio "$rp" "$ra")"
    printf '%-44s %s\n' "produce / Redis XADD everysec" "$(ratio "$rp" "$re")"
    printf '%-44s %s\n' "consume / NATS JetStream pull" "$(ratio "$rc" "$nc")"
    printf '%-44s %s\n' "consume / Redis XREAD (always run)" "$(ratio "$rc" "$rac")"
    printf '%-44s %s\n' "consume / Redis XREAD (everysec run)" "$(ratio "$rc" "$rec")"
    printf '\nRaw results: %s\n' "$RESULTS"
}

main() {
    # The load generator's build (WORK/peer-target) is kept between runs; data is not.
    rm -rf "$RESULTS" "$WORK/raftka" "$WORK/nats" "$WORK"/redis-*
    mkdir -p "$RESULTS"
    ensure_packages
    local peer=""
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
    summary
}

main

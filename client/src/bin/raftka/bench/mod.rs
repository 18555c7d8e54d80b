//! `raftka bench produce|consume|e2e`: Raftka's `kafka-producer-perf-test`, `rpk` benchmarks
//! and `nats bench`. Each prints records/s, MB/s and latency percentiles from an HDR histogram,
//! live progress on stderr, and with `--json` a final JSON line. Each checks what it measured:
//! `produce` reads back every acknowledged record, `consume` checks that offsets are dense,
//! `e2e` that every produced record arrived.

mod consume;
mod e2e;
mod group;
mod produce;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use hdrhistogram::Histogram;
use raftka_client::{Client, ErrorCode};
use serde_json::json;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at --rate) and report throughput and request
    /// latency; then read every acknowledged record back at its offset.
    #[command(
        after_help = "Example:\n  raftka bench produce --records 1000000 --record-size 100 --batch 100 --concurrency 16 --json"
    )]
    Produce(produce::ProduceArgs),
    /// Read records from every partition of a topic as fast as possible and report throughput
    /// and fetch latency.
    #[command(
        after_help = "Example:\n  raftka bench produce --records 1000000 && raftka bench consume --records 1000000"
    )]
    Consume(consume::ConsumeArgs),
    /// End-to-end latency: produce at a fixed rate and measure until a long-polling consumer
    /// receives each record.
    #[command(after_help = "Example:\n  raftka bench e2e --records 20000 --rate 2000")]
    E2e(e2e::E2eArgs),
    /// Consumer groups: commit latency, rebalance time, takeover time after a member dies.
    #[command(
        after_help = "Example:\n  raftka bench group --partitions 6 --members 3 --commits 500"
    )]
    Group(group::GroupArgs),
}

/// Runs a benchmark.
pub async fn run(client: Client, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(a) => produce::run(client, a).await,
        BenchCommand::Consume(a) => consume::run(client, a).await,
        BenchCommand::E2e(a) => e2e::run(client, a).await,
        BenchCommand::Group(a) => group::run(client, a).await,
    }
}

/// A latency histogram in microseconds, from 1 µs to 60 s at 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow::anyhow!("histogram: {e}"))
}

/// The common result of every benchmark.
pub struct Report<'a> {
    pub name: &'a str,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// What the histogram measures, e.g. "request latency".
    pub latency_of: &'a str,
    pub hist: &'a Histogram<u64>,
}

impl Report<'_> {
    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Two lines: throughput, then latency percentiles.
    pub fn print(&self, details: &str) {
        println!(
            "{}: {} records in {:.2}s = {:.0} records/s, {:.2} MB/s ({details})",
            self.name,
            self.records,
            self.seconds,
            self.records_per_sec(),
            self.bytes as f64 / self.seconds.max(1e-9) / 1e6,
        );
        println!(
            "{} ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
            self.latency_of,
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.hist.max() as f64 / 1000.0,
            self.hist.len()
        );
    }

    /// The fields every `--json` line has.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "bench": self.name, "records": self.records, "seconds": self.seconds,
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.bytes as f64 / self.seconds.max(1e-9) / 1e6,
            "latency_of": self.latency_of,
            "p50_ms": self.ms(0.5), "p90_ms": self.ms(0.9), "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999), "max_ms": self.hist.max() as f64 / 1000.0,
        })
    }
}

/// Prints `done/total <what>, N/s` on stderr every second until aborted.
pub fn spawn_progress(
    done: Arc<AtomicU64>,
    total: u64,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = 0;
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let d = done.load(Ordering::Relaxed);
            eprintln!(
                "  {:>4.0}s  {d}/{total} {what}, {} records/s",
                start.elapsed().as_secs_f64(),
                d - last
            );
            last = d;
        }
    })
}

/// The topic's partition count, creating the topic when it does not exist.
pub async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: u32,
    replication_factor: u32,
) -> anyhow::Result<u32> {
    match client.describe_topic(topic).await {
        Ok(t) => Ok(t.partitions.len() as u32),
        Err(e) if e.error_code() == Some(ErrorCode::TopicNotFound) => {
            let t = client
                .create_topic(topic, partitions, replication_factor)
                .await?;
            Ok(t.partitions.len() as u32)
        }
        Err(e) => Err(e.into()),
    }
}

//! `raftka bench e2e`: end-to-end latency, from the moment a record is handed to the
//! [`Producer`] to the moment a long-polling consumer receives it.
//!
//! Records are produced at a fixed `--rate` (keyless, spread over the partitions by the
//! producer), each value carrying its send time (microseconds since the benchmark's start, on
//! this process's monotonic clock) and its id. One consumer per partition long-polls from the
//! partition's high watermark at the start. At the end every acknowledged record must have been
//! received exactly once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use raftka_client::{Client, NewRecord, Producer, ProducerConfig};

use super::{ensure_topic, histogram, spawn_progress, Report};

/// Options of `bench e2e`.
#[derive(Args, Clone)]
pub struct E2eArgs {
    /// Topic (created if missing).
    #[arg(long, default_value = "bench-e2e")]
    pub topic: String,
    /// Partitions, when the topic is created.
    #[arg(long, default_value_t = 3)]
    pub partitions: u32,
    /// Replication factor, when the topic is created.
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// Records to send.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Records per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Value size in bytes (at least 29: send time and id).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Producer linger in milliseconds (0: a batch leaves as soon as its partition has nothing
    /// in flight).
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Stop after this many seconds even if records remain.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Print a final JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bench e2e`.
pub async fn run(client: Client, a: E2eArgs) -> anyhow::Result<()> {
    if a.records == 0 || a.rate == 0 {
        bail!("--records and --rate must be positive");
    }
    let partitions = ensure_topic(&client, &a.topic, a.partitions, a.replication_factor).await?;
    let topic = client.describe_topic(&a.topic).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.max_seconds);
    // `expected` stays at MAX until every delivery is known; consumers stop once they reach it.
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let received = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(vec![0u8; a.records as usize]));
    let e2e_hist = Arc::new(Mutex::new(histogram()?));
    let mut consumers = Vec::new();
    for p in &topic.partitions {
        let (client, expected, received, seen, hist, topic_name) = (
            client.clone(),
            expected.clone(),
            received.clone(),
            seen.clone(),
            e2e_hist.clone(),
            a.topic.clone(),
        );
        let (partition, mut offset) = (p.partition, p.high_watermark);
        consumers.push(tokio::spawn(async move {
            while received.load(Ordering::Relaxed) < expected.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                let r = client
                    .fetch(&topic_name, partition, offset, 1000, 500)
                    .await
                    .with_context(|| format!("fetch partition {partition}"))?;
                let now_us = start.elapsed().as_micros() as u64;
                for rec in &r.records {
                    offset = rec.offset + 1;
                    let Some((sent_us, id)) = parse(&rec.value) else {
                        continue; // not ours (another writer on the topic)
                    };
                    if let Ok(mut h) = hist.lock() {
                        h.record(now_us.saturating_sub(sent_us).max(1)).ok();
                    }
                    if let Some(slot) = seen.lock().ok().as_mut().and_then(|s| {
                        s.get_mut(id as usize).map(|x| {
                            *x = x.saturating_add(1);
                            *x
                        })
                    }) {
                        if slot == 1 {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }

    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger: Duration::from_millis(a.linger_ms),
            ..ProducerConfig::default()
        },
    );
    let ack_hist = Arc::new(Mutex::new(histogram()?));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(received.clone(), a.records, "records received");
    let pad = "x".repeat(a.record_size.saturating_sub(29));
    let mut deliveries = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    for id in 0..a.records {
        let due = start + Duration::from_secs_f64(id as f64 / a.rate as f64);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let t0 = Instant::now();
        let sent_us = start.elapsed().as_micros() as u64;
        let value = format!("{sent_us:016}-{id:012}{pad}");
        let delivery = producer.send(&a.topic, NewRecord::string(value)).await?;
        sent += 1;
        let (ack_hist, acked, failed) = (ack_hist.clone(), acked.clone(), failed.clone());
        deliveries.spawn(async move {
            match delivery.await {
                Ok(_) => {
                    if let Ok(mut h) = ack_hist.lock() {
                        h.record((t0.elapsed().as_micros() as u64).max(1)).ok();
                    }
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while deliveries.join_next().await.is_some() {}
    let acked_n = acked.load(Ordering::Relaxed);
    expected.store(acked_n, Ordering::Relaxed);
    for c in consumers {
        c.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    progress.abort();
    let got = received.load(Ordering::Relaxed);
    let duplicates = seen
        .lock()
        .map(|s| s.iter().filter(|n| **n > 1).count())
        .unwrap_or(0);
    let hist = e2e_hist
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    let ack = ack_hist
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    let report = Report {
        name: "e2e",
        records: got,
        bytes: got * a.record_size as u64,
        seconds,
        latency_of: "end-to-end latency",
        hist: &hist,
    };
    report.print(&format!(
        "{} B values at {} records/s over {partitions} partitions, linger {} ms",
        a.record_size, a.rate, a.linger_ms
    ));
    let q = |h: &hdrhistogram::Histogram<u64>, x: f64| h.value_at_quantile(x) as f64 / 1000.0;
    println!(
        "produce ack latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        q(&ack, 0.5),
        q(&ack, 0.9),
        q(&ack, 0.99),
        q(&ack, 0.999),
        ack.max() as f64 / 1000.0
    );
    let failed_n = failed.load(Ordering::Relaxed);
    println!(
        "verified: {got} of {acked_n} acknowledged records received, {duplicates} duplicated, {failed_n} failed to produce, {sent} sent"
    );
    if a.json {
        let mut j = report.json();
        j["ack_p50_ms"] = q(&ack, 0.5).into();
        j["ack_p99_ms"] = q(&ack, 0.99).into();
        j["sent"] = sent.into();
        j["acked"] = acked_n.into();
        j["duplicates"] = duplicates.into();
        j["rate"] = a.rate.into();
        println!("{j}");
    }
    if got != acked_n || duplicates > 0 {
        bail!("received {got} of {acked_n} acknowledged records ({duplicates} duplicated)");
    }
    Ok(())
}

/// `(send time µs, id)` from a value written by this benchmark.
fn parse(v: &serde_json::Value) -> Option<(u64, u64)> {
    let s = v.as_str()?;
    let sent = s.get(..16)?.parse().ok()?;
    if s.get(16..17)? != "-" {
        return None;
    }
    let id = s.get(17..29)?.parse().ok()?;
    Some((sent, id))
}

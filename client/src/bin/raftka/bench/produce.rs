//! `raftka bench produce`: the equivalent of `kafka-producer-perf-test`, which also checks at
//! the end that every acknowledged record is present at its acknowledged offset.
//!
//! It sends pre-encoded requests of `--batch` records for one partition each (so one Raft
//! entry per request), `--concurrency` requests at a time, round-robin over the partitions.
//!
//! With `--idempotence on`, each of the `--concurrency` workers is an idempotent producer: its
//! requests carry its own `producer_id` and, per partition, consecutive `sequence`s. A worker
//! has one request in flight, so each producer's batches reach a partition in sequence order,
//! as the server requires. This measures what idempotence costs the server (the dedup check
//! and state in every partition's state machine, a few bytes more per record on the wire)
//! with exactly the same request pattern as `--idempotence off`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use raftka_client::{Client, Error, Outcome};

use super::{ensure_topic, histogram, spawn_progress, Report};
use crate::produce::OnOff;

/// Options of `bench produce`.
#[derive(Args, Clone)]
pub struct ProduceArgs {
    /// Topic (created if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions, when the topic is created.
    #[arg(long, default_value_t = 3)]
    pub partitions: u32,
    /// Replication factor, when the topic is created.
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// Records to send.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Records per request (all for one partition, so one Raft entry each).
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Fixed rate in records per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stop after this many seconds even if records remain.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Idempotent requests: every worker sends its own producer id and per-partition sequences
    /// (off by default here, unlike the Producer: bench sends raw requests, and its figures
    /// stay comparable with earlier runs).
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub idempotence: OnOff,
    /// Skip the final verification read.
    #[arg(long)]
    pub no_verify: bool,
    /// Print a final JSON line.
    #[arg(long)]
    pub json: bool,
}

struct Acked {
    partition: u32,
    base_offset: u64,
    first_id: u64,
    count: u64,
}

/// An idempotent producer's id and the first sequence of a request.
struct Idempotent<'a> {
    producer_id: &'a str,
    sequence: u64,
}

fn body(
    partition: u32,
    first_id: u64,
    n: u64,
    size: usize,
    idempotent: Option<Idempotent<'_>>,
) -> Vec<u8> {
    let pad = "x".repeat(size.saturating_sub(12));
    let mut s = String::with_capacity((n as usize) * (size + 56) + 96);
    s.push('{');
    if let Some(i) = &idempotent {
        s.push_str(&format!("\"producer_id\":\"{}\",", i.producer_id));
    }
    s.push_str("\"records\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let sequence = match &idempotent {
            Some(idem) => format!("\"sequence\":{},", idem.sequence + i),
            None => String::new(),
        };
        s.push_str(&format!(
            "{{\"partition\":{partition},{sequence}\"value\":\"{:012}{pad}\"}}",
            first_id + i
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

/// One worker's idempotent producer state: its id and the next sequence per partition.
struct WorkerProducer {
    base: String,
    epoch: u32,
    id: String,
    next: HashMap<u32, u64>,
}

impl WorkerProducer {
    fn new(base: String) -> Self {
        Self {
            id: base.clone(),
            base,
            epoch: 0,
            next: HashMap::new(),
        }
    }

    /// After a failed request the partition's expected sequence is unknown (the request may
    /// have been stored): continue as a new producer, which may start at any sequence.
    fn reset(&mut self) {
        self.epoch += 1;
        self.id = format!("{}.{}", self.base, self.epoch);
        self.next.clear();
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bench-{:x}-{}", nanos, std::process::id())
}

/// Runs `bench produce`.
pub async fn run(client: Client, a: ProduceArgs) -> anyhow::Result<()> {
    if a.batch == 0 || a.records == 0 || a.concurrency == 0 {
        bail!("--records, --batch and --concurrency must be positive");
    }
    let partitions = ensure_topic(&client, &a.topic, a.partitions, a.replication_factor).await?;
    let requests = a.records.div_ceil(a.batch);
    let next = Arc::new(AtomicU64::new(0));
    let done_records = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let errors = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.max_seconds);

    let progress = spawn_progress(done_records.clone(), a.records, "records acked");

    let run = run_id();
    let mut workers = Vec::new();
    for worker in 0..a.concurrency {
        let mut producer = a
            .idempotence
            .is_on()
            .then(|| WorkerProducer::new(format!("{run}-{worker}")));
        let (client, next, done, acked, errors, a) = (
            client.clone(),
            next.clone(),
            done_records.clone(),
            acked.clone(),
            errors.clone(),
            a.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut hist = histogram()?;
            loop {
                let idx = next.fetch_add(1, Ordering::Relaxed);
                if idx >= requests || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(hist);
                }
                let first_id = idx * a.batch;
                let n = a.batch.min(a.records - first_id);
                if a.rate > 0 {
                    let due = start + Duration::from_secs_f64(first_id as f64 / a.rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let partition = (idx % u64::from(partitions)) as u32;
                let idempotent = producer.as_ref().map(|p| Idempotent {
                    producer_id: &p.id,
                    sequence: p.next.get(&partition).copied().unwrap_or(0),
                });
                let request = body(partition, first_id, n, a.record_size, idempotent);
                let t0 = Instant::now();
                let res = client.produce_raw(&a.topic, request.into()).await;
                let us = t0.elapsed().as_micros() as u64;
                match res {
                    Ok(offsets) => {
                        hist.record(us.max(1)).ok();
                        let base = offsets.first().map(|o| o.offset).unwrap_or(0);
                        let contiguous = offsets.iter().enumerate().all(|(i, o)| o.partition == partition && o.offset == base + i as u64);
                        if !contiguous || offsets.len() as u64 != n {
                            bail!("request {idx}: offsets not contiguous in partition {partition}: {offsets:?}");
                        }
                        done.fetch_add(n, Ordering::Relaxed);
                        if let Some(p) = producer.as_mut() {
                            *p.next.entry(partition).or_insert(0) += n;
                        }
                        if let Ok(mut v) = acked.lock() {
                            v.push(Acked { partition, base_offset: base, first_id, count: n });
                        }
                    }
                    Err(e) => {
                        if let Some(p) = producer.as_mut() {
                            p.reset();
                        }
                        let kind = match (&e, e.outcome()) {
                            (Error::Server { name, .. }, o) => format!("{name} ({o:?})"),
                            (_, Outcome::NotApplied) => "unreachable (NotApplied)".to_string(),
                            (_, Outcome::Unknown) => "transport (Unknown)".to_string(),
                        };
                        if let Ok(mut m) = errors.lock() {
                            *m.entry(kind).or_insert(0) += 1;
                        }
                    }
                }
            }
        }));
    }
    let mut hist = histogram()?;
    for w in workers {
        hist.add(w.await??)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    progress.abort();
    let acked_records = done_records.load(Ordering::Relaxed);
    let errors = errors.lock().map(|m| m.clone()).unwrap_or_default();
    let report = Report {
        name: "produce",
        records: acked_records,
        bytes: acked_records * a.record_size as u64,
        seconds: elapsed,
        latency_of: "request latency",
        hist: &hist,
    };
    report.print(&format!(
        "{} B values, batch {}, concurrency {}, idempotence {}",
        a.record_size,
        a.batch,
        a.concurrency,
        if a.idempotence.is_on() { "on" } else { "off" }
    ));
    if !errors.is_empty() {
        println!("errors: {errors:?}");
    }
    let verified = if a.no_verify {
        None
    } else {
        let acked = std::mem::take(&mut *acked.lock().map_err(|_| anyhow::anyhow!("lock"))?);
        Some(verify(&client, &a.topic, &acked).await?)
    };
    if a.json {
        let mut j = report.json();
        j["errors"] = serde_json::to_value(&errors)?;
        j["verified"] = serde_json::to_value(verified)?;
        j["record_size"] = a.record_size.into();
        j["batch"] = a.batch.into();
        j["concurrency"] = a.concurrency.into();
        j["idempotence"] = a.idempotence.is_on().into();
        println!("{j}");
    }
    if let Some(v) = verified {
        if v != acked_records {
            bail!("verified {v} records but {acked_records} were acknowledged");
        }
    }
    Ok(())
}

/// Reads back every partition that holds acknowledged records and checks each one is at its
/// acknowledged offset with its value.
async fn verify(client: &Client, topic: &str, acked: &[Acked]) -> anyhow::Result<u64> {
    let mut by_partition: HashMap<u32, Vec<&Acked>> = HashMap::new();
    for a in acked {
        by_partition.entry(a.partition).or_default().push(a);
    }
    let mut checked = 0u64;
    for (p, batches) in by_partition {
        let mut ids: HashMap<u64, u64> = HashMap::new();
        let mut offset = 0u64;
        loop {
            let r = client
                .fetch(topic, p, offset, 10_000, 0)
                .await
                .context("verification fetch")?;
            for rec in &r.records {
                let id = rec
                    .value
                    .as_str()
                    .and_then(|s| s.get(..12))
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(id) = id {
                    ids.insert(rec.offset, id);
                }
            }
            offset += r.records.len() as u64;
            if r.records.is_empty() || offset >= r.high_watermark {
                break;
            }
        }
        for b in batches {
            for i in 0..b.count {
                match ids.get(&(b.base_offset + i)) {
                    Some(id) if *id == b.first_id + i => checked += 1,
                    other => bail!(
                        "partition {p} offset {}: expected record {}, found {other:?}",
                        b.base_offset + i,
                        b.first_id + i
                    ),
                }
            }
        }
    }
    println!("verified: all {checked} acknowledged records are present at their offsets");
    Ok(checked)
}

//! `raftka bench consume`: reads records already in a topic as fast as possible.
//!
//! Each partition's range `[log_start, high_watermark)` at the start is cut into contiguous
//! chunks, and `--concurrency` readers fetch the chunks. Every chunk must come back dense (each
//! offset once, in order), which is checked as it is read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use raftka_client::Client;

use super::{histogram, spawn_progress, Report};

/// Options of `bench consume`.
#[derive(Args, Clone)]
pub struct ConsumeArgs {
    /// Topic to read (fill it first with `raftka bench produce`).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Records to read (0 = every record in the topic when the benchmark starts).
    #[arg(long, default_value_t = 0)]
    pub records: u64,
    /// Most records per fetch request (1-10000; the server also stops at 1 MiB).
    #[arg(long, default_value_t = 5000)]
    pub fetch_max_records: u32,
    /// Fetch requests in flight (readers), spread over the partitions.
    #[arg(long, default_value_t = 6)]
    pub concurrency: usize,
    /// Stop after this many seconds even if records remain.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Print a final JSON line.
    #[arg(long)]
    pub json: bool,
}

struct Chunk {
    partition: u32,
    from: u64,
    to: u64,
}

/// Splits `target` (at most the sum of `sizes`) over partitions in proportion to their sizes,
/// never taking more than a partition holds.
fn split(target: u64, sizes: &[u64]) -> Vec<u64> {
    let total: u64 = sizes.iter().sum();
    let mut takes: Vec<u64> = sizes
        .iter()
        .map(|s| (u128::from(target) * u128::from(*s) / u128::from(total.max(1))) as u64)
        .collect();
    let mut left = target.saturating_sub(takes.iter().sum());
    for (take, size) in takes.iter_mut().zip(sizes) {
        let more = (size - *take).min(left);
        *take += more;
        left -= more;
    }
    takes
}

/// Runs `bench consume`.
pub async fn run(client: Client, a: ConsumeArgs) -> anyhow::Result<()> {
    if a.concurrency == 0 || !(1..=10_000).contains(&a.fetch_max_records) {
        bail!("--concurrency must be positive and --fetch-max-records between 1 and 10000");
    }
    let topic = client
        .describe_topic(&a.topic)
        .await
        .with_context(|| format!("describe topic {}", a.topic))?;
    let available: u64 = topic
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.log_start_offset)
        .sum();
    let target = if a.records == 0 { available } else { a.records };
    if target == 0 || target > available {
        bail!(
            "topic {} holds {available} records, {target} requested (fill it with `raftka bench produce --topic {}`)",
            a.topic,
            a.topic
        );
    }
    // Take `target` records from the partitions' starts, in proportion to their sizes.
    let sizes: Vec<u64> = topic
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.log_start_offset)
        .collect();
    let takes = split(target, &sizes);
    let per_partition = a.concurrency.div_ceil(topic.partitions.len()).max(1) as u64;
    let mut chunks = Vec::new();
    for (p, take) in topic.partitions.iter().zip(takes) {
        let step = take.div_ceil(per_partition).max(1);
        let mut from = p.log_start_offset;
        let end = p.log_start_offset + take;
        while from < end {
            let to = (from + step).min(end);
            chunks.push(Chunk {
                partition: p.partition,
                from,
                to,
            });
            from = to;
        }
    }
    let chunks = Arc::new(std::sync::Mutex::new(chunks));
    let done = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.max_seconds);
    let progress = spawn_progress(done.clone(), target, "records read");
    let mut readers = Vec::new();
    for _ in 0..a.concurrency {
        let (client, chunks, done, bytes, a) = (
            client.clone(),
            chunks.clone(),
            done.clone(),
            bytes.clone(),
            a.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut hist = histogram()?;
            loop {
                let next = chunks.lock().ok().and_then(|mut c| c.pop());
                let Some(chunk) = next else {
                    return Ok::<_, anyhow::Error>(hist);
                };
                let mut offset = chunk.from;
                while offset < chunk.to {
                    if Instant::now() >= deadline {
                        return Ok(hist);
                    }
                    let want = (chunk.to - offset).min(u64::from(a.fetch_max_records)) as u32;
                    let t0 = Instant::now();
                    let r = client
                        .fetch(&a.topic, chunk.partition, offset, want, 0)
                        .await
                        .with_context(|| {
                            format!("fetch partition {} offset {offset}", chunk.partition)
                        })?;
                    hist.record((t0.elapsed().as_micros() as u64).max(1)).ok();
                    if r.records.is_empty() {
                        bail!(
                            "partition {}: no record at offset {offset} below the high watermark",
                            chunk.partition
                        );
                    }
                    let mut b = 0u64;
                    for rec in r.records.iter().take(want as usize) {
                        if rec.offset != offset {
                            bail!(
                                "partition {}: expected offset {offset}, got {}",
                                chunk.partition,
                                rec.offset
                            );
                        }
                        b += match &rec.value {
                            serde_json::Value::String(s) => s.len() as u64,
                            v => v.to_string().len() as u64,
                        };
                        offset += 1;
                    }
                    bytes.fetch_add(b, Ordering::Relaxed);
                    done.fetch_add(
                        u64::from(want).min(r.records.len() as u64),
                        Ordering::Relaxed,
                    );
                }
            }
        }));
    }
    let mut hist = histogram()?;
    for r in readers {
        hist.add(r.await??)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    progress.abort();
    let read = done.load(Ordering::Relaxed);
    let report = Report {
        name: "consume",
        records: read,
        bytes: bytes.load(Ordering::Relaxed),
        seconds,
        latency_of: "fetch latency",
        hist: &hist,
    };
    report.print(&format!(
        "{} readers, up to {} records per fetch",
        a.concurrency, a.fetch_max_records
    ));
    let complete = read == target;
    println!(
        "verified: {read} of {target} records read, offsets dense in every partition{}",
        if complete { "" } else { " (stopped early)" }
    );
    if a.json {
        let mut j = report.json();
        j["target"] = target.into();
        j["complete"] = complete.into();
        j["concurrency"] = a.concurrency.into();
        println!("{j}");
    }
    if !complete {
        bail!("read {read} of {target} records before --max-seconds");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_is_proportional_and_never_exceeds_a_partition() {
        assert_eq!(split(10, &[7, 7, 1]), vec![6, 4, 0]);
        assert_eq!(split(15, &[7, 7, 1]), vec![7, 7, 1]);
        assert_eq!(split(5, &[0, 0, 10]), vec![0, 0, 5]);
        assert_eq!(split(10, &[5, 5]), vec![5, 5]);
        assert_eq!(split(3, &[100, 100, 100]).iter().sum::<u64>(), 3);
    }
}

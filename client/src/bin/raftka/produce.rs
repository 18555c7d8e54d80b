//! `raftka produce TOPIC`: one record per input line, through the batching [`Producer`].
//!
//! Lines are read in order and sent in order, so records of one key (or of one `--partition`)
//! are stored in line order. Every record's outcome is awaited before the summary is printed;
//! the exit code is 1 when any record was not stored.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use raftka_client::{Client, DeliveryFuture, NewRecord, Outcome, Producer, ProducerConfig};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::output::{paint, Color, Out};
use crate::usage;

/// How a line's value is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ValueFormat {
    /// The line as a JSON string.
    String,
    /// The line parsed as JSON (object, number, string, …); a line that is not JSON is an
    /// error.
    Json,
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// On a terminal, once the input has taken more than a second.
    Auto,
    Always,
    Never,
}

/// Options of `raftka produce`.
#[derive(Args)]
#[command(after_help = "\
Examples:
  seq 1 1000 | raftka produce numbers
  raftka produce users --file users.txt --key-separator ':'     # lines like  alice:{\"age\":3}
  raftka produce events --value-format json --header source=cli < events.jsonl
  raftka produce orders --partition 2 --file orders.txt

Empty lines are skipped. Records with the same key go to the same partition (Kafka's murmur2
partitioner) in line order. The producer is idempotent (--idempotence on): it resends a batch
after a timeout or a leader change without ever storing it twice, for up to 30 s. A summary is
printed at the end; the exit code is 1 when any
record was not stored, and the first errors say whether those records may have been stored
anyway (outcome unknown) or definitely were not (not_applied).")]
pub struct ProduceArgs {
    /// Topic to write to (it must exist: raftka topic create).
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<std::path::PathBuf>,
    /// Split each line at the first occurrence of SEP into key and value (a line without SEP
    /// is an error).
    #[arg(long, short = 'k', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send every record to this partition instead of choosing by key.
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Header KEY=VALUE added to every record; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// How each value is sent.
    #[arg(long, value_enum, default_value_t = ValueFormat::String)]
    pub value_format: ValueFormat,
    /// Progress bar with throughput on stderr.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// How long a batch waits for more records, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// A batch is sent once it holds this many bytes of records.
    #[arg(long, default_value_t = 512 * 1024)]
    pub batch_bytes: usize,
    /// Idempotent produce: batches carry a producer id and sequences, so resends after a
    /// timeout or a leader change never store a record twice. `off` resends only batches the
    /// server definitely did not write.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub idempotence: OnOff,
}

/// A switch given as `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl OnOff {
    /// `true` for `on`.
    pub fn is_on(self) -> bool {
        self == OnOff::On
    }
}

/// Outcome counters shared by the reader, the collector and the progress bar.
#[derive(Default)]
struct Counters {
    read_bytes: AtomicU64,
    sent: AtomicU64,
    stored: AtomicU64,
}

/// The first errors, and how many records failed by outcome.
#[derive(Default)]
struct Failures {
    not_applied: u64,
    unknown: u64,
    first: Vec<String>,
}

pub async fn run(client: Client, a: ProduceArgs, out: &Out) -> anyhow::Result<ExitCode> {
    let mut headers = BTreeMap::new();
    for h in &a.headers {
        match h.split_once('=') {
            Some((k, v)) if !k.is_empty() => headers.insert(k.to_string(), v.to_string()),
            _ => return usage(format!("--header expects KEY=VALUE, got '{h}'")),
        };
    }
    if a.key_separator.as_deref() == Some("") {
        return usage("--key-separator must not be empty");
    }
    let (input, total_bytes): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) = match &a.file {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("open {}", path.display()))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => (Box::new(tokio::io::stdin()), None),
    };
    let producer = Producer::new(
        client,
        ProducerConfig::default()
            .linger(Duration::from_millis(a.linger_ms))
            .batch_max_bytes(a.batch_bytes)
            .idempotence(a.idempotence.is_on()),
    );
    // Fail early, with the server's own error, when the topic does not exist.
    producer
        .partition_count(&a.topic)
        .await
        .with_context(|| format!("produce to {}", a.topic))?;

    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let show_progress = match a.progress {
        Progress::Never => false,
        Progress::Always => true,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let bar = show_progress.then(|| {
        tokio::spawn(progress_bar(
            counters.clone(),
            total_bytes,
            started,
            a.progress == Progress::Always,
            out.color_err,
        ))
    });

    // Deliveries are awaited in line order by a collector task; the bounded channel plus the
    // producer's byte budget keep memory flat for any input size.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, DeliveryFuture)>(4096);
    let collector = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut failures = Failures::default();
            let mut per_partition: BTreeMap<u32, u64> = BTreeMap::new();
            while let Some((line, delivery)) = rx.recv().await {
                match delivery.await {
                    Ok(at) => {
                        *per_partition.entry(at.partition).or_default() += 1;
                        counters.stored.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let outcome = match e.outcome() {
                            Outcome::NotApplied => {
                                failures.not_applied += 1;
                                "not stored"
                            }
                            Outcome::Unknown => {
                                failures.unknown += 1;
                                "maybe stored (outcome unknown)"
                            }
                        };
                        if failures.first.len() < 5 {
                            failures.first.push(format!("line {line}: {outcome}: {e}"));
                        }
                    }
                }
            }
            (failures, per_partition)
        })
    };

    let mut lines = BufReader::with_capacity(1 << 16, input).lines();
    let mut line_no = 0u64;
    let mut skipped = 0u64;
    let mut input_error = None;
    while let Some(line) = lines.next_line().await.context("read input")? {
        line_no += 1;
        counters
            .read_bytes
            .fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
        if line.trim().is_empty() {
            skipped += 1;
            continue;
        }
        let record = match to_record(&line, &a, &headers) {
            Ok(r) => r,
            Err(msg) => {
                input_error = Some(format!("line {line_no}: {msg}"));
                break;
            }
        };
        let delivery = producer
            .send(&a.topic, record)
            .await
            .with_context(|| format!("line {line_no}"))?;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        if tx.send((line_no, delivery)).await.is_err() {
            break;
        }
    }
    drop(tx);
    producer.flush().await?;
    let (failures, per_partition) = collector.await?;
    if let Some(bar) = bar {
        bar.abort();
        let _ = bar.await;
        eprint!("\r\x1b[2K");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored = counters.stored.load(Ordering::Relaxed);
    let failed = failures.not_applied + failures.unknown;
    for f in &failures.first {
        eprintln!(
            "raftka: {} {}",
            paint(out.color_err, "error:", Color::Red),
            f.replace('\n', " ")
        );
    }
    if out.json() {
        out.print_json(&json!({
            "topic": a.topic, "stored": stored, "not_stored": failures.not_applied,
            "outcome_unknown": failures.unknown, "skipped_empty_lines": skipped,
            "seconds": elapsed, "records_per_sec": stored as f64 / elapsed.max(1e-9),
            "partitions": per_partition, "input_error": input_error,
        }));
    } else {
        let parts: Vec<String> = per_partition
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect();
        eprintln!(
            "produced {stored} record(s) to {} in {elapsed:.2}s ({:.0} records/s); per partition {{{}}}{}{}",
            a.topic,
            stored as f64 / elapsed.max(1e-9),
            parts.join(", "),
            if skipped > 0 { format!("; {skipped} empty line(s) skipped") } else { String::new() },
            if failed > 0 {
                paint(out.color_err, &format!("; {} not stored, {} outcome unknown", failures.not_applied, failures.unknown), Color::Red)
            } else {
                String::new()
            },
        );
    }
    if let Some(e) = input_error {
        return Err(crate::UsageError(format!("{e} (records before it were sent)")).into());
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn to_record(
    line: &str,
    a: &ProduceArgs,
    headers: &BTreeMap<String, String>,
) -> Result<NewRecord, String> {
    let (key, value) = match &a.key_separator {
        Some(sep) => match line.split_once(sep.as_str()) {
            Some((k, v)) => (Some(k), v),
            None => return Err(format!("no key separator '{sep}' in the line")),
        },
        None => (None, line),
    };
    let mut record = match a.value_format {
        ValueFormat::String => NewRecord::string(value),
        ValueFormat::Json => NewRecord::json(
            serde_json::from_str(value).map_err(|e| format!("value is not JSON: {e}"))?,
        ),
    };
    record.key = key.map(str::to_string);
    record.partition = a.partition.map(i64::from);
    record.headers = headers.clone();
    Ok(record)
}

async fn progress_bar(
    c: Arc<Counters>,
    total_bytes: Option<u64>,
    started: Instant,
    at_once: bool,
    color: bool,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        if !at_once && elapsed < Duration::from_secs(1) {
            continue;
        }
        let stored = c.stored.load(Ordering::Relaxed);
        let rate = stored as f64 / elapsed.as_secs_f64().max(1e-9);
        let read = c.read_bytes.load(Ordering::Relaxed);
        let bar = match total_bytes {
            Some(total) if total > 0 => {
                let frac = (read as f64 / total as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                format!(
                    "[{}{}] {:>3.0}% ",
                    paint(color, &"#".repeat(filled), Color::Green),
                    " ".repeat(30 - filled),
                    frac * 100.0
                )
            }
            _ => String::new(),
        };
        eprint!(
            "\r\x1b[2K{bar}{stored} stored, {} sent, {rate:.0} records/s, {:.1} MB read",
            c.sent.load(Ordering::Relaxed),
            read as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sep: Option<&str>, format: ValueFormat) -> ProduceArgs {
        ProduceArgs {
            topic: "t".into(),
            file: None,
            key_separator: sep.map(str::to_string),
            partition: None,
            headers: Vec::new(),
            value_format: format,
            progress: Progress::Never,
            linger_ms: 5,
            batch_bytes: 1024,
            idempotence: OnOff::On,
        }
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let r = to_record(
            "k:a:b",
            &args(Some(":"), ValueFormat::String),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(r.key.as_deref(), Some("k"));
        assert_eq!(r.value, Some(serde_json::json!("a:b")));
        assert!(to_record(
            "no-sep",
            &args(Some(":"), ValueFormat::String),
            &BTreeMap::new()
        )
        .is_err());
    }

    #[test]
    fn json_values_are_parsed_and_bad_json_is_an_error() {
        let a = args(None, ValueFormat::Json);
        let r = to_record(r#"{"n":1}"#, &a, &BTreeMap::new()).unwrap();
        assert_eq!(r.value, Some(serde_json::json!({"n": 1})));
        assert!(to_record("{oops", &a, &BTreeMap::new()).is_err());
    }
}

//! `raftka consume TOPIC --partition P`: prints a partition's records from an offset.
//! `raftka consume TOPIC --group G`: consumes as a member of a consumer group.
//!
//! Partition mode: without `--follow` it stops at the end of the partition (the high watermark
//! of the last fetch); with `--follow` it long-polls for new records until `--max` records or
//! Ctrl-C. Ctrl-C stops cleanly: every record fetched so far is printed and stdout flushed,
//! exit 0.
//!
//! Group mode: a [`raftka_client::Consumer`] with manual commits. After each polled batch is
//! printed and stdout flushed, exactly what was printed is committed. Without `--follow` it
//! stops after `--max` records or when nothing arrived for about 2 s. On Ctrl-C it stops
//! polling, commits what it printed, leaves the group and exits 0.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args, ValueEnum};
use raftka_client::{
    Client, Consumer, ConsumerConfig, FetchedRecord, OffsetReset, PartitionOffsets,
};
use serde_json::json;

use crate::output::Out;
use crate::usage;

/// How each record is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// The value only: strings as they are, other JSON compact, binary values as base64.
    Value,
    /// One JSON object per line: topic, partition, offset, timestamp_ms, key, value, headers.
    Json,
    /// --template with {topic} {partition} {offset} {timestamp} {key} {value} {headers};
    /// \n and \t are expanded.
    Template,
}

/// `--auto-offset-reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AutoOffsetReset {
    /// The partition's log start.
    Earliest,
    /// The partition's end: only records produced from now on.
    Latest,
}

/// Options of `raftka consume`.
#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["partition", "group"])))]
#[command(after_help = "\
Examples:
  raftka consume orders --partition 0                        # everything in partition 0, then exit
  raftka consume orders -p 0 --offset latest --follow        # only new records, until Ctrl-C
  raftka consume orders -p 1 --offset 1500 --max 10 --format json
  raftka consume orders -p 0 --offset @1763900000000         # from the first record at or after that time
  raftka consume orders -p 0 --format template --template '{offset}\\t{key}\\t{value}'
  raftka consume orders --group billing --follow             # as a group member, until Ctrl-C

With --group, the records printed are committed after each batch (and on Ctrl-C), so a restart
resumes right after the last record printed.")]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Partition to read (partition mode).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Consume as a member of this consumer group: partitions are shared with the group's
    /// other members, and what is printed is committed.
    #[arg(long, short = 'g', conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// With --group: where to start on a partition the group has no committed offset for.
    #[arg(long, value_enum, default_value_t = AutoOffsetReset::Earliest, requires = "group")]
    pub auto_offset_reset: AutoOffsetReset,
    /// Where to start: earliest (the log start, default), latest (only records produced from
    /// now on), an offset number, or @TIMESTAMP_MS (the first record at or after that time,
    /// or the end when none is that recent).
    #[arg(long, short = 'O')]
    pub offset: Option<String>,
    /// Keep waiting for new records (long poll) instead of stopping at the end of the
    /// partition.
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub max: Option<u64>,
    /// How to print each record.
    #[arg(long, value_enum, default_value_t = RecordFormat::Value)]
    pub format: RecordFormat,
    /// The template for --format template.
    #[arg(long, short = 't')]
    pub template: Option<String>,
    /// Most records per fetch request (1-10000).
    #[arg(long, default_value_t = 1000)]
    pub fetch_max_records: u32,
}

const FIELDS: [&str; 7] = [
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "value",
    "headers",
];

pub async fn run(client: &Client, a: ConsumeArgs, out: &Out) -> anyhow::Result<ExitCode> {
    let format = if out.json() && a.format == RecordFormat::Value {
        RecordFormat::Json
    } else {
        a.format
    };
    let template = match (format, &a.template) {
        (RecordFormat::Template, Some(t)) => parse_template(t)?,
        (RecordFormat::Template, None) => return usage("--format template needs --template"),
        (_, Some(_)) => return usage("--template needs --format template"),
        _ => Vec::new(),
    };
    if !(1..=10_000).contains(&a.fetch_max_records) {
        return usage("--fetch-max-records must be between 1 and 10000");
    }
    let printer = Printer {
        format,
        template,
        topic: a.topic.clone(),
    };
    match (&a.group, a.partition) {
        (Some(group), _) => run_group(client, &a, group, &printer).await,
        (None, Some(partition)) => run_partition(client, &a, partition, &printer).await,
        (None, None) => usage("consume needs --partition P or --group G"),
    }
}

/// SIGINT as a stream, registered at once (so a Ctrl-C is never lost, even before the first
/// `await` on it).
fn interrupts() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("install the Ctrl-C handler")
}

/// Where `--offset` starts in partition mode.
async fn start_offset(client: &Client, a: &ConsumeArgs, partition: u32) -> anyhow::Result<u64> {
    let spec = a.offset.as_deref().unwrap_or("earliest");
    match spec {
        "earliest" | "latest" => {
            let o = client
                .partition_offsets(&a.topic, partition)
                .await
                .with_context(|| format!("offsets of {}/{partition}", a.topic))?;
            Ok(if spec == "earliest" {
                o.earliest
            } else {
                o.latest
            })
        }
        n if n.starts_with('@') => {
            let Ok(ts) = n[1..].parse::<i64>() else {
                return usage(format!(
                    "--offset @TIMESTAMP_MS expects milliseconds since the epoch, got '{n}'"
                ));
            };
            let o: PartitionOffsets = client
                .call_json(
                    reqwest::Method::GET,
                    &format!(
                        "/v1/topics/{}/partitions/{partition}/offsets?timestamp_ms={ts}",
                        a.topic
                    ),
                    None,
                )
                .await
                .with_context(|| format!("offset of {}/{partition} at time {ts}", a.topic))?;
            Ok(o.lookup.and_then(|l| l.offset).unwrap_or(o.latest))
        }
        n => match n.parse::<u64>() {
            Ok(n) => Ok(n),
            Err(_) => usage(format!(
                "--offset expects earliest, latest, a number or @TIMESTAMP_MS, got '{n}'"
            )),
        },
    }
}

async fn run_partition(
    client: &Client,
    a: &ConsumeArgs,
    partition: u32,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let mut interrupted = interrupts()?;
    let mut offset = start_offset(client, a, partition).await?;
    let mut printed = 0u64;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    'outer: loop {
        let want = match a.max {
            Some(max) if printed >= max => break,
            Some(max) => (max - printed).min(u64::from(a.fetch_max_records)) as u32,
            None => a.fetch_max_records,
        };
        let wait_ms = if a.follow { 5_000 } else { 0 };
        let reply = tokio::select! {
            r = client.fetch(&a.topic, partition, offset, want, wait_ms) => r
                .with_context(|| format!("fetch {}/{partition} at offset {offset}", a.topic))?,
            _ = interrupted.recv() => break,
        };
        for r in &reply.records {
            if writeln!(stdout, "{}", printer.line(partition, r)).is_err() {
                // The reader went away (`| head`): stop quietly.
                break 'outer;
            }
            printed += 1;
            offset = r.offset + 1;
        }
        if stdout.flush().is_err() {
            break;
        }
        if !a.follow && (reply.records.is_empty() || offset >= reply.high_watermark) {
            break;
        }
    }
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}

/// How long a group consumer without `--follow` waits for records before it stops.
const GROUP_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

async fn run_group(
    client: &Client,
    a: &ConsumeArgs,
    group: &str,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let mut interrupted = interrupts()?;
    let mut cfg = ConsumerConfig::new(group, &[a.topic.as_str()]);
    cfg.client_id = "raftka-cli".into();
    cfg.auto_commit_interval = None;
    cfg.auto_offset_reset = match a.auto_offset_reset {
        AutoOffsetReset::Earliest => OffsetReset::Earliest,
        AutoOffsetReset::Latest => OffsetReset::Latest,
    };
    cfg.max_poll_records = a.fetch_max_records;
    cfg.poll_wait = std::time::Duration::from_millis(if a.follow { 5_000 } else { 500 });
    let mut consumer = Consumer::join(client.clone(), cfg)
        .await
        .with_context(|| format!("join group {group}"))?;
    let result = consume_group(&mut consumer, a, printer, &mut interrupted).await;
    // Commit what was printed (a no-op when nothing is new), unless stdout broke, then leave.
    let committed = match result {
        Ok(false) => Ok(()),
        _ => consumer
            .commit()
            .await
            .with_context(|| format!("commit offsets of group {group}")),
    };
    let left = consumer
        .close()
        .await
        .with_context(|| format!("leave group {group}"));
    result?;
    committed?;
    left?;
    Ok(ExitCode::SUCCESS)
}

/// The poll, print, commit loop. Returns when `--max` is reached, when idle (without
/// `--follow`), on Ctrl-C, or when stdout is closed. The consumer's positions are left at
/// exactly the records printed; the result says whether they may be committed (`false` when
/// stdout broke, so some lines may not have reached the reader).
async fn consume_group(
    consumer: &mut Consumer,
    a: &ConsumeArgs,
    printer: &Printer,
    interrupted: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<bool> {
    let mut printed = 0u64;
    let mut last_data = std::time::Instant::now();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        if a.max.is_some_and(|max| printed >= max) {
            return Ok(true);
        }
        let batch = tokio::select! {
            biased;
            _ = interrupted.recv() => return Ok(true),
            r = consumer.poll() => r.context("poll")?,
        };
        if batch.is_empty() {
            if !a.follow && last_data.elapsed() >= GROUP_IDLE {
                return Ok(true);
            }
            continue;
        }
        last_data = std::time::Instant::now();
        // The first record of each partition that was not printed: the position to go back to.
        let mut rewind: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut closed = false;
        for r in &batch {
            let room = a.max.is_none_or(|max| printed < max);
            if room && !closed {
                if writeln!(stdout, "{}", printer.line(r.partition, &r.record)).is_ok() {
                    printed += 1;
                    continue;
                }
                closed = true;
            }
            rewind.entry(r.partition).or_insert(r.record.offset);
        }
        // Only what reached stdout counts as printed.
        if stdout.flush().is_err() {
            return Ok(false);
        }
        for (partition, offset) in &rewind {
            consumer.seek(&a.topic, *partition, *offset)?;
        }
        if closed {
            // The reader went away (`| head`): lines still buffered may be lost, so commit
            // nothing more; what is not committed is delivered again.
            return Ok(false);
        }
        consumer.commit().await.context("commit")?;
    }
}

/// Renders records in the chosen `--format`.
struct Printer {
    format: RecordFormat,
    template: Vec<Part>,
    topic: String,
}

impl Printer {
    fn line(&self, partition: u32, r: &FetchedRecord) -> String {
        match self.format {
            RecordFormat::Value => value_text(r),
            RecordFormat::Json => json!({
                "topic": self.topic, "partition": partition, "offset": r.offset,
                "timestamp_ms": r.timestamp_ms, "key": r.key, "value": r.value,
                "value_base64": r.value_base64, "headers": r.headers,
            })
            .to_string(),
            RecordFormat::Template => render(&self.template, &self.topic, partition, r),
        }
    }
}

fn value_text(r: &FetchedRecord) -> String {
    match (&r.value, &r.value_base64) {
        (_, Some(b64)) => b64.clone(),
        (serde_json::Value::String(s), None) => s.clone(),
        (v, None) => v.to_string(),
    }
}

/// A template cut into literal text and `{field}` parts.
enum Part {
    Text(String),
    Field(&'static str),
}

fn parse_template(t: &str) -> anyhow::Result<Vec<Part>> {
    let t = t.replace("\\n", "\n").replace("\\t", "\t");
    let mut parts = Vec::new();
    let mut rest = t.as_str();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return usage(format!("--template: unclosed '{{' in '{t}'"));
        };
        let name = &rest[start + 1..start + len];
        let Some(field) = FIELDS.iter().find(|f| **f == name) else {
            return usage(format!(
                "--template: unknown field {{{name}}}; known: {}",
                FIELDS.map(|f| format!("{{{f}}}")).join(" ")
            ));
        };
        parts.push(Part::Text(rest[..start].to_string()));
        parts.push(Part::Field(field));
        rest = &rest[start + len + 1..];
    }
    parts.push(Part::Text(rest.to_string()));
    Ok(parts)
}

fn render(parts: &[Part], topic: &str, partition: u32, r: &FetchedRecord) -> String {
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Text(t) => s.push_str(t),
            Part::Field("topic") => s.push_str(topic),
            Part::Field("partition") => s.push_str(&partition.to_string()),
            Part::Field("offset") => s.push_str(&r.offset.to_string()),
            Part::Field("timestamp") => s.push_str(&r.timestamp_ms.to_string()),
            Part::Field("key") => s.push_str(r.key.as_deref().unwrap_or("")),
            Part::Field("value") => s.push_str(&value_text(r)),
            Part::Field(_) => s.push_str(&json!(r.headers).to_string()),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> FetchedRecord {
        FetchedRecord {
            offset: 7,
            timestamp_ms: 1000,
            key: Some("alice".into()),
            value: serde_json::json!({"a": 1}),
            value_base64: None,
            headers: [("h".to_string(), "v".to_string())].into(),
        }
    }

    #[test]
    fn templates_fill_every_field_and_expand_escapes() {
        let parts =
            parse_template(r"{topic}/{partition}@{offset}\t{key}={value} {headers}").unwrap();
        assert_eq!(
            render(&parts, "t", 2, &record()),
            "t/2@7\talice={\"a\":1} {\"h\":\"v\"}"
        );
    }

    #[test]
    fn unknown_template_fields_are_usage_errors() {
        let e = parse_template("{nope}").err().unwrap();
        assert!(e.downcast_ref::<crate::UsageError>().is_some());
        assert!(parse_template("{offset").is_err());
    }

    #[test]
    fn value_format_prints_strings_raw_and_binary_as_base64() {
        let mut r = record();
        r.value = serde_json::json!("plain text");
        assert_eq!(value_text(&r), "plain text");
        r.value = serde_json::Value::Null;
        r.value_base64 = Some("AAE=".into());
        assert_eq!(value_text(&r), "AAE=");
    }
}

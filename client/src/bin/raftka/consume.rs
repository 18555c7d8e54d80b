//! `raftka consume TOPIC --partition P`: prints a partition's records from an offset.
//!
//! Without `--follow` it stops at the end of the partition (the high watermark of the last
//! fetch); with `--follow` it long-polls for new records until `--max` records or Ctrl-C.
//! Ctrl-C stops cleanly: every record fetched so far is printed and stdout flushed, exit 0.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use raftka_client::{Client, FetchedRecord};
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

/// Options of `raftka consume`.
#[derive(Args)]
#[command(after_help = "\
Examples:
  raftka consume orders --partition 0                        # everything in partition 0, then exit
  raftka consume orders -p 0 --offset latest --follow        # only new records, until Ctrl-C
  raftka consume orders -p 1 --offset 1500 --max 10 --format json
  raftka consume orders -p 0 --format template --template '{offset}\\t{key}\\t{value}'

Consumer groups (--group) and @timestamp offsets are not available yet.")]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Partition to read.
    #[arg(long, short = 'p')]
    pub partition: u32,
    /// Where to start: earliest (the log start), latest (only records produced from now on),
    /// or an offset number.
    #[arg(long, short = 'O', default_value = "earliest")]
    pub offset: String,
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
        (RecordFormat::Template, Some(t)) => Some(parse_template(t)?),
        (RecordFormat::Template, None) => return usage("--format template needs --template"),
        (_, Some(_)) => return usage("--template needs --format template"),
        _ => None,
    };
    if !(1..=10_000).contains(&a.fetch_max_records) {
        return usage("--fetch-max-records must be between 1 and 10000");
    }
    let mut offset = match a.offset.as_str() {
        "earliest" | "latest" => {
            let o = client
                .partition_offsets(&a.topic, a.partition)
                .await
                .with_context(|| format!("offsets of {}/{}", a.topic, a.partition))?;
            if a.offset == "earliest" {
                o.earliest
            } else {
                o.latest
            }
        }
        n if n.starts_with('@') => {
            return usage("@timestamp offsets are not supported yet (the server has no time index)")
        }
        n => match n.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return usage(format!(
                    "--offset expects earliest, latest or a number, got '{n}'"
                ))
            }
        },
    };
    let mut printed = 0u64;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    'outer: loop {
        let want = match a.max {
            Some(max) if printed >= max => break,
            Some(max) => (max - printed).min(u64::from(a.fetch_max_records)) as u32,
            None => a.fetch_max_records,
        };
        let wait_ms = if a.follow { 5_000 } else { 0 };
        let reply = tokio::select! {
            r = client.fetch(&a.topic, a.partition, offset, want, wait_ms) => r
                .with_context(|| format!("fetch {}/{} at offset {offset}", a.topic, a.partition))?,
            _ = &mut interrupted => break,
        };
        for r in &reply.records {
            let line = match format {
                RecordFormat::Value => value_text(r),
                RecordFormat::Json => json!({
                    "topic": a.topic, "partition": a.partition, "offset": r.offset,
                    "timestamp_ms": r.timestamp_ms, "key": r.key, "value": r.value,
                    "value_base64": r.value_base64, "headers": r.headers,
                })
                .to_string(),
                RecordFormat::Template => render(template.as_deref().unwrap_or_default(), &a, r),
            };
            if writeln!(stdout, "{line}").is_err() {
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

fn render(parts: &[Part], a: &ConsumeArgs, r: &FetchedRecord) -> String {
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Text(t) => s.push_str(t),
            Part::Field("topic") => s.push_str(&a.topic),
            Part::Field("partition") => s.push_str(&a.partition.to_string()),
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

    fn args() -> ConsumeArgs {
        ConsumeArgs {
            topic: "t".into(),
            partition: 2,
            offset: "earliest".into(),
            follow: false,
            max: None,
            format: RecordFormat::Template,
            template: None,
            fetch_max_records: 1000,
        }
    }

    #[test]
    fn templates_fill_every_field_and_expand_escapes() {
        let parts =
            parse_template(r"{topic}/{partition}@{offset}\t{key}={value} {headers}").unwrap();
        assert_eq!(
            render(&parts, &args(), &record()),
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

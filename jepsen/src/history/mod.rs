//! The history a fault run records: one JSON object per line, one line per event.
//!
//! An event is `{"process":u64,"type":..,"f":..,"value":..,"time_ns":u64}`:
//! - `type` is `invoke`, `ok`, `fail` or `info`. Every client operation is an `invoke` followed,
//!   on the same process, by one completion. `ok` means it happened, `fail` that it certainly did
//!   not, `info` that nobody knows.
//! - `f` is `send`, `poll`, `assign`, `crash`, `commit`, `fetch_committed` or `nemesis`.
//! - `value` depends on `f` (see [`values`]); nemesis events carry any JSON describing the fault.
//! - `time_ns` is taken from one monotonic clock of the recording harness. All real-time
//!   reasoning in the checker compares these numbers, strictly: an operation precedes another
//!   only if it completed at a time strictly before the other was invoked.
//!
//! Invariants upheld by [`History::from_events`]: a process has at most one operation in flight,
//! every completion matches the `f` of the invoke it closes, and a value is sent at most once per
//! key (values are the tracer that makes every check possible).

mod builder;
mod operation;
pub mod values;

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use builder::{HistoryBuilder, Reads};
pub use operation::{History, NemesisEvent, OpBody, OpId, Operation, Outcome, PollResult};

/// A record offset within one key's log.
///
/// A plain alias rather than a newtype: the checker does a great deal of offset arithmetic, and
/// this crate never handles Raft log indexes that an `Offset` could be confused with.
pub type Offset = u64;

/// A value written by a send. The harness makes every value unique, so a value traces one write.
pub type Value = i64;

/// A process id. A process that receives an `info` is retired and replaced by a fresh id.
pub type ProcessId = u64;

/// A key names one topic-partition, written `topic/partition`, e.g. `t/0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(pub String);

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key(s.to_owned())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A consumer group id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub String);

impl From<&str> for GroupId {
    fn from(s: &str) -> Self {
        GroupId(s.to_owned())
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an event starts an operation or completes it, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client is about to perform the operation.
    Invoke,
    /// The operation took effect.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The outcome is unknown; the process is retired.
    Info,
}

/// The function an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Produce one value to one key.
    Send,
    /// Consume from the assigned keys.
    Poll,
    /// Replace the consumer's assignment, optionally seeking to the beginning.
    Assign,
    /// Tear the client down and open a fresh one.
    Crash,
    /// Commit a consumer-group offset.
    Commit,
    /// Read a consumer-group offset.
    FetchCommitted,
    /// A fault injected (or healed) by the nemesis.
    Nemesis,
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Function::Send => "send",
            Function::Poll => "poll",
            Function::Assign => "assign",
            Function::Crash => "crash",
            Function::Commit => "commit",
            Function::FetchCommitted => "fetch_committed",
            Function::Nemesis => "nemesis",
        };
        f.write_str(name)
    }
}

/// One line of the history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The process (client) that performed the operation, or the nemesis's id.
    pub process: ProcessId,
    /// Invoke or one of the three completions.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Which operation.
    pub f: Function,
    /// The payload; its shape depends on `f` and `kind` (see [`values`]).
    #[serde(default)]
    pub value: serde_json::Value,
    /// Monotonic time of the event in nanoseconds since the run started.
    pub time_ns: u64,
}

/// Why a history could not be read or made sense of.
#[derive(Debug)]
pub enum HistoryError {
    /// The file could not be read.
    Io(std::io::Error),
    /// A line is not a valid event.
    Json {
        /// 1-based line number.
        line: usize,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// An event's `value` does not have the shape its `f` and `type` require.
    BadValue {
        /// 0-based index of the event in the history.
        event: usize,
        /// What was wrong.
        reason: String,
    },
    /// The events do not pair into operations (a harness bug, not a database bug).
    Pairing {
        /// 0-based index of the offending event.
        event: usize,
        /// What was wrong.
        reason: String,
    },
    /// A value was sent twice to one key, so reads of it cannot be traced to one write.
    ValueReused {
        /// The key.
        key: Key,
        /// The reused value.
        value: Value,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::Io(e) => write!(f, "cannot read history: {e}"),
            HistoryError::Json { line, source } => write!(f, "line {line}: bad event: {source}"),
            HistoryError::BadValue { event, reason } => write!(f, "event {event}: {reason}"),
            HistoryError::Pairing { event, reason } => write!(f, "event {event}: {reason}"),
            HistoryError::ValueReused { key, value } => {
                write!(f, "value {value} was sent to key {key} more than once")
            }
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HistoryError::Io(e) => Some(e),
            HistoryError::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Parses JSON-lines events. Blank lines are skipped.
///
/// # Errors
/// [`HistoryError::Io`] if reading fails, [`HistoryError::Json`] for a malformed line.
pub fn parse_events(reader: impl BufRead) -> Result<Vec<Event>, HistoryError> {
    let mut events = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(HistoryError::Io)?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|source| HistoryError::Json {
            line: i + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Reads a JSON-lines history file and pairs it into operations.
///
/// # Errors
/// Any [`HistoryError`]: unreadable file, malformed line, or events that do not pair.
pub fn read_jsonl(path: &Path) -> Result<History, HistoryError> {
    let file = std::fs::File::open(path).map_err(HistoryError::Io)?;
    let events = parse_events(std::io::BufReader::new(file))?;
    History::from_events(events)
}

/// Writes events as JSON lines, one event per line.
///
/// # Errors
/// [`HistoryError::Io`] if writing fails.
pub fn write_events(mut writer: impl Write, events: &[Event]) -> Result<(), HistoryError> {
    for event in events {
        let line =
            serde_json::to_string(event).map_err(|e| HistoryError::Io(std::io::Error::other(e)))?;
        writeln!(writer, "{line}").map_err(HistoryError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_through_json_lines() {
        let text = concat!(
            r#"{"process":1,"type":"invoke","f":"send","value":{"key":"t/0","value":7},"time_ns":10}"#,
            "\n\n",
            r#"{"process":1,"type":"ok","f":"send","value":{"key":"t/0","offset":0,"value":7},"time_ns":20}"#,
            "\n",
            r#"{"process":0,"type":"info","f":"nemesis","value":"isolate n1","time_ns":25}"#,
            "\n",
        );
        let events = parse_events(text.as_bytes()).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].kind, EventType::Invoke);
        assert_eq!(events[1].f, Function::Send);
        assert_eq!(events[2].f, Function::Nemesis);

        let mut out = Vec::new();
        write_events(&mut out, &events).unwrap();
        assert_eq!(parse_events(out.as_slice()).unwrap(), events);
    }

    #[test]
    fn malformed_line_reports_its_number() {
        let text = "{\"process\":1}\n";
        match parse_events(text.as_bytes()) {
            Err(HistoryError::Json { line, .. }) => assert_eq!(line, 1),
            other => panic!("expected a JSON error, got {other:?}"),
        }
    }

    #[test]
    fn fetch_committed_is_snake_case() {
        let json = serde_json::to_string(&Function::FetchCommitted).unwrap();
        assert_eq!(json, "\"fetch_committed\"");
    }
}

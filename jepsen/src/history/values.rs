//! Typed shapes of an event's `value`, one per function.
//!
//! | `f` | invoke | `ok` completion |
//! |---|---|---|
//! | `send` | [`SendValue`] without `offset` | [`SendValue`], `offset` if known |
//! | `poll` | `null`, or `{"final":true}` | [`PollValue`] |
//! | `assign` | [`AssignValue`] | anything (the invoke's value is used) |
//! | `commit` | [`GroupOffsetValue`] with `offset` | anything |
//! | `fetch_committed` | [`GroupOffsetValue`] without `offset` | [`GroupOffsetValue`]; `offset` `null`, absent or negative means "nothing committed" |
//! | `crash` | anything | anything |
//!
//! `fail` and `info` completions may carry anything: only the invoke's value is trusted.
//! Pairing (in `operation`) merges these shapes into an [`OpBody`].

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::operation::{OpBody, PollResult};
use super::{Event, Function, GroupId, HistoryError, Key, Offset, Value};

/// A send: the key and value, and on an `ok` completion the offset it landed at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendValue {
    /// The topic-partition written to.
    pub key: Key,
    /// The unique value written.
    pub value: Value,
    /// Where it landed, on an `ok` completion that reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Offset>,
}

/// What a poll returned.
///
/// The final phase of a run is recognised by `"final": true` here (on the invoke or the
/// completion), or by the poll's process being listed in
/// [`CheckConfig::final_processes`](crate::checker::CheckConfig::final_processes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollValue {
    /// Records per key, as `[offset, value]` pairs in the order returned.
    #[serde(default)]
    pub reads: BTreeMap<Key, Vec<(Offset, Value)>>,
    /// The high watermark the server returned with each key's records: one past the last
    /// committed offset. No returned offset may reach it.
    #[serde(default)]
    pub high_watermarks: BTreeMap<Key, Offset>,
    /// The log start offset the server reported per key, if any (after retention, the final log
    /// is dense from here rather than from 0).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_starts: BTreeMap<Key, Offset>,
    /// Marks a poll of the final phase: faults healed, reading every key from offset 0.
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub final_read: bool,
}

/// An assignment of keys to a consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignValue {
    /// The keys now assigned; the previous assignment is replaced.
    pub keys: Vec<Key>,
    /// Whether the consumer then seeks every key to its beginning.
    #[serde(default)]
    pub seek_to_beginning: bool,
}

/// A consumer-group offset: committed by `commit`, returned by `fetch_committed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupOffsetValue {
    /// The consumer group.
    pub group: GroupId,
    /// The topic-partition.
    pub key: Key,
    /// The committed offset: the next offset the group will consume. Kafka spells "nothing
    /// committed" as -1; any negative number or `null` is read that way.
    #[serde(default)]
    pub offset: Option<i64>,
}

impl GroupOffsetValue {
    /// The offset as an [`Offset`], `None` when nothing is committed.
    pub fn committed(&self) -> Option<Offset> {
        self.offset.and_then(|o| Offset::try_from(o).ok())
    }
}

/// The optional `final` flag a poll invoke may carry.
#[derive(Debug, Clone, Default, Deserialize)]
struct PollInvoke {
    #[serde(default, rename = "final")]
    final_read: bool,
}

fn parse<T: DeserializeOwned>(event: usize, e: &Event) -> Result<T, HistoryError> {
    serde_json::from_value(e.value.clone()).map_err(|err| HistoryError::BadValue {
        event,
        reason: format!("{} {:?} value: {err}", e.f, e.kind),
    })
}

fn bad(event: usize, reason: String) -> HistoryError {
    HistoryError::BadValue { event, reason }
}

/// The body of an operation as its invoke describes it.
pub(crate) fn invoke_body(index: usize, event: &Event) -> Result<OpBody, HistoryError> {
    Ok(match event.f {
        Function::Send => {
            let v: SendValue = parse(index, event)?;
            OpBody::Send {
                key: v.key,
                value: v.value,
                offset: None,
            }
        }
        Function::Poll => {
            let invoke: PollInvoke = if event.value.is_null() {
                PollInvoke::default()
            } else {
                parse(index, event)?
            };
            OpBody::Poll(PollResult {
                final_read: invoke.final_read,
                ..PollResult::default()
            })
        }
        Function::Assign => OpBody::Assign(parse(index, event)?),
        Function::Crash | Function::Nemesis => OpBody::Crash,
        Function::Commit => {
            let v: GroupOffsetValue = parse(index, event)?;
            let offset = v
                .committed()
                .ok_or_else(|| bad(index, "commit without a non-negative offset".to_owned()))?;
            OpBody::Commit {
                group: v.group,
                key: v.key,
                offset,
            }
        }
        Function::FetchCommitted => {
            let v: GroupOffsetValue = parse(index, event)?;
            OpBody::FetchCommitted {
                group: v.group,
                key: v.key,
                offset: None,
            }
        }
    })
}

/// Merges an `ok` completion's value into the body its invoke began.
pub(crate) fn complete_body(
    index: usize,
    event: &Event,
    body: &mut OpBody,
) -> Result<(), HistoryError> {
    match body {
        OpBody::Send { key, value, offset } => {
            let done: SendValue = parse(index, event)?;
            if done.key != *key || done.value != *value {
                return Err(bad(
                    index,
                    format!(
                        "send ok for {}={} closes a send of {key}={value}",
                        done.key, done.value
                    ),
                ));
            }
            *offset = done.offset;
        }
        OpBody::Poll(result) => {
            let done: PollValue = if event.value.is_null() {
                PollValue::default()
            } else {
                parse(index, event)?
            };
            result.reads = done.reads;
            result.high_watermarks = done.high_watermarks;
            result.log_starts = done.log_starts;
            result.final_read |= done.final_read;
        }
        OpBody::FetchCommitted { group, key, offset } => {
            let done: GroupOffsetValue = parse(index, event)?;
            if done.group != *group || done.key != *key {
                return Err(bad(
                    index,
                    format!(
                        "fetch_committed ok for {}/{} closes one of {group}/{key}",
                        done.group, done.key
                    ),
                ));
            }
            *offset = done.committed();
        }
        OpBody::Assign(_) | OpBody::Crash | OpBody::Commit { .. } => {}
    }
    Ok(())
}

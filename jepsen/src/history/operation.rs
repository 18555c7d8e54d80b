//! Pairing events into operations: each invoke with the completion its process records next.
//!
//! An operation whose invoke never got a completion (the run ended, or the harness lost the
//! client) is indeterminate, exactly like an `info`. Nemesis events are kept aside: they are not
//! client operations and take no part in pairing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::values::{complete_body, invoke_body, AssignValue};
use super::{Event, EventType, Function, GroupId, HistoryError, Key, Offset, ProcessId, Value};

/// Index of an operation in [`History::operations`] (operations are in invoke order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct OpId(pub usize);

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: an `info` completion, or no completion at all.
    Info,
}

/// What an `ok` poll returned; empty for polls that did not complete `ok`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollResult {
    /// Records per key, `(offset, value)` in the order returned.
    pub reads: BTreeMap<Key, Vec<(Offset, Value)>>,
    /// High watermark per key returned with the records.
    pub high_watermarks: BTreeMap<Key, Offset>,
    /// Log start offset per key, if the server reported it.
    pub log_starts: BTreeMap<Key, Offset>,
    /// Whether the poll was flagged `"final": true` on its invoke or completion.
    pub final_read: bool,
}

/// The typed content of an operation, merged from its invoke and completion.
#[derive(Debug, Clone, PartialEq)]
pub enum OpBody {
    /// A send of `value` to `key`; `offset` is known only from an `ok` completion.
    Send {
        /// Target key.
        key: Key,
        /// Value written.
        value: Value,
        /// Offset reported by an `ok` completion.
        offset: Option<Offset>,
    },
    /// A poll and, if `ok`, what it returned.
    Poll(PollResult),
    /// An assignment.
    Assign(AssignValue),
    /// The client was torn down and reopened.
    Crash,
    /// A consumer-group offset commit.
    Commit {
        /// Group.
        group: GroupId,
        /// Key.
        key: Key,
        /// The offset written.
        offset: Offset,
    },
    /// A read of a consumer-group offset; `offset` is what an `ok` read returned.
    FetchCommitted {
        /// Group.
        group: GroupId,
        /// Key.
        key: Key,
        /// The committed offset read, `None` for "nothing committed" (or not `ok`).
        offset: Option<Offset>,
    },
}

/// One client operation: an invoke and its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Position in [`History::operations`].
    pub id: OpId,
    /// The process that ran it.
    pub process: ProcessId,
    /// Which function.
    pub f: Function,
    /// How it ended.
    pub outcome: Outcome,
    /// Invoke time.
    pub invoke_ns: u64,
    /// Completion time; `None` if it never completed.
    pub complete_ns: Option<u64>,
    /// Typed payload.
    pub body: OpBody,
}

impl Operation {
    /// Whether this operation completed `ok`.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Whether this operation finished strictly before `other` was invoked (real-time order).
    pub fn precedes(&self, other: &Operation) -> bool {
        self.complete_ns.is_some_and(|c| c < other.invoke_ns)
    }
}

/// A fault event recorded by the nemesis.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    /// The nemesis's process id.
    pub process: ProcessId,
    /// Event type as recorded.
    pub kind: EventType,
    /// Free-form description of the fault.
    pub value: serde_json::Value,
    /// Time of the event.
    pub time_ns: u64,
}

/// A paired history: client operations in invoke order, and nemesis events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Client operations, in the order they were invoked.
    pub operations: Vec<Operation>,
    /// Nemesis events, in recorded order.
    pub nemesis: Vec<NemesisEvent>,
    /// How many events the history had.
    pub event_count: usize,
}

impl History {
    /// Pairs raw events into operations.
    ///
    /// # Errors
    /// [`HistoryError::Pairing`] when a process invokes twice without completing, completes
    /// without invoking, or completes a different function; [`HistoryError::BadValue`] when a
    /// value has the wrong shape; [`HistoryError::ValueReused`] when one value is sent twice to
    /// one key.
    pub fn from_events(events: Vec<Event>) -> Result<History, HistoryError> {
        let mut history = History {
            event_count: events.len(),
            ..History::default()
        };
        let mut in_flight: HashMap<ProcessId, usize> = HashMap::new();
        for (index, event) in events.into_iter().enumerate() {
            if event.f == Function::Nemesis {
                history.nemesis.push(NemesisEvent {
                    process: event.process,
                    kind: event.kind,
                    value: event.value,
                    time_ns: event.time_ns,
                });
                continue;
            }
            if event.kind == EventType::Invoke {
                if in_flight.contains_key(&event.process) {
                    return Err(pairing(
                        index,
                        "process invoked while an operation was in flight",
                    ));
                }
                let id = history.operations.len();
                history.operations.push(Operation {
                    id: OpId(id),
                    process: event.process,
                    f: event.f,
                    outcome: Outcome::Info,
                    invoke_ns: event.time_ns,
                    complete_ns: None,
                    body: invoke_body(index, &event)?,
                });
                in_flight.insert(event.process, id);
                continue;
            }
            let Some(id) = in_flight.remove(&event.process) else {
                if event.f == Function::Crash {
                    // A crash may be recorded as a lone completion: it is instantaneous.
                    let id = OpId(history.operations.len());
                    history.operations.push(Operation {
                        id,
                        process: event.process,
                        f: Function::Crash,
                        outcome: outcome_of(event.kind),
                        invoke_ns: event.time_ns,
                        complete_ns: Some(event.time_ns),
                        body: OpBody::Crash,
                    });
                    continue;
                }
                return Err(pairing(index, "completion without a matching invoke"));
            };
            let op = &mut history.operations[id];
            if op.f != event.f {
                return Err(pairing(
                    index,
                    &format!("completion of {} closes an invoke of {}", event.f, op.f),
                ));
            }
            op.outcome = outcome_of(event.kind);
            op.complete_ns = Some(event.time_ns);
            if op.outcome == Outcome::Ok {
                complete_body(index, &event, &mut op.body)?;
            }
        }
        history.check_values_unique()?;
        Ok(history)
    }

    /// The operation with this id.
    pub fn op(&self, id: OpId) -> &Operation {
        &self.operations[id.0]
    }

    fn check_values_unique(&self) -> Result<(), HistoryError> {
        let mut seen: HashSet<(&Key, Value)> = HashSet::new();
        for op in &self.operations {
            if let OpBody::Send { key, value, .. } = &op.body {
                if !seen.insert((key, *value)) {
                    return Err(HistoryError::ValueReused {
                        key: key.clone(),
                        value: *value,
                    });
                }
            }
        }
        Ok(())
    }
}

fn outcome_of(kind: EventType) -> Outcome {
    match kind {
        EventType::Ok => Outcome::Ok,
        EventType::Fail => Outcome::Fail,
        EventType::Info | EventType::Invoke => Outcome::Info,
    }
}

fn pairing(event: usize, reason: &str) -> HistoryError {
    HistoryError::Pairing {
        event,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::history::parse_events;

    fn history(lines: &[&str]) -> Result<History, HistoryError> {
        History::from_events(parse_events(lines.join("\n").as_bytes()).unwrap())
    }

    #[test]
    fn invoke_and_ok_pair_into_one_operation() {
        let h = history(&[
            r#"{"process":1,"type":"invoke","f":"send","value":{"key":"t/0","value":7},"time_ns":1}"#,
            r#"{"process":2,"type":"invoke","f":"poll","value":null,"time_ns":2}"#,
            r#"{"process":1,"type":"ok","f":"send","value":{"key":"t/0","offset":3,"value":7},"time_ns":3}"#,
            r#"{"process":2,"type":"ok","f":"poll","value":{"reads":{"t/0":[[3,7]]},"high_watermarks":{"t/0":4}},"time_ns":4}"#,
        ])
        .unwrap();
        assert_eq!(h.operations.len(), 2);
        let send = h.op(OpId(0));
        assert_eq!(send.outcome, Outcome::Ok);
        assert_eq!((send.invoke_ns, send.complete_ns), (1, Some(3)));
        assert!(matches!(
            send.body,
            OpBody::Send {
                offset: Some(3),
                ..
            }
        ));
        let OpBody::Poll(poll) = &h.op(OpId(1)).body else {
            panic!("not a poll")
        };
        assert_eq!(poll.reads[&Key::from("t/0")], vec![(3, 7)]);
        assert_eq!(poll.high_watermarks[&Key::from("t/0")], 4);
    }

    #[test]
    fn uncompleted_invoke_is_indeterminate() {
        let h = history(&[
            r#"{"process":1,"type":"invoke","f":"send","value":{"key":"t/0","value":7},"time_ns":1}"#,
        ])
        .unwrap();
        assert_eq!(h.operations[0].outcome, Outcome::Info);
        assert_eq!(h.operations[0].complete_ns, None);
    }

    #[test]
    fn double_invoke_is_a_pairing_error() {
        let err = history(&[
            r#"{"process":1,"type":"invoke","f":"poll","time_ns":1}"#,
            r#"{"process":1,"type":"invoke","f":"poll","time_ns":2}"#,
        ]);
        assert!(matches!(err, Err(HistoryError::Pairing { event: 1, .. })));
    }

    #[test]
    fn completion_of_another_function_is_a_pairing_error() {
        let err = history(&[
            r#"{"process":1,"type":"invoke","f":"poll","time_ns":1}"#,
            r#"{"process":1,"type":"ok","f":"send","value":{"key":"t/0","value":1},"time_ns":2}"#,
        ]);
        assert!(matches!(err, Err(HistoryError::Pairing { event: 1, .. })));
    }

    #[test]
    fn reused_value_is_rejected() {
        let err = history(&[
            r#"{"process":1,"type":"invoke","f":"send","value":{"key":"t/0","value":7},"time_ns":1}"#,
            r#"{"process":1,"type":"fail","f":"send","time_ns":2}"#,
            r#"{"process":1,"type":"invoke","f":"send","value":{"key":"t/0","value":7},"time_ns":3}"#,
        ]);
        assert!(matches!(
            err,
            Err(HistoryError::ValueReused { value: 7, .. })
        ));
    }

    #[test]
    fn nemesis_and_lone_crash_events_are_accepted() {
        let h = history(&[
            r#"{"process":99,"type":"info","f":"nemesis","value":{"fault":"kill","nodes":["n1"]},"time_ns":1}"#,
            r#"{"process":3,"type":"info","f":"crash","time_ns":2}"#,
        ])
        .unwrap();
        assert_eq!(h.nemesis.len(), 1);
        assert_eq!(h.operations[0].f, Function::Crash);
    }

    #[test]
    fn fetch_committed_minus_one_means_nothing_committed() {
        let h = history(&[
            r#"{"process":1,"type":"invoke","f":"fetch_committed","value":{"group":"g","key":"t/0"},"time_ns":1}"#,
            r#"{"process":1,"type":"ok","f":"fetch_committed","value":{"group":"g","key":"t/0","offset":-1},"time_ns":2}"#,
        ])
        .unwrap();
        assert!(matches!(
            h.operations[0].body,
            OpBody::FetchCommitted { offset: None, .. }
        ));
    }
}

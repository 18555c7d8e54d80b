//! A terse way to write histories by hand: for checker tests, fixtures and examples.
//!
//! Every recorded event is stamped 10 ns after the previous one, so the order of calls is the
//! real-time order. Methods named after a function (`send`, `poll`, ...) record an invoke and its
//! `ok` at once; `invoke_*`, `ok_*`, [`fail`](HistoryBuilder::fail) and
//! [`info`](HistoryBuilder::info) record one event each, to interleave concurrent operations.

use std::collections::BTreeMap;

use serde_json::json;

use super::values::{PollValue, SendValue};
use super::{Event, EventType, Function, History, HistoryError, Key, Offset, ProcessId, Value};

/// Records per key, as a poll returns them: `[("t/0", &[(offset, value), ...])]`.
pub type Reads<'a> = &'a [(&'a str, &'a [(Offset, Value)])];

/// Builds a history event by event.
#[derive(Debug, Clone, Default)]
pub struct HistoryBuilder {
    events: Vec<Event>,
    now: u64,
}

impl HistoryBuilder {
    /// An empty history starting at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events recorded so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Pairs the events into a [`History`].
    ///
    /// # Errors
    /// As [`History::from_events`].
    pub fn build(&self) -> Result<History, HistoryError> {
        History::from_events(self.events.clone())
    }

    /// Records one raw event.
    pub fn event(
        &mut self,
        process: ProcessId,
        kind: EventType,
        f: Function,
        value: serde_json::Value,
    ) -> &mut Self {
        self.now += 10;
        self.events.push(Event {
            process,
            kind,
            f,
            value,
            time_ns: self.now,
        });
        self
    }

    /// Invokes a send of `value` to `key`.
    pub fn invoke_send(&mut self, p: ProcessId, key: &str, value: Value) -> &mut Self {
        self.event(
            p,
            EventType::Invoke,
            Function::Send,
            send_json(key, value, None),
        )
    }

    /// Completes a send `ok` at `offset`.
    pub fn ok_send(&mut self, p: ProcessId, key: &str, value: Value, offset: Offset) -> &mut Self {
        self.event(
            p,
            EventType::Ok,
            Function::Send,
            send_json(key, value, Some(offset)),
        )
    }

    /// A send that completes `ok` at `offset` before anything else happens.
    pub fn send(&mut self, p: ProcessId, key: &str, value: Value, offset: Offset) -> &mut Self {
        self.invoke_send(p, key, value)
            .ok_send(p, key, value, offset)
    }

    /// Invokes a poll.
    pub fn invoke_poll(&mut self, p: ProcessId) -> &mut Self {
        self.event(
            p,
            EventType::Invoke,
            Function::Poll,
            serde_json::Value::Null,
        )
    }

    /// Completes a poll `ok`; each key's high watermark is one past its last offset read.
    pub fn ok_poll(&mut self, p: ProcessId, reads: Reads<'_>) -> &mut Self {
        let hws: Vec<(&str, Offset)> = reads
            .iter()
            .filter_map(|(k, rs)| rs.iter().map(|(o, _)| o + 1).max().map(|hw| (*k, hw)))
            .collect();
        self.ok_poll_with_hw(p, reads, &hws)
    }

    /// Completes a poll `ok` with explicit high watermarks.
    pub fn ok_poll_with_hw(
        &mut self,
        p: ProcessId,
        reads: Reads<'_>,
        hws: &[(&str, Offset)],
    ) -> &mut Self {
        let value = poll_json(reads, hws, false);
        self.event(p, EventType::Ok, Function::Poll, value)
    }

    /// A poll that completes `ok` at once, high watermarks as in [`ok_poll`](Self::ok_poll).
    pub fn poll(&mut self, p: ProcessId, reads: Reads<'_>) -> &mut Self {
        self.invoke_poll(p).ok_poll(p, reads)
    }

    /// A poll with explicit high watermarks that completes `ok` at once.
    pub fn poll_with_hw(
        &mut self,
        p: ProcessId,
        reads: Reads<'_>,
        hws: &[(&str, Offset)],
    ) -> &mut Self {
        self.invoke_poll(p).ok_poll_with_hw(p, reads, hws)
    }

    /// A final-phase poll (flagged `"final": true`) that completes `ok` at once.
    pub fn final_poll(&mut self, p: ProcessId, reads: Reads<'_>) -> &mut Self {
        let hws: Vec<(&str, Offset)> = reads
            .iter()
            .filter_map(|(k, rs)| rs.iter().map(|(o, _)| o + 1).max().map(|hw| (*k, hw)))
            .collect();
        self.event(p, EventType::Invoke, Function::Poll, json!({"final": true}));
        self.event(
            p,
            EventType::Ok,
            Function::Poll,
            poll_json(reads, &hws, true),
        )
    }

    /// A final-phase poll with explicit high watermarks that completes `ok` at once.
    pub fn final_poll_with_hw(
        &mut self,
        p: ProcessId,
        reads: Reads<'_>,
        hws: &[(&str, Offset)],
    ) -> &mut Self {
        self.event(p, EventType::Invoke, Function::Poll, json!({"final": true}));
        self.event(
            p,
            EventType::Ok,
            Function::Poll,
            poll_json(reads, hws, true),
        )
    }

    /// An assignment that completes `ok` at once.
    pub fn assign(&mut self, p: ProcessId, keys: &[&str], seek_to_beginning: bool) -> &mut Self {
        let value = json!({"keys": keys, "seek_to_beginning": seek_to_beginning});
        self.event(p, EventType::Invoke, Function::Assign, value.clone());
        self.event(p, EventType::Ok, Function::Assign, value)
    }

    /// A client crash, recorded as one `info` event.
    pub fn crash(&mut self, p: ProcessId) -> &mut Self {
        self.event(p, EventType::Info, Function::Crash, serde_json::Value::Null)
    }

    /// Invokes a commit of `offset` for `group` on `key`.
    pub fn invoke_commit(
        &mut self,
        p: ProcessId,
        group: &str,
        key: &str,
        offset: Offset,
    ) -> &mut Self {
        let value = json!({"group": group, "key": key, "offset": offset});
        self.event(p, EventType::Invoke, Function::Commit, value)
    }

    /// Completes a commit `ok`.
    pub fn ok_commit(&mut self, p: ProcessId, group: &str, key: &str, offset: Offset) -> &mut Self {
        let value = json!({"group": group, "key": key, "offset": offset});
        self.event(p, EventType::Ok, Function::Commit, value)
    }

    /// A commit that completes `ok` at once.
    pub fn commit(&mut self, p: ProcessId, group: &str, key: &str, offset: Offset) -> &mut Self {
        self.invoke_commit(p, group, key, offset)
            .ok_commit(p, group, key, offset)
    }

    /// Invokes a read of the committed offset.
    pub fn invoke_fetch(&mut self, p: ProcessId, group: &str, key: &str) -> &mut Self {
        let value = json!({"group": group, "key": key});
        self.event(p, EventType::Invoke, Function::FetchCommitted, value)
    }

    /// Completes a committed-offset read `ok`; `None` means nothing committed.
    pub fn ok_fetch(
        &mut self,
        p: ProcessId,
        group: &str,
        key: &str,
        offset: Option<Offset>,
    ) -> &mut Self {
        let value = json!({"group": group, "key": key, "offset": offset});
        self.event(p, EventType::Ok, Function::FetchCommitted, value)
    }

    /// A committed-offset read that completes `ok` at once.
    pub fn fetch(
        &mut self,
        p: ProcessId,
        group: &str,
        key: &str,
        offset: Option<Offset>,
    ) -> &mut Self {
        self.invoke_fetch(p, group, key)
            .ok_fetch(p, group, key, offset)
    }

    /// Completes process `p`'s operation `f` with `fail`.
    pub fn fail(&mut self, p: ProcessId, f: Function) -> &mut Self {
        self.event(p, EventType::Fail, f, serde_json::Value::Null)
    }

    /// Completes process `p`'s operation `f` with `info`.
    pub fn info(&mut self, p: ProcessId, f: Function) -> &mut Self {
        self.event(p, EventType::Info, f, serde_json::Value::Null)
    }

    /// Records a nemesis event describing a fault.
    pub fn nemesis(&mut self, description: &str) -> &mut Self {
        self.event(
            u64::MAX,
            EventType::Info,
            Function::Nemesis,
            json!(description),
        )
    }
}

fn send_json(key: &str, value: Value, offset: Option<Offset>) -> serde_json::Value {
    let v = SendValue {
        key: Key::from(key),
        value,
        offset,
    };
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn poll_json(reads: Reads<'_>, hws: &[(&str, Offset)], final_read: bool) -> serde_json::Value {
    let v = PollValue {
        reads: reads
            .iter()
            .map(|(k, rs)| (Key::from(*k), rs.to_vec()))
            .collect(),
        high_watermarks: hws.iter().map(|(k, hw)| (Key::from(*k), *hw)).collect(),
        log_starts: BTreeMap::new(),
        final_read,
    };
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

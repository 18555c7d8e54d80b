//! The `queue` workload's client: one process's sends, polls, assigns and crashes, each recorded
//! as an invoke and a completion, with the outcome mapped honestly.
//!
//! | what happened | send | poll |
//! |---|---|---|
//! | `200` | `ok` with the offset | `ok` with records and high watermark |
//! | error reply with `"outcome": "not_applied"` | `fail` | — |
//! | any other error reply | `info` | `fail` (a read that returned nothing changed nothing) |
//! | `416 offset_out_of_range` | — | `ok` with no records and the reported high watermark, then a re-assign |
//! | TCP connect failed (refused, unreachable, SYN unanswered) | `fail` (nothing was sent) | `fail` |
//! | timeout, reset or truncated reply after connecting | `info` | `info` |
//!
//! A process that records `info` is retired: the client is torn down and continues under a
//! fresh process id with no assignment. The client never retries a send.
//!
//! A poll reads each assigned key in turn, from the position after the last record it returned.
//! Keys that answered go into an `ok` poll even if a later key failed (a poll returns what it
//! got, like a Kafka consumer's); only a poll where no key answered fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::http::{self, HttpError, Timeouts};
use super::node_list::NodeList;
use super::recorder::Recorder;
use super::rng::Rng;
use crate::history::{EventType, Function, ProcessId};

/// What every client of a cell shares.
#[derive(Debug)]
pub struct Shared<'a> {
    /// The history.
    pub recorder: &'a Recorder,
    /// The members' addresses (the membership nemesis changes them).
    pub nodes: NodeList,
    /// The topic.
    pub topic: String,
    /// Its partition count; key `k` is partition `k`.
    pub partitions: u32,
    /// Next value to send (values are unique across the cell).
    pub next_value: AtomicI64,
    /// Highest offset seen per partition, by any ok send or poll (the final phase's target).
    pub max_offset: Mutex<BTreeMap<u32, u64>>,
    /// Timeouts of a send; the total exceeds the node's request timeout.
    pub send_timeouts: Timeouts,
    /// Timeouts of one fetch.
    pub fetch_timeouts: Timeouts,
    /// Records per fetch.
    pub max_records: u32,
}

impl Shared<'_> {
    /// The history key of partition `p`.
    pub fn key(&self, p: u32) -> String {
        format!("{}/{p}", self.topic)
    }

    fn saw(&self, p: u32, offset: u64) {
        if let Ok(mut m) = self.max_offset.lock() {
            let e = m.entry(p).or_insert(offset);
            *e = (*e).max(offset);
        }
    }
}

/// How a request ended, before it is written down.
pub(crate) enum Outcome {
    /// It happened; the value is the completion's.
    Ok(Json),
    /// It certainly did not happen.
    Fail(Json),
    /// Nobody knows.
    Info(Json),
}

/// Maps the reply to a write (anything but a `200`) to its outcome: `fail` only when the
/// server's error body says `"outcome": "not_applied"` or no connection was made (nothing was
/// sent); `info` for every other error reply, timeout, reset or truncated reply.
pub(crate) fn write_failure(res: Result<&http::Response, &HttpError>, node: usize) -> Outcome {
    match res {
        Ok(r) => {
            let j = r.json();
            let detail = json!({"status": r.status, "error": j["error"], "outcome": j["outcome"], "node": node + 1});
            if j["outcome"] == "not_applied" {
                Outcome::Fail(detail)
            } else {
                Outcome::Info(detail)
            }
        }
        Err(HttpError::Connect(e)) => Outcome::Fail(json!({"error": e, "node": node + 1})),
        Err(HttpError::AfterSend(e)) => Outcome::Info(json!({"error": e, "node": node + 1})),
    }
}

/// Maps the failed reply to a read (anything but a `200`) to its outcome: a read that returned
/// nothing changed nothing, so an error reply or a refused connection is `fail`; a timeout, reset
/// or truncated reply after connecting is `info` (Jepsen's convention: the process is retired).
pub(crate) fn read_failure(res: Result<&http::Response, &HttpError>, node: usize) -> Outcome {
    match res {
        Ok(r) => {
            let j = r.json();
            Outcome::Fail(json!({"status": r.status, "error": j["error"], "node": node + 1}))
        }
        Err(HttpError::Connect(e)) => Outcome::Fail(json!({"error": e, "node": node + 1})),
        Err(HttpError::AfterSend(e)) => Outcome::Info(json!({"error": e, "node": node + 1})),
    }
}

/// One client process of the queue workload.
#[derive(Debug)]
pub struct QueueClient<'s, 'a> {
    shared: &'s Shared<'a>,
    /// Current process id.
    pub process: ProcessId,
    /// Added to the process id on retirement (the number of clients), so ids never collide.
    stride: u64,
    assignment: Vec<u32>,
    positions: BTreeMap<u32, u64>,
    last_hw: BTreeMap<u32, u64>,
    last_failed: bool,
}

impl<'s, 'a> QueueClient<'s, 'a> {
    /// Client `index` of `count`.
    pub fn new(shared: &'s Shared<'a>, index: u64, count: u64) -> Self {
        QueueClient {
            shared,
            process: index,
            stride: count,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            last_hw: BTreeMap::new(),
            last_failed: false,
        }
    }

    /// The next offset this process will read from partition `p`, if assigned.
    pub fn position(&self, p: u32) -> Option<u64> {
        self.positions.get(&p).copied()
    }

    /// The high watermark of `p` in this process's latest poll that reported one.
    pub fn last_high_watermark(&self, p: u32) -> Option<u64> {
        self.last_hw.get(&p).copied()
    }

    /// Whether this process's latest poll did not complete `ok`.
    pub fn last_poll_failed(&self) -> bool {
        self.last_failed
    }

    /// Whether this process has any keys assigned.
    pub fn has_assignment(&self) -> bool {
        !self.assignment.is_empty()
    }

    /// Writes one event of this process.
    pub(crate) fn record(&self, kind: EventType, f: Function, value: Json) {
        self.shared.recorder.record(self.process, kind, f, value);
    }

    fn retire(&mut self) {
        self.process += self.stride;
        self.assignment.clear();
        self.positions.clear();
    }

    /// Completes the operation in flight; an `info` retires the process.
    pub(crate) fn complete(&mut self, f: Function, outcome: Outcome) {
        match outcome {
            Outcome::Ok(v) => self.record(EventType::Ok, f, v),
            Outcome::Fail(v) => self.record(EventType::Fail, f, v),
            Outcome::Info(v) => {
                self.record(EventType::Info, f, v);
                self.retire();
            }
        }
    }

    /// Sends one fresh value to partition `p` through node `node`.
    pub fn send(&mut self, node: usize, p: u32) {
        let s = self.shared;
        let value = s.next_value.fetch_add(1, Ordering::Relaxed);
        let key = s.key(p);
        self.record(
            EventType::Invoke,
            Function::Send,
            json!({"key": key, "value": value}),
        );
        let body = json!({"records": [{"value": value, "partition": p}]}).to_string();
        let path = format!("/v1/topics/{}/records", s.topic);
        let res = http::request(
            s.nodes.get(node),
            "POST",
            &path,
            Some(body.as_bytes()),
            s.send_timeouts,
        );
        let outcome = match res {
            Ok(r) if r.status == 200 => {
                let j = r.json();
                let entry = &j["offsets"][0];
                match (entry["partition"].as_u64(), entry["offset"].as_u64()) {
                    (Some(got), Some(offset)) if got == u64::from(p) => {
                        s.saw(p, offset);
                        Outcome::Ok(json!({"key": key, "value": value, "offset": offset}))
                    }
                    _ => Outcome::Info(json!({"error": "unexpected 200 reply", "reply": j})),
                }
            }
            Ok(r) => write_failure(Ok(&r), node),
            Err(e) => write_failure(Err(&e), node),
        };
        self.complete(Function::Send, outcome);
    }

    /// Replaces the assignment with `parts`, seeking them to offset 0 if `seek` (keys kept from
    /// the old assignment otherwise keep their position; new keys start at 0).
    pub fn assign(&mut self, parts: &[u32], seek: bool) {
        let keys: Vec<String> = parts.iter().map(|p| self.shared.key(*p)).collect();
        let value = json!({"keys": keys, "seek_to_beginning": seek});
        self.record(EventType::Invoke, Function::Assign, value.clone());
        let mut positions = BTreeMap::new();
        for p in parts {
            let kept = if seek { None } else { self.positions.get(p) };
            positions.insert(*p, kept.copied().unwrap_or(0));
        }
        self.assignment = parts.to_vec();
        self.positions = positions;
        self.record(EventType::Ok, Function::Assign, value);
    }

    /// Replaces the assignment with `positions` (partition, next offset to read), as a consumer
    /// group hands them out: recorded as an assign without seek, with `extra` fields (generation,
    /// member) merged into its value for the reader of the history.
    pub fn assign_at(&mut self, positions: &BTreeMap<u32, u64>, extra: Json) {
        let keys: Vec<String> = positions.keys().map(|p| self.shared.key(*p)).collect();
        let mut value = json!({"keys": keys, "seek_to_beginning": false, "positions": positions});
        if let (Some(v), Json::Object(more)) = (value.as_object_mut(), extra) {
            v.extend(more);
        }
        self.record(EventType::Invoke, Function::Assign, value.clone());
        self.assignment = positions.keys().copied().collect();
        self.positions = positions.clone();
        self.record(EventType::Ok, Function::Assign, value);
    }

    /// The keys assigned now, ascending.
    pub fn assignment(&self) -> &[u32] {
        &self.assignment
    }

    /// The shared state of the cell.
    pub fn shared(&self) -> &'s Shared<'a> {
        self.shared
    }

    /// Tears the client down; the process is retired.
    pub fn crash(&mut self) {
        self.record(EventType::Invoke, Function::Crash, Json::Null);
        self.complete(Function::Crash, Outcome::Info(Json::Null));
    }

    /// Polls every assigned key once through node `node`.
    pub fn poll(&mut self, node: usize) {
        self.poll_with(node, false);
    }

    /// A poll; `final_read` marks it as part of the final phase.
    pub(crate) fn poll_with(&mut self, node: usize, final_read: bool) {
        let s = self.shared;
        let invoke = if final_read {
            json!({"final": true})
        } else {
            Json::Null
        };
        self.record(EventType::Invoke, Function::Poll, invoke);
        let mut reads: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
        let mut hws: BTreeMap<String, u64> = BTreeMap::new();
        let mut starts: BTreeMap<String, u64> = BTreeMap::new();
        let mut errors: BTreeMap<String, Json> = BTreeMap::new();
        let mut reposition = false;
        // The first failure decides a poll that got nothing: connect => fail, after-send => info.
        let mut first_failure: Option<Outcome> = None;
        for p in self.assignment.clone() {
            let key = s.key(p);
            let pos = self.positions.get(&p).copied().unwrap_or(0);
            let path = format!(
                "/v1/topics/{}/partitions/{p}/records?offset={pos}&max_records={}",
                s.topic, s.max_records
            );
            match http::request(s.nodes.get(node), "GET", &path, None, s.fetch_timeouts) {
                Ok(r) if r.status == 200 => {
                    let j = r.json();
                    let mut got = Vec::new();
                    for rec in j["records"].as_array().into_iter().flatten() {
                        match (rec["offset"].as_u64(), rec["value"].as_i64()) {
                            (Some(o), Some(v)) => got.push((o, v)),
                            _ => {
                                errors.insert(key.clone(), json!({"unreadable_record": rec}));
                            }
                        }
                    }
                    if let Some(&(last, _)) = got.last() {
                        self.positions.insert(p, last + 1);
                        s.saw(p, last);
                    }
                    if let Some(hw) = j["high_watermark"].as_u64() {
                        hws.insert(key.clone(), hw);
                        self.last_hw.insert(p, hw);
                        if hw > 0 {
                            s.saw(p, hw - 1);
                        }
                    }
                    if let Some(ls) = j["log_start_offset"].as_u64() {
                        starts.insert(key.clone(), ls);
                    }
                    reads.insert(key, got);
                }
                Ok(r) if r.status == 416 => {
                    // The server says our position is beyond its log: report the watermark it
                    // gave (a regression shows in the checker), then start over.
                    let j = r.json();
                    if let Some(hw) = j["high_watermark"].as_u64() {
                        hws.insert(key.clone(), hw);
                        self.last_hw.insert(p, hw);
                    }
                    errors.insert(key.clone(), json!({"status": 416, "position": pos}));
                    reads.insert(key, Vec::new());
                    reposition = true;
                }
                Ok(r) => {
                    let j = r.json();
                    let detail = json!({"status": r.status, "error": j["error"], "node": node + 1});
                    errors.insert(key, detail.clone());
                    first_failure.get_or_insert(Outcome::Fail(detail));
                    break;
                }
                Err(HttpError::Connect(e)) => {
                    let detail = json!({"error": e, "node": node + 1});
                    first_failure.get_or_insert(Outcome::Fail(detail));
                    break;
                }
                Err(HttpError::AfterSend(e)) => {
                    let detail = json!({"error": e, "node": node + 1});
                    first_failure.get_or_insert(Outcome::Info(detail));
                    break;
                }
            }
        }
        let outcome = match first_failure {
            Some(failure) if reads.is_empty() => failure,
            _ => {
                let mut v = json!({"reads": reads, "high_watermarks": hws, "log_starts": starts});
                if final_read {
                    v["final"] = json!(true);
                }
                if !errors.is_empty() {
                    v["errors"] = json!(errors);
                }
                Outcome::Ok(v)
            }
        };
        self.last_failed = !matches!(outcome, Outcome::Ok(_));
        self.complete(Function::Poll, outcome);
        if reposition && self.has_assignment() {
            let parts = self.assignment.clone();
            self.assign(&parts, true);
        }
    }

    /// Runs one random operation of the queue mix through a random node.
    pub fn step(&mut self, rng: &mut Rng) {
        let s = self.shared;
        let node = rng.below(s.nodes.len() as u64) as usize;
        if !self.has_assignment() {
            let parts = random_keys(rng, s.partitions);
            self.assign(&parts, true);
            return;
        }
        match rng.below(100) {
            0..=49 => {
                let p = rng.below(u64::from(s.partitions)) as u32;
                self.send(node, p);
            }
            50..=87 => self.poll(node),
            88..=97 => {
                let parts = random_keys(rng, s.partitions);
                let seek = rng.chance(50);
                self.assign(&parts, seek);
            }
            _ => self.crash(),
        }
    }
}

/// A random non-empty set of up to three partitions, ascending.
fn random_keys(rng: &mut Rng, partitions: u32) -> Vec<u32> {
    let mut all: Vec<u32> = (0..partitions).collect();
    rng.shuffle(&mut all);
    let n = rng.range(1, u64::from(partitions.min(3))) as usize;
    let mut parts: Vec<u32> = all.into_iter().take(n).collect();
    parts.sort_unstable();
    parts
}

/// Timeouts for one cell's clients, from the nodes' request timeout.
pub fn timeouts_for(request_timeout: Duration) -> (Timeouts, Timeouts) {
    let connect = Duration::from_millis(1000);
    (
        Timeouts {
            connect,
            total: request_timeout + Duration::from_secs(3),
        },
        Timeouts {
            connect,
            total: Duration::from_secs(5),
        },
    )
}

//! Consumer-group clients, for two workloads:
//! - `group`: the queue workload consumed through a consumer group. Each client process is a
//!   member of group [`GROUP_WORKLOAD_GROUP`]: it joins, heartbeats, consumes only the
//!   partitions the group gives it, resumes each one at its committed offset, commits what it
//!   consumed, hands revoked partitions over (commit, then release), and sometimes leaves or
//!   crashes (its session then expires).
//! - `offsets`: contended commits and reads of committed offsets. Every client is a member of
//!   group [`OFFSETS_WORKLOAD_GROUP`] and commits random offsets (at most one past the highest
//!   offset it has seen) to partitions it owns or not, while everybody reads them back; the
//!   server decides which commits win. Sends and polls keep the log growing.
//!
//! Commits and committed-offset reads are history operations (`commit`, `fetch_committed`), one
//! partition per request so that one request is one operation. Joins, heartbeats, releases and
//! leaves are not: they change no register the checker models. Their replies only steer the
//! client, and an assignment the group hands out is recorded as an `assign` without seek,
//! with the positions the member resumes at.
//!
//! Outcomes (see [`super::client`]): a commit is `ok` on `200`, `fail` only when the error body
//! says `"outcome": "not_applied"` or the connection was refused, `info` otherwise; a read of
//! committed offsets is `ok` on `200`, `fail` on an error reply or a refused connection, `info`
//! after a timeout or a broken connection. Nothing is retried. A process that records `info`
//! is retired, and its member is abandoned without leaving (a zombie whose session expires);
//! the fresh process joins as a new member.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::client::{read_failure, write_failure, Outcome, QueueClient, Shared};
use super::http;
use super::rng::Rng;
use crate::history::{EventType, Function, ProcessId};

/// The group of the `group` workload.
pub const GROUP_WORKLOAD_GROUP: &str = "jepsen-group";
/// The group of the `offsets` workload.
pub const OFFSETS_WORKLOAD_GROUP: &str = "jepsen-offsets";
/// Members' session timeout: short enough that a crashed member's partitions move within a
/// cell, long enough that a heartbeat every second survives a lost packet or two.
pub const SESSION_TIMEOUT_MS: u64 = 6000;
/// How often a member heartbeats (the API asks for at least every third of the session).
const HEARTBEAT_EVERY: Duration = Duration::from_millis(1000);

/// Which workload a [`GroupClient`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Consume through the group.
    Group,
    /// Contend for committed offsets.
    Offsets,
}

/// What the group last told this member.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    generation: u64,
    owned: Vec<u32>,
    revoking: Vec<u32>,
    last_heartbeat: Instant,
    /// A commit was refused as `fenced`: heartbeat at the next step for the new generation.
    stale: bool,
}

/// The parts of a join, heartbeat or release reply the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group's generation.
    pub generation: u64,
    /// Partitions of the topic the member owns now, ascending.
    pub owned: Vec<u32>,
    /// Owned partitions the member must give up, ascending.
    pub revoking: Vec<u32>,
}

/// Parses the `assignment` / `revoking` lists of a reply, keeping partitions of `topic`.
pub fn parse_view(topic: &str, j: &Json) -> Option<GroupView> {
    let parts = |field: &str| -> Vec<u32> {
        let mut v: Vec<u32> = j[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["topic"] == topic)
            .filter_map(|e| e["partition"].as_u64().and_then(|p| u32::try_from(p).ok()))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    Some(GroupView {
        generation: j["generation"].as_u64()?,
        owned: parts("assignment"),
        revoking: parts("revoking"),
    })
}

/// Finds the committed offset of `topic`/`partition` in a `GET /v1/groups/{g}/offsets` reply:
/// `Some(None)` when the group has none for it, `None` when the reply is malformed.
pub fn parse_committed(topic: &str, partition: u32, j: &Json) -> Option<Option<u64>> {
    let offsets = j["offsets"].as_array()?;
    for e in offsets {
        if e["topic"] == topic && e["partition"].as_u64() == Some(u64::from(partition)) {
            return e["offset"].as_u64().map(Some);
        }
    }
    Some(None)
}

/// One client process of the `group` or `offsets` workload.
#[derive(Debug)]
pub struct GroupClient<'s, 'a> {
    q: QueueClient<'s, 'a>,
    mode: Mode,
    group: String,
    index: u64,
    joins: u64,
    member: Option<Member>,
    /// The offset this member last committed or found committed, per partition it consumes,
    /// so it commits only progress (fewer repeated values make the register check sharper).
    committed: BTreeMap<u32, u64>,
}

impl<'s, 'a> GroupClient<'s, 'a> {
    /// Client `index` of `count`, running `mode`.
    pub fn new(shared: &'s Shared<'a>, index: u64, count: u64, mode: Mode) -> Self {
        let group = match mode {
            Mode::Group => GROUP_WORKLOAD_GROUP,
            Mode::Offsets => OFFSETS_WORKLOAD_GROUP,
        };
        GroupClient {
            q: QueueClient::new(shared, index, count),
            mode,
            group: group.to_owned(),
            index,
            joins: 0,
            member: None,
            committed: BTreeMap::new(),
        }
    }

    fn shared(&self) -> &'s Shared<'a> {
        self.q.shared()
    }

    fn timeouts(&self) -> http::Timeouts {
        self.shared().send_timeouts
    }

    /// Runs `op` on the queue client and reports whether the process was retired by it.
    fn retired_by(&mut self, op: impl FnOnce(&mut QueueClient<'s, 'a>)) -> bool {
        let before: ProcessId = self.q.process;
        op(&mut self.q);
        let retired = self.q.process != before;
        if retired {
            self.abandon();
        }
        retired
    }

    /// Forgets the member without leaving: it lingers as a zombie until its session expires.
    fn abandon(&mut self) {
        self.member = None;
        self.committed.clear();
    }

    fn join(&mut self, node: usize) {
        let s = self.shared();
        self.joins += 1;
        let body = json!({"topics": [s.topic], "session_timeout_ms": SESSION_TIMEOUT_MS,
                          "client_id": format!("jepsen-{}-{}", self.index, self.joins)})
        .to_string();
        let path = format!("/v1/groups/{}/members", self.group);
        // A failed or indeterminate join leaves no member we know of; one that did happen
        // behind our back expires with its session.
        if let Ok(r) = http::request(
            s.nodes.get(node),
            "POST",
            &path,
            Some(body.as_bytes()),
            self.timeouts(),
        ) {
            let j = r.json();
            if let (200, Some(id), Some(view)) =
                (r.status, j["member_id"].as_str(), parse_view(&s.topic, &j))
            {
                self.member = Some(Member {
                    id: id.to_owned(),
                    generation: view.generation,
                    owned: view.owned,
                    revoking: view.revoking,
                    last_heartbeat: Instant::now(),
                    stale: false,
                });
            }
        }
    }

    /// Posts to a member endpoint (`heartbeat`, `release`) and applies the view it returns.
    fn member_call(&mut self, node: usize, what: &str, body: Option<Json>) {
        let s = self.shared();
        let Some(m) = &self.member else {
            return;
        };
        let path = format!("/v1/groups/{}/members/{}/{what}", self.group, m.id);
        let body = body.map(|b| b.to_string());
        let res = http::request(
            s.nodes.get(node),
            "POST",
            &path,
            body.as_deref().map(str::as_bytes),
            self.timeouts(),
        );
        let Ok(r) = res else {
            return;
        };
        let j = r.json();
        match r.status {
            200 => {
                if let (Some(view), Some(m)) = (parse_view(&s.topic, &j), self.member.as_mut()) {
                    m.generation = view.generation;
                    m.owned = view.owned;
                    m.revoking = view.revoking;
                    m.last_heartbeat = Instant::now();
                    m.stale = false;
                }
            }
            // The group forgot us (session expired, or we were removed): join again.
            404 if j["error"] == "unknown_member" || j["error"] == "group_not_found" => {
                self.member = None;
            }
            _ => {}
        }
    }

    /// Leaves the group (its partitions move at once); the client joins afresh later.
    fn leave(&mut self, node: usize) {
        let s = self.shared();
        if let Some(m) = self.member.take() {
            let path = format!("/v1/groups/{}/members/{}", self.group, m.id);
            // Whatever the reply, we stop acting as this member; if the leave did not happen
            // the member expires with its session.
            let _ = http::request(s.nodes.get(node), "DELETE", &path, None, self.timeouts());
        }
        self.committed.clear();
    }

    /// Commits `offset` for partition `p` as the current member (one history operation).
    /// Returns whether it was `ok`.
    pub fn commit(&mut self, node: usize, p: u32, offset: u64) -> bool {
        let s = self.shared();
        let Some(m) = self.member.clone() else {
            return false;
        };
        let key = s.key(p);
        let value = json!({"group": self.group, "key": key, "offset": offset});
        self.q
            .record(EventType::Invoke, Function::Commit, value.clone());
        let body = json!({"member_id": m.id, "generation": m.generation,
                          "offsets": [{"topic": s.topic, "partition": p, "offset": offset}]})
        .to_string();
        let path = format!("/v1/groups/{}/offsets", self.group);
        let res = http::request(
            s.nodes.get(node),
            "POST",
            &path,
            Some(body.as_bytes()),
            self.timeouts(),
        );
        let outcome = match res {
            Ok(r) if r.status == 200 => Outcome::Ok(value),
            Ok(r) => write_failure(Ok(&r), node),
            Err(e) => write_failure(Err(&e), node),
        };
        let ok = matches!(outcome, Outcome::Ok(_));
        let fenced = matches!(&outcome, Outcome::Fail(d) if d["error"] == "fenced");
        if let (true, Some(m)) = (fenced, self.member.as_mut()) {
            // As the API asks: heartbeat for the new generation (the commit is not retried).
            m.stale = true;
        }
        let done = |q: &mut QueueClient<'s, 'a>| q.complete(Function::Commit, outcome);
        if !self.retired_by(done) && ok {
            self.committed.insert(p, offset);
        }
        ok
    }

    /// Reads the committed offset of partition `p` (one history operation). `Some(None)`: the
    /// group has none; `None`: the read did not complete `ok`.
    pub fn fetch_committed(&mut self, node: usize, p: u32) -> Option<Option<u64>> {
        let s = self.shared();
        let key = s.key(p);
        self.q.record(
            EventType::Invoke,
            Function::FetchCommitted,
            json!({"group": self.group, "key": key}),
        );
        let path = format!("/v1/groups/{}/offsets", self.group);
        let res = http::request(s.nodes.get(node), "GET", &path, None, s.fetch_timeouts);
        let mut got = None;
        let outcome = match res {
            Ok(r) if r.status == 200 => match parse_committed(&s.topic, p, &r.json()) {
                Some(o) => {
                    got = Some(o);
                    let shown = o.map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX));
                    Outcome::Ok(json!({"group": self.group, "key": key, "offset": shown}))
                }
                // A 200 we cannot read: it changed nothing, but we learnt nothing either.
                None => Outcome::Fail(json!({"error": "unreadable 200 reply", "node": node + 1})),
            },
            Ok(r) => read_failure(Ok(&r), node),
            Err(e) => read_failure(Err(&e), node),
        };
        let done = |q: &mut QueueClient<'s, 'a>| q.complete(Function::FetchCommitted, outcome);
        if self.retired_by(done) {
            return None;
        }
        got
    }

    /// Makes the consumer's assignment match what the group says this member owns (and is not
    /// giving up): kept partitions keep their position, gained ones resume at their committed
    /// offset (or the log start, 0, when none is committed). A gained partition whose committed
    /// offset could not be read stays out until a later step reads it.
    fn sync_assignment(&mut self, rng: &mut Rng) {
        let Some(m) = self.member.clone() else {
            if self.q.has_assignment() {
                self.q
                    .assign_at(&BTreeMap::new(), json!({"group": self.group}));
            }
            return;
        };
        let wanted: Vec<u32> = m
            .owned
            .iter()
            .copied()
            .filter(|p| !m.revoking.contains(p))
            .collect();
        if wanted == self.q.assignment() {
            return;
        }
        let mut positions = BTreeMap::new();
        for p in wanted {
            if let Some(pos) = self.q.assignment().contains(&p).then(|| self.q.position(p)) {
                positions.insert(p, pos.unwrap_or(0));
                continue;
            }
            let node = rng.below(self.shared().nodes.len() as u64) as usize;
            match self.fetch_committed(node, p) {
                Some(c) => {
                    let start = c.unwrap_or(0);
                    self.committed.insert(p, start);
                    positions.insert(p, start);
                }
                None if self.member.is_none() => return, // retired by an `info`
                None => {}
            }
        }
        self.committed.retain(|p, _| positions.contains_key(p));
        let extra = json!({"group": self.group, "member": m.id, "generation": m.generation});
        self.q.assign_at(&positions, extra);
    }

    /// Commits the position of each partition in `parts` that moved since the last commit.
    fn commit_progress(&mut self, rng: &mut Rng, parts: &[u32]) {
        for &p in parts {
            let Some(pos) = self.q.position(p) else {
                continue;
            };
            if self.committed.get(&p) == Some(&pos) {
                continue;
            }
            let node = rng.below(self.shared().nodes.len() as u64) as usize;
            self.commit(node, p, pos);
            if self.member.is_none() {
                return;
            }
        }
    }

    /// Heartbeats when one is due; hands over revoked partitions (commit, then release).
    fn keep_alive(&mut self, rng: &mut Rng) {
        let Some(m) = &self.member else {
            return;
        };
        if m.last_heartbeat.elapsed() < HEARTBEAT_EVERY && m.revoking.is_empty() && !m.stale {
            return;
        }
        let node = rng.below(self.shared().nodes.len() as u64) as usize;
        self.member_call(node, "heartbeat", None);
        let Some(m) = self.member.clone() else {
            return;
        };
        if m.revoking.is_empty() {
            return;
        }
        if self.mode == Mode::Group {
            let giving: Vec<u32> = m
                .revoking
                .iter()
                .copied()
                .filter(|p| self.q.assignment().contains(p))
                .collect();
            self.commit_progress(rng, &giving);
            if self.member.is_none() {
                return;
            }
        }
        let node = rng.below(self.shared().nodes.len() as u64) as usize;
        self.member_call(node, "release", Some(json!({"generation": m.generation})));
    }

    /// Runs one step of the workload through random nodes.
    pub fn step(&mut self, rng: &mut Rng) {
        let s = self.shared();
        let node = rng.below(s.nodes.len() as u64) as usize;
        if self.member.is_none() {
            self.join(node);
            if self.mode == Mode::Group {
                self.sync_assignment(rng);
            }
            return;
        }
        self.keep_alive(rng);
        match self.mode {
            Mode::Group => self.group_step(rng, node),
            Mode::Offsets => self.offsets_step(rng, node),
        }
    }

    fn group_step(&mut self, rng: &mut Rng, node: usize) {
        self.sync_assignment(rng);
        if self.member.is_none() {
            return;
        }
        let s = self.shared();
        // Per mille: leaving and crashing are rare, as every membership change rebalances the
        // whole group (and `info` outcomes retire members on top).
        match rng.below(1000) {
            0..=399 => {
                let p = rng.below(u64::from(s.partitions)) as u32;
                self.retired_by(|q| q.send(node, p));
            }
            400..=799 if self.q.has_assignment() => {
                self.retired_by(|q| q.poll(node));
            }
            400..=799 => {
                let p = rng.below(u64::from(s.partitions)) as u32;
                self.retired_by(|q| q.send(node, p));
            }
            800..=993 => {
                let parts = self.q.assignment().to_vec();
                self.commit_progress(rng, &parts);
            }
            994..=996 => {
                let parts = self.q.assignment().to_vec();
                self.commit_progress(rng, &parts);
                self.leave(node);
                self.sync_assignment(rng);
            }
            _ => {
                self.q.crash();
                self.abandon();
            }
        }
    }

    fn offsets_step(&mut self, rng: &mut Rng, node: usize) {
        let s = self.shared();
        if !self.q.has_assignment() {
            let parts: Vec<u32> = (0..s.partitions).collect();
            self.q.assign(&parts, true);
            return;
        }
        // Per mille, like the group workload.
        match rng.below(1000) {
            0..=299 => {
                let p = rng.below(u64::from(s.partitions)) as u32;
                self.retired_by(|q| q.send(node, p));
            }
            300..=449 => {
                self.retired_by(|q| q.poll(node));
            }
            450..=699 => {
                let owned = self
                    .member
                    .as_ref()
                    .map(|m| m.owned.clone())
                    .unwrap_or_default();
                let p = match rng.pick(&owned) {
                    Some(p) if rng.chance(70) => *p,
                    _ => rng.below(u64::from(s.partitions)) as u32,
                };
                // One past the highest offset anyone has seen is the most a commit may name.
                let end = s
                    .max_offset
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&p).map(|o| o + 1))
                    .unwrap_or(0);
                let offset = rng.range(0, end);
                self.commit(node, p, offset);
            }
            700..=993 => {
                let p = rng.below(u64::from(s.partitions)) as u32;
                self.fetch_committed(node, p);
            }
            994..=996 => self.leave(node),
            _ => {
                self.q.crash();
                self.abandon();
            }
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;

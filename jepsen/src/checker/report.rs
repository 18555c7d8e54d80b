//! What the checker found: a verdict, concrete anomaly examples, and why a run proves nothing.
//!
//! The verdict is the worst of what was found, in this order:
//! `invalid` (some anomaly) > `unknown` (a search gave up) > `vacuous` (the run proves too
//! little) > `valid`. Only `valid` is a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::history::{Function, GroupId, Key, Offset, Operation, Outcome, ProcessId, Value};

/// The overall result of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No anomaly, and the run exercised enough to mean something.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// No anomaly, but the run was too thin (or too calm) to prove anything.
    Vacuous,
    /// No anomaly found, but a search was cut off before it could decide.
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "VALID",
            Verdict::Invalid => "INVALID",
            Verdict::Vacuous => "VACUOUS",
            Verdict::Unknown => "UNKNOWN",
        })
    }
}

/// Every anomaly the checker knows. See the module docs of each check for the exact definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// One key and offset seen with two different values.
    InconsistentOffsets,
    /// One value seen at two offsets.
    Duplicate,
    /// An acknowledged send at or below an offset some poll reached, never read.
    LostWrite,
    /// An acknowledged send above everything polled, never read, even in the final phase.
    Unseen,
    /// A poll returned a value whose send definitely failed (G1a).
    AbortedRead,
    /// A poll returned a value that was never sent to that key.
    PhantomRead,
    /// A consumer's polls of a key skipped offsets.
    PollSkip,
    /// A consumer's poll of a key went back to or before where it had been.
    NonmonotonicPoll,
    /// A process's later send to a key landed at or before its earlier one.
    NonmonotonicSend,
    /// A send acknowledged before another was invoked landed after it.
    RealtimeSendOrder,
    /// A committed record is absent from the final read of its key.
    FinalLogMissing,
    /// The final read of a key is not dense from the log start.
    FinalLogGap,
    /// A poll reported a lower high watermark than one that completed before it began.
    HwRegression,
    /// A poll returned a record at or above the high watermark it reported.
    ReadAboveHw,
    /// A poll reported a high watermark not past a send acknowledged before it began.
    HwBehindAck,
    /// Committed consumer offsets of one (group, key) are not linearizable as a register.
    CommittedOffsetNonlinearizable,
    /// A committed consumer offset lies beyond the end of the log.
    CommittedOffsetBeyondLog,
}

impl AnomalyKind {
    /// The kebab-case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::InconsistentOffsets => "inconsistent-offsets",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::AbortedRead => "aborted-read",
            AnomalyKind::PhantomRead => "phantom-read",
            AnomalyKind::PollSkip => "poll-skip",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyKind::NonmonotonicSend => "nonmonotonic-send",
            AnomalyKind::RealtimeSendOrder => "realtime-send-order",
            AnomalyKind::FinalLogMissing => "final-log-missing",
            AnomalyKind::FinalLogGap => "final-log-gap",
            AnomalyKind::HwRegression => "hw-regression",
            AnomalyKind::ReadAboveHw => "read-above-hw",
            AnomalyKind::HwBehindAck => "hw-behind-ack",
            AnomalyKind::CommittedOffsetNonlinearizable => "committed-offset-nonlinearizable",
            AnomalyKind::CommittedOffsetBeyondLog => "committed-offset-beyond-log",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A pointer to one operation, with enough context to find it in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpRef {
    /// Index in invoke order.
    pub op: usize,
    /// Process.
    pub process: ProcessId,
    /// Function.
    pub f: Function,
    /// Outcome.
    pub outcome: Outcome,
    /// Invoke time.
    pub invoke_ns: u64,
    /// Completion time, if any.
    pub complete_ns: Option<u64>,
}

impl OpRef {
    /// A reference to `op`.
    pub fn of(op: &Operation) -> Self {
        OpRef {
            op: op.id.0,
            process: op.process,
            f: op.f,
            outcome: op.outcome,
            invoke_ns: op.invoke_ns,
            complete_ns: op.complete_ns,
        }
    }
}

impl fmt::Display for OpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} by p{} [{}..",
            self.op, self.f, self.process, self.invoke_ns
        )?;
        match self.complete_ns {
            Some(c) => write!(f, "{c}]"),
            None => f.write_str("never]"),
        }
    }
}

/// One concrete example of an anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// Which anomaly.
    pub kind: AnomalyKind,
    /// The key involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// The consumer group involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    /// Offsets involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<Offset>,
    /// Values involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// Operations involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<OpRef>,
    /// One sentence a human can act on.
    pub detail: String,
}

impl Anomaly {
    /// A new example of `kind` on `key`, explained by `detail`.
    pub fn new(kind: AnomalyKind, key: Option<&Key>, detail: String) -> Self {
        Anomaly {
            kind,
            key: key.cloned(),
            group: None,
            offsets: Vec::new(),
            values: Vec::new(),
            ops: Vec::new(),
            detail,
        }
    }

    /// With these offsets.
    pub fn offsets(mut self, offsets: impl IntoIterator<Item = Offset>) -> Self {
        self.offsets.extend(offsets);
        self
    }

    /// With these values.
    pub fn values(mut self, values: impl IntoIterator<Item = Value>) -> Self {
        self.values.extend(values);
        self
    }

    /// With these operations.
    pub fn ops<'a>(mut self, ops: impl IntoIterator<Item = &'a Operation>) -> Self {
        self.ops.extend(ops.into_iter().map(OpRef::of));
        self
    }

    /// With this group.
    pub fn group(mut self, group: &GroupId) -> Self {
        self.group = Some(group.clone());
        self
    }
}

/// Per-key counts, to judge how much a run exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyStats {
    /// Sends that completed `ok`.
    pub ok_sends: usize,
    /// Sends that failed.
    pub failed_sends: usize,
    /// Sends with unknown outcome.
    pub info_sends: usize,
    /// `ok` polls that returned at least one record of this key.
    pub ok_polls: usize,
    /// Records in the final read.
    pub final_records: usize,
}

/// Whole-history counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events in the history.
    pub events: usize,
    /// Client operations.
    pub operations: usize,
    /// Operations per outcome.
    pub ok: usize,
    /// Operations that failed.
    pub fail: usize,
    /// Operations with unknown outcome.
    pub info: usize,
    /// Nemesis events.
    pub nemesis_events: usize,
    /// Per-key counts.
    pub keys: BTreeMap<Key, KeyStats>,
}

/// The checker's full answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The overall verdict.
    pub verdict: Verdict,
    /// How many anomalies of each kind were found (examples may be fewer).
    pub anomaly_counts: BTreeMap<AnomalyKind, usize>,
    /// Up to `max_examples_per_kind` examples of each kind found.
    pub anomalies: BTreeMap<AnomalyKind, Vec<Anomaly>>,
    /// Why the run proves too little, if it does.
    pub vacuity: Vec<String>,
    /// Which searches gave up, if any.
    pub unknown: Vec<String>,
    /// Counts describing the run.
    pub stats: Stats,
}

impl Report {
    /// Whether the run passed.
    pub fn is_valid(&self) -> bool {
        self.verdict == Verdict::Valid
    }

    /// The kinds of anomaly found.
    pub fn kinds(&self) -> BTreeSet<AnomalyKind> {
        self.anomaly_counts.keys().copied().collect()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A human-readable summary: verdict, counts, and the examples.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let s = &self.stats;
        let _ = writeln!(out, "verdict: {}", self.verdict);
        let _ = writeln!(
            out,
            "history: {} events, {} operations ({} ok, {} fail, {} info), {} nemesis events",
            s.events, s.operations, s.ok, s.fail, s.info, s.nemesis_events
        );
        for (key, k) in &s.keys {
            let _ = writeln!(
                out,
                "  key {key}: sends {} ok / {} fail / {} info, {} ok polls, {} records in final read",
                k.ok_sends, k.failed_sends, k.info_sends, k.ok_polls, k.final_records
            );
        }
        if self.anomaly_counts.is_empty() {
            let _ = writeln!(out, "anomalies: none");
        }
        for (kind, count) in &self.anomaly_counts {
            let _ = writeln!(out, "anomaly {kind}: {count}");
            for a in self.anomalies.get(kind).into_iter().flatten() {
                let _ = writeln!(out, "  - {}", a.detail);
                for op in &a.ops {
                    let _ = writeln!(out, "      {op}");
                }
            }
        }
        for reason in &self.vacuity {
            let _ = writeln!(out, "vacuous: {reason}");
        }
        for reason in &self.unknown {
            let _ = writeln!(out, "unknown: {reason}");
        }
        out
    }
}

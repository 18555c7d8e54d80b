//! Consumer-group committed offsets, one register per (group, key).
//!
//! - `committed-offset-nonlinearizable`: `commit` writes the register and `fetch_committed` reads
//!   it, starting from "nothing committed". The `ok` and `info` operations must be linearizable
//!   ([`super::linearizable_register`]); `info` commits may take effect
//!   at any time after their invoke, or never; failed operations and `info` reads are ignored.
//!   A search that exceeds
//!   [`CheckConfig::max_linearizability_states`](super::CheckConfig::max_linearizability_states)
//!   makes the verdict `unknown`.
//! - `committed-offset-beyond-log`: an `ok` commit or read names an offset past the end of the
//!   log, i.e. above one past the highest offset observed for the key anywhere in the history.
//!   This assumes the harness only commits positions it has consumed.
//!
//! Not checked here: that a new group member resumes exactly at the committed offset after a
//! handoff (that needs the harness to record group generations).

use std::collections::BTreeMap;

use crate::history::{GroupId, Key, Offset, OpBody, Operation, Outcome};

use super::index::Index;
use super::linearizable_register::{self, Linearizability, RegisterCall, RegisterOp};
use super::{Anomaly, AnomalyKind};

/// Anomalies found, and the (group, key) registers whose search gave up.
pub(crate) struct CommittedOffsets {
    pub(crate) anomalies: Vec<Anomaly>,
    pub(crate) unknown: Vec<String>,
}

/// Checks every (group, key) register.
pub(crate) fn check(ix: &Index<'_>) -> CommittedOffsets {
    let mut found = CommittedOffsets {
        anomalies: Vec::new(),
        unknown: Vec::new(),
    };
    let mut registers: BTreeMap<(&GroupId, &Key), Vec<RegisterCall>> = BTreeMap::new();
    for op in &ix.history.operations {
        let (group, key, action) = match &op.body {
            OpBody::Commit { group, key, offset } => (group, key, RegisterOp::Write(*offset)),
            OpBody::FetchCommitted { group, key, offset } => {
                (group, key, RegisterOp::Read(*offset))
            }
            _ => continue,
        };
        let complete_ns = match op.outcome {
            Outcome::Fail => continue,
            Outcome::Ok => op.complete_ns,
            Outcome::Info => None,
        };
        if op.outcome == Outcome::Ok {
            let offset = match action {
                RegisterOp::Write(o) | RegisterOp::Read(Some(o)) => Some(o),
                RegisterOp::Read(None) => None,
            };
            if let Some(offset) = offset {
                found
                    .anomalies
                    .extend(beyond_log(ix, group, key, offset, op));
            }
        }
        registers
            .entry((group, key))
            .or_default()
            .push(RegisterCall {
                op: op.id,
                action,
                invoke_ns: op.invoke_ns,
                complete_ns,
            });
    }
    let budget = ix.config.max_linearizability_states;
    for ((group, key), calls) in registers {
        match linearizable_register::check(&calls, None, budget) {
            Linearizability::Linearizable => {}
            Linearizability::Unknown { explored } => found.unknown.push(format!(
                "committed offsets of group {group} key {key}: search gave up after {explored} \
                 configurations ({} operations)",
                calls.len()
            )),
            Linearizability::Violation {
                blocked,
                state,
                linearized,
            } => {
                let op = ix.op(blocked);
                let held = state.map_or_else(|| "nothing".to_owned(), |o| o.to_string());
                found.anomalies.push(
                    Anomaly::new(
                        AnomalyKind::CommittedOffsetNonlinearizable,
                        Some(key),
                        format!(
                            "group {group} key {key}: no linearization of {} operations allows \
                             {} by process {}; the longest one tried placed {linearized} and \
                             left the register holding {held}",
                            calls.len(),
                            describe(op),
                            op.process
                        ),
                    )
                    .group(group)
                    .offsets(state)
                    .ops([op]),
                );
            }
        }
    }
    found
}

fn describe(op: &Operation) -> String {
    match &op.body {
        OpBody::Commit { offset, .. } => format!("commit of {offset}"),
        OpBody::FetchCommitted {
            offset: Some(o), ..
        } => format!("fetch_committed returning {o}"),
        OpBody::FetchCommitted { offset: None, .. } => "fetch_committed returning nothing".into(),
        _ => op.f.to_string(),
    }
}

fn beyond_log(
    ix: &Index<'_>,
    group: &GroupId,
    key: &Key,
    offset: Offset,
    op: &Operation,
) -> Option<Anomaly> {
    let log_end = ix.keys.get(key).map_or(0, |k| {
        let acked = ix.acked_sends(k).map(|(o, _, _)| o).max();
        acked.max(k.max_polled).map_or(0, |o| o + 1)
    });
    (offset > log_end).then(|| {
        Anomaly::new(
            AnomalyKind::CommittedOffsetBeyondLog,
            Some(key),
            format!(
                "group {group} key {key}: {} by process {} names offset {offset}, beyond the \
                 log end {log_end}",
                describe(op),
                op.process
            ),
        )
        .group(group)
        .offsets([offset, log_end])
        .ops([op])
    })
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::{AnomalyKind, CheckConfig, Verdict};
    use crate::history::{Function, HistoryBuilder};

    fn with_log(groups: impl FnOnce(&mut HistoryBuilder)) -> HistoryBuilder {
        let mut b = healthy();
        groups(&mut b);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        b
    }

    #[test]
    fn reads_of_the_latest_commit_pass() {
        assert_valid(&with_log(|b| {
            b.fetch(2, "g", "t/0", None)
                .commit(2, "g", "t/0", 2)
                .fetch(3, "g", "t/0", Some(2))
                .invoke_commit(2, "g", "t/0", 3)
                .fetch(3, "g", "t/0", Some(3))
                .ok_commit(2, "g", "t/0", 3)
                .invoke_commit(4, "g", "t/0", 1)
                .fail(4, Function::Commit)
                .fetch(3, "g", "t/0", Some(3));
        }));
    }

    #[test]
    fn indeterminate_commit_may_surface_later() {
        assert_valid(&with_log(|b| {
            b.commit(2, "g", "t/0", 1)
                .invoke_commit(4, "g", "t/0", 3)
                .info(4, Function::Commit)
                .fetch(3, "g", "t/0", Some(1))
                .fetch(3, "g", "t/0", Some(3));
        }));
    }

    #[test]
    fn stale_committed_offset_is_nonlinearizable() {
        let r = assert_only(
            &with_log(|b| {
                b.commit(2, "g", "t/0", 1)
                    .commit(2, "g", "t/0", 2)
                    .fetch(3, "g", "t/0", Some(1));
            }),
            AnomalyKind::CommittedOffsetNonlinearizable,
        );
        let example = &r.anomalies[&AnomalyKind::CommittedOffsetNonlinearizable][0];
        assert_eq!(example.group.as_ref().map(|g| g.0.as_str()), Some("g"));
        assert_eq!(example.ops[0].process, 3);
    }

    #[test]
    fn other_groups_are_independent_registers() {
        assert_valid(&with_log(|b| {
            b.commit(2, "g", "t/0", 1)
                .commit(2, "h", "t/0", 2)
                .fetch(3, "g", "t/0", Some(1))
                .fetch(3, "h", "t/0", Some(2));
        }));
    }

    #[test]
    fn committed_offset_past_the_log_end_is_reported() {
        let r = assert_only(
            &with_log(|b| {
                b.commit(2, "g", "t/0", 3).commit(2, "g", "t/0", 7);
            }),
            AnomalyKind::CommittedOffsetBeyondLog,
        );
        assert_eq!(
            r.anomalies[&AnomalyKind::CommittedOffsetBeyondLog][0].offsets,
            vec![7, 3]
        );
    }

    #[test]
    fn exploding_search_makes_the_verdict_unknown() {
        let b = with_log(|b| {
            // Twelve overlapping commits of 0, 1 or 2, and a read of 3 that none wrote: every
            // subset of the commits is a configuration to rule out.
            for p in 20..32 {
                b.invoke_commit(p, "g", "t/0", p % 3);
            }
            b.fetch(3, "g", "t/0", Some(3));
            for p in 20..32 {
                b.ok_commit(p, "g", "t/0", p % 3);
            }
        });
        let config = CheckConfig {
            max_linearizability_states: 100,
            ..small_run_config()
        };
        let r = crate::checker::check(&b.build().unwrap(), &config);
        assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary());
        assert!(r.anomaly_counts.is_empty());
        assert_eq!(r.unknown.len(), 1);
    }
}

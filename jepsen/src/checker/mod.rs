//! The history checker: every anomaly of `reference/jepsen-kafka-checks.md`, plus the stronger
//! promises a per-partition Raft log makes.
//!
//! [`check`] builds one shared index of the history and runs each check over it. One module
//! per concern:
//!
//! | module | anomalies |
//! |---|---|
//! | [`inconsistent_offsets`] | `inconsistent-offsets` |
//! | [`duplicate`] | `duplicate` |
//! | [`lost_write`] | `lost-write` |
//! | [`unseen`] | `unseen` |
//! | [`aborted_read`] | `aborted-read` (G1a), `phantom-read` |
//! | [`consumer_order`] | `poll-skip`, `nonmonotonic-poll` |
//! | [`nonmonotonic_send`] | `nonmonotonic-send` |
//! | [`realtime_send_order`] | `realtime-send-order` |
//! | [`durability`] | `final-log-missing` |
//! | [`dense`] | `final-log-gap` |
//! | [`high_watermark`] | `hw-regression`, `read-above-hw`, `hw-behind-ack` |
//! | [`committed_offsets`] (with [`linearizable_register`]) | `committed-offset-nonlinearizable`, `committed-offset-beyond-log` |
//! | [`vacuity`] | no anomaly: reasons why a run proves nothing |
//!
//! Where two definitions would report one fault twice, the more specific one wins, so that a
//! report names each fault once:
//! - an acknowledged send that no poll ever returned is a `lost-write` if some poll reached its
//!   offset and `unseen` otherwise, never `final-log-missing`;
//! - two sends from one process out of order are `nonmonotonic-send`, not
//!   `realtime-send-order`, which only compares different processes;
//! - a final read holding a different value at an offset is `inconsistent-offsets`, while
//!   `final-log-missing` means the offset is absent;
//! - final-phase polls are judged by the final-log checks (`final-log-missing`,
//!   `final-log-gap`), not by the consumer-order checks.
//!
//! Faults do still overlap where the definitions demand it: a hole inside the final log that
//! held an acknowledged record is both `final-log-gap` and `final-log-missing`.
//!
//! ## The final phase
//! After healing every fault, the harness reads every key from its log start (offset 0 unless
//! retention moved it) up to the highest offset ever seen. Its polls are marked with
//! `"final": true` in the poll's invoke or `ok` value, or are made by a process listed in
//! [`CheckConfig::final_processes`]. The union of their records per key is the final log.

pub mod aborted_read;
pub mod committed_offsets;
mod config;
pub mod consumer_order;
pub mod dense;
pub mod duplicate;
pub mod durability;
pub mod high_watermark;
pub mod inconsistent_offsets;
mod index;
pub mod linearizable_register;
pub mod lost_write;
pub mod nonmonotonic_send;
pub mod realtime_send_order;
mod report;
pub mod unseen;
pub mod vacuity;

use std::collections::BTreeMap;

pub use config::CheckConfig;
pub use report::{Anomaly, AnomalyKind, KeyStats, OpRef, Report, Stats, Verdict};

use crate::history::{History, OpBody, Outcome};
use index::Index;

/// Checks a history and reports every anomaly found, with examples, and a verdict.
pub fn check(history: &History, config: &CheckConfig) -> Report {
    let ix = Index::build(history, config);
    let mut found = Vec::new();
    found.extend(inconsistent_offsets::check(&ix));
    found.extend(duplicate::check(&ix));
    found.extend(lost_write::check(&ix));
    found.extend(unseen::check(&ix));
    found.extend(aborted_read::check(&ix));
    found.extend(consumer_order::check(&ix));
    found.extend(nonmonotonic_send::check(&ix));
    found.extend(realtime_send_order::check(&ix));
    found.extend(durability::check(&ix));
    found.extend(dense::check(&ix));
    found.extend(high_watermark::check(&ix));
    let committed = committed_offsets::check(&ix);
    found.extend(committed.anomalies);
    let vacuity = vacuity::check(&ix);

    let mut anomaly_counts = BTreeMap::new();
    let mut anomalies: BTreeMap<AnomalyKind, Vec<Anomaly>> = BTreeMap::new();
    for anomaly in found {
        *anomaly_counts.entry(anomaly.kind).or_insert(0) += 1;
        let examples = anomalies.entry(anomaly.kind).or_default();
        if examples.len() < config.max_examples_per_kind {
            examples.push(anomaly);
        }
    }
    let verdict = if !anomaly_counts.is_empty() {
        Verdict::Invalid
    } else if !committed.unknown.is_empty() {
        Verdict::Unknown
    } else if !vacuity.is_empty() {
        Verdict::Vacuous
    } else {
        Verdict::Valid
    };
    Report {
        verdict,
        anomaly_counts,
        anomalies,
        vacuity,
        unknown: committed.unknown,
        stats: stats(&ix),
    }
}

fn stats(ix: &Index<'_>) -> Stats {
    let mut stats = Stats {
        events: ix.history.event_count,
        operations: ix.history.operations.len(),
        nemesis_events: ix.history.nemesis.len(),
        ..Stats::default()
    };
    for op in &ix.history.operations {
        match op.outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::Fail => stats.fail += 1,
            Outcome::Info => stats.info += 1,
        }
    }
    for (key, k) in &ix.keys {
        let mut ks = KeyStats {
            ok_polls: k.ok_polls,
            final_records: k.final_log.len(),
            ..KeyStats::default()
        };
        for id in &k.sends {
            let op = ix.op(*id);
            if let OpBody::Send { .. } = op.body {
                match op.outcome {
                    Outcome::Ok => ks.ok_sends += 1,
                    Outcome::Fail => ks.failed_sends += 1,
                    Outcome::Info => ks.info_sends += 1,
                }
            }
        }
        stats.keys.insert(key.clone(), ks);
    }
    stats
}

/// Shared helpers for the checks' unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testkit {
    use std::collections::BTreeSet;

    use super::*;
    use crate::history::HistoryBuilder;

    /// Thresholds low enough for hand-made histories of a few operations.
    pub(crate) fn small_run_config() -> CheckConfig {
        CheckConfig {
            min_ok_sends_per_key: 1,
            min_ok_polls_per_key: 1,
            ..CheckConfig::default()
        }
    }

    pub(crate) fn report(b: &HistoryBuilder) -> Report {
        check(&b.build().unwrap(), &small_run_config())
    }

    /// The history trips `kind` and nothing else.
    pub(crate) fn assert_only(b: &HistoryBuilder, kind: AnomalyKind) -> Report {
        assert_only_with(b, &small_run_config(), kind)
    }

    /// Under `config`, the history trips `kind` and nothing else.
    pub(crate) fn assert_only_with(
        b: &HistoryBuilder,
        config: &CheckConfig,
        kind: AnomalyKind,
    ) -> Report {
        let r = check(&b.build().unwrap(), config);
        assert_eq!(r.kinds(), BTreeSet::from([kind]), "{}", r.summary());
        assert_eq!(r.verdict, Verdict::Invalid);
        r
    }

    /// The history passes.
    pub(crate) fn assert_valid(b: &HistoryBuilder) -> Report {
        let r = report(b);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary());
        r
    }

    /// A healthy run on `t/0`: p1 sends 10, 11, 12 at offsets 0..=2, p2 consumes them in two
    /// polls, and p9 reads them all in the final phase.
    pub(crate) fn healthy() -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0)
            .send(1, "t/0", 11, 1)
            .assign(2, &["t/0"], true)
            .poll(2, &[("t/0", &[(0, 10), (1, 11)])])
            .send(1, "t/0", 12, 2)
            .poll(2, &[("t/0", &[(2, 12)])]);
        b
    }

    /// Appends the final read of `t/0` by p9.
    pub(crate) fn final_read(b: &mut HistoryBuilder, records: &[(u64, i64)]) {
        b.assign(9, &["t/0"], true)
            .final_poll(9, &[("t/0", records)]);
    }

    #[test]
    fn healthy_run_is_valid() {
        let mut b = healthy();
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        let r = assert_valid(&b);
        assert_eq!(r.stats.keys[&"t/0".into()].ok_sends, 3);
        assert!(r.summary().contains("verdict: VALID"));
    }
}

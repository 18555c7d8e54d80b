//! A consumer reads each assigned key in offset order, one record after another.
//!
//! For every process and key the check tracks the next offset the consumer should return: one
//! past the last record its previous `ok` poll returned. Then, within and across polls:
//! - `poll-skip`: a record's offset is beyond the expected one (offsets were skipped);
//! - `nonmonotonic-poll`: a record's offset is before the expected one (the consumer went back
//!   to, or before, where it had already been).
//!
//! Offsets are dense in Raftka, so "the next offset" is the last one plus one.
//!
//! The expectation is forgotten when the consumer's position legitimately changes or becomes
//! unknown: an `ok` or `info` assign (assign replaces the assignment and may seek), any crash of
//! the client, and any `info` completion (the process is retired). A failed assign changes
//! nothing. Final-phase polls are left to the final-log checks.

use std::collections::HashMap;

use crate::history::{Key, Offset, OpBody, OpId, Outcome, ProcessId};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds skipped and repeated offsets in each consumer's stream.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    // process -> key -> (next expected offset, the poll that set it)
    let mut expected: HashMap<ProcessId, HashMap<Key, (Offset, OpId)>> = HashMap::new();
    for op in &ix.history.operations {
        let forget = match &op.body {
            OpBody::Assign(_) => op.outcome != Outcome::Fail,
            OpBody::Crash => true,
            _ => op.outcome == Outcome::Info,
        };
        if forget {
            expected.remove(&op.process);
            continue;
        }
        let OpBody::Poll(poll) = &op.body else {
            continue;
        };
        if op.outcome != Outcome::Ok || ix.is_final(op) {
            continue;
        }
        let positions = expected.entry(op.process).or_default();
        for (key, records) in &poll.reads {
            for &(offset, value) in records {
                if let Some(&(next, previous)) = positions.get(key) {
                    let kind = if offset > next {
                        Some((AnomalyKind::PollSkip, "skipped to"))
                    } else if offset < next {
                        Some((AnomalyKind::NonmonotonicPoll, "went back to"))
                    } else {
                        None
                    };
                    if let Some((kind, verb)) = kind {
                        let mut ops = vec![ix.op(previous)];
                        if previous != op.id {
                            ops.push(op);
                        }
                        out.push(
                            Anomaly::new(
                                kind,
                                Some(key),
                                format!(
                                    "key {key}: process {} expected offset {next} next but \
                                     {verb} offset {offset}",
                                    op.process
                                ),
                            )
                            .offsets([next, offset])
                            .values([value])
                            .ops(ops),
                        );
                    }
                }
                positions.insert(key.clone(), (offset + 1, op.id));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::AnomalyKind;
    use crate::history::HistoryBuilder;

    /// p1 writes 10..=13 at offsets 0..=3; p3 reads them all; p9 reads them in the final phase.
    fn writes_then(consume: impl FnOnce(&mut HistoryBuilder)) -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        for (offset, value) in [(0, 10), (1, 11), (2, 12), (3, 13)] {
            b.send(1, "t/0", value, offset);
        }
        b.assign(3, &["t/0"], true)
            .poll(3, &[("t/0", &[(0, 10), (1, 11), (2, 12), (3, 13)])]);
        b.assign(2, &["t/0"], true);
        consume(&mut b);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12), (3, 13)]);
        b
    }

    fn with_hw(b: &mut HistoryBuilder, reads: &[(u64, i64)]) {
        b.poll_with_hw(2, &[("t/0", reads)], &[("t/0", 4)]);
    }

    #[test]
    fn consecutive_polls_pass() {
        assert_valid(&writes_then(|b| {
            with_hw(b, &[(0, 10), (1, 11)]);
            with_hw(b, &[(2, 12), (3, 13)]);
        }));
    }

    #[test]
    fn reassigning_resets_the_expected_offset() {
        assert_valid(&writes_then(|b| {
            with_hw(b, &[(0, 10), (1, 11)]);
            b.assign(2, &["t/0"], true);
            with_hw(b, &[(0, 10)]);
            b.crash(2);
            with_hw(b, &[(3, 13)]);
        }));
    }

    #[test]
    fn gap_between_polls_is_a_poll_skip() {
        let r = assert_only(
            &writes_then(|b| {
                with_hw(b, &[(0, 10), (1, 11)]);
                with_hw(b, &[(3, 13)]);
            }),
            AnomalyKind::PollSkip,
        );
        let example = &r.anomalies[&AnomalyKind::PollSkip][0];
        assert_eq!(example.offsets, vec![2, 3]);
        assert_eq!(example.ops.len(), 2);
    }

    #[test]
    fn gap_within_a_poll_is_a_poll_skip() {
        assert_only(
            &writes_then(|b| with_hw(b, &[(0, 10), (2, 12), (3, 13)])),
            AnomalyKind::PollSkip,
        );
    }

    #[test]
    fn rereading_without_assign_is_nonmonotonic() {
        let r = assert_only(
            &writes_then(|b| {
                with_hw(b, &[(0, 10), (1, 11)]);
                with_hw(b, &[(1, 11), (2, 12)]);
            }),
            AnomalyKind::NonmonotonicPoll,
        );
        assert_eq!(r.anomaly_counts[&AnomalyKind::NonmonotonicPoll], 1);
    }
}

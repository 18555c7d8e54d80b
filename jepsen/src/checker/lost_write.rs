//! `lost-write`: an acknowledged send that no `ok` poll ever returned, although some `ok` poll
//! of its key returned a record at or beyond its offset.
//!
//! Consumers read a key's log in offset order, so a poll that reached past the send's offset
//! should have passed over it. (The reference also counts `info` sends that were later read, but
//! a read value is by definition not lost; only `ok` sends with a known offset qualify.) An
//! acknowledged send never read and above everything polled is [`unseen`](super::unseen)
//! instead: the two are disjoint.

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds acknowledged sends skipped over by every poll.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        let Some(max_polled) = k.max_polled else {
            continue;
        };
        // The first poll that reached the highest offset: the witness for every lost write.
        let reached = k
            .reads
            .iter()
            .find(|r| r.offset == max_polled)
            .map(|r| ix.op(r.op));
        for (offset, value, send) in ix.acked_sends(k) {
            if offset > max_polled || k.read_values.contains(&value) {
                continue;
            }
            out.push(
                Anomaly::new(
                    AnomalyKind::LostWrite,
                    Some(key),
                    format!(
                        "key {key}: value {value}, acknowledged at offset {offset}, was never \
                         read, though polls reached offset {max_polled}"
                    ),
                )
                .offsets([offset, max_polled])
                .values([value])
                .ops(std::iter::once(send).chain(reached)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::{AnomalyKind, CheckConfig};
    use crate::history::HistoryBuilder;

    /// p2 reads offset 0 and p3, resuming from a committed offset, reads offset 2; nobody reads
    /// offset 1. No final phase, so that only the polls' coverage decides.
    fn run(p3_reads: &[(u64, i64)]) -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0)
            .send(1, "t/0", 11, 1)
            .send(1, "t/0", 12, 2)
            .assign(2, &["t/0"], true)
            .poll_with_hw(2, &[("t/0", &[(0, 10)])], &[("t/0", 3)])
            .assign(3, &["t/0"], false)
            .poll_with_hw(3, &[("t/0", p3_reads)], &[("t/0", 3)]);
        b
    }

    fn no_final_phase() -> CheckConfig {
        CheckConfig {
            require_final_phase: false,
            ..small_run_config()
        }
    }

    #[test]
    fn every_polled_over_write_read_passes() {
        let r = crate::checker::check(
            &run(&[(1, 11), (2, 12)]).build().unwrap(),
            &no_final_phase(),
        );
        assert!(r.is_valid(), "{}", r.summary());
    }

    #[test]
    fn write_passed_over_by_polls_is_lost() {
        let r = assert_only_with(&run(&[(2, 12)]), &no_final_phase(), AnomalyKind::LostWrite);
        let example = &r.anomalies[&AnomalyKind::LostWrite][0];
        assert_eq!(example.values, vec![11]);
        assert_eq!(example.offsets, vec![1, 2]);
    }
}

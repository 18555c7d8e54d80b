//! `final-log-missing`: a committed record is absent from the final read of its key.
//!
//! Committed records are the offsets of acknowledged sends and every record an ordinary `ok`
//! poll returned (a poll only returns data below the high watermark, i.e. committed data). After
//! the final heal, each must still sit at its offset in the final log. Three cases are left to
//! more specific checks: a never-read acknowledged send (`lost-write` / `unseen`), a different
//! value at the offset (`inconsistent-offsets`), and offsets below the log start (removed by
//! retention, legitimately). Keys the final phase never read are skipped here and made vacuous
//! by the [`vacuity`](super::vacuity) guard.

use std::collections::BTreeMap;

use crate::history::{Offset, OpId, Value};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds committed records missing from the final log.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in ix.keys.iter().filter(|(_, k)| k.has_final) {
        let mut committed: BTreeMap<(Offset, Value), OpId> = BTreeMap::new();
        for (offset, value, op) in ix.acked_sends(k) {
            if k.read_values.contains(&value) {
                committed.entry((offset, value)).or_insert(op.id);
            }
        }
        for r in k.reads.iter().filter(|r| !r.final_read) {
            committed.entry((r.offset, r.value)).or_insert(r.op);
        }
        let final_end = k.final_log.keys().next_back().map(|o| o + 1).unwrap_or(0);
        for ((offset, value), witness) in committed {
            if offset < k.log_start || k.final_log.contains_key(&offset) {
                continue;
            }
            out.push(
                Anomaly::new(
                    AnomalyKind::FinalLogMissing,
                    Some(key),
                    format!(
                        "key {key}: value {value} was committed at offset {offset} but the final \
                         read has no record there (final read ends before offset {final_end})"
                    ),
                )
                .offsets([offset])
                .values([value])
                .ops([ix.op(witness)]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::AnomalyKind;

    #[test]
    fn final_log_holding_everything_passes() {
        let mut b = healthy();
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        assert_valid(&b);
    }

    #[test]
    fn truncated_final_log_is_missing_committed_records() {
        // Offset 2 was acknowledged and consumed, then vanished (an unsynced tail lost in a
        // crash). The high watermark is left alone so that only durability is at stake.
        let mut b = healthy();
        b.assign(9, &["t/0"], true).final_poll_with_hw(
            9,
            &[("t/0", &[(0, 10), (1, 11)])],
            &[("t/0", 3)],
        );
        let r = assert_only(&b, AnomalyKind::FinalLogMissing);
        let example = &r.anomalies[&AnomalyKind::FinalLogMissing][0];
        assert_eq!(
            (example.offsets.clone(), example.values.clone()),
            (vec![2], vec![12])
        );
    }

    #[test]
    fn records_below_the_log_start_may_be_gone() {
        let mut b = healthy();
        b.assign(9, &["t/0"], true).event(
            9,
            crate::history::EventType::Invoke,
            crate::history::Function::Poll,
            serde_json::json!({"final": true}),
        );
        b.event(
            9,
            crate::history::EventType::Ok,
            crate::history::Function::Poll,
            serde_json::json!({"reads": {"t/0": [[2, 12]]}, "high_watermarks": {"t/0": 3},
                               "log_starts": {"t/0": 2}}),
        );
        assert_valid(&b);
    }
}

//! `final-log-gap`: the final log of a key is not dense.
//!
//! Raftka assigns offsets `next_offset, next_offset + 1, ...` as entries apply, so the final read
//! of a key must hold every offset from the log start (0, or what retention moved it to: see
//! [`CheckConfig::log_starts`](super::CheckConfig::log_starts)) up to the last offset it holds.
//! One anomaly per key lists the missing ranges.

use crate::history::Offset;

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// How many missing offsets an example lists before it stops.
const LISTED: usize = 10;

/// Finds holes in each key's final log.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        let mut missing: Vec<(Offset, Offset)> = Vec::new();
        let mut next = k.log_start;
        for &offset in k.final_log.keys().filter(|o| **o >= k.log_start) {
            if offset > next {
                missing.push((next, offset - 1));
            }
            next = offset + 1;
        }
        if missing.is_empty() {
            continue;
        }
        let ranges: Vec<String> = missing.iter().map(|(a, b)| format!("{a}..={b}")).collect();
        let listed: Vec<Offset> = missing
            .iter()
            .flat_map(|(a, b)| *a..=*b)
            .take(LISTED)
            .collect();
        let mut readers: Vec<_> = k.final_log.values().map(|(_, op)| *op).collect();
        readers.sort();
        readers.dedup();
        out.push(
            Anomaly::new(
                AnomalyKind::FinalLogGap,
                Some(key),
                format!(
                    "key {key}: final log starting at {} is missing offsets {}",
                    k.log_start,
                    ranges.join(", ")
                ),
            )
            .offsets(listed)
            .ops(readers.iter().map(|id| ix.op(*id))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::{AnomalyKind, CheckConfig};
    use crate::history::{Function, HistoryBuilder};

    /// 10 at 0 and 12 at 2 are acknowledged; 11's send is indeterminate. p3 reads offset 0, p4
    /// resumes from a committed offset and reads offset 2; the final read is `final_records`.
    fn run(final_records: &[(u64, i64)]) -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0)
            .invoke_send(2, "t/0", 11)
            .info(2, Function::Send)
            .send(1, "t/0", 12, 2)
            .assign(3, &["t/0"], true)
            .poll_with_hw(3, &[("t/0", &[(0, 10)])], &[("t/0", 3)])
            .assign(4, &["t/0"], false)
            .poll_with_hw(4, &[("t/0", &[(2, 12)])], &[("t/0", 3)])
            .assign(9, &["t/0"], true)
            .final_poll_with_hw(9, &[("t/0", final_records)], &[("t/0", 3)]);
        b
    }

    #[test]
    fn dense_final_log_passes() {
        assert_valid(&run(&[(0, 10), (1, 11), (2, 12)]));
    }

    #[test]
    fn hole_in_final_log_is_a_gap() {
        let r = assert_only(&run(&[(0, 10), (2, 12)]), AnomalyKind::FinalLogGap);
        assert_eq!(r.anomalies[&AnomalyKind::FinalLogGap][0].offsets, vec![1]);
    }

    #[test]
    fn final_log_must_start_at_the_log_start() {
        let b = run(&[(1, 11), (2, 12)]);
        let start_at_one = CheckConfig {
            log_starts: [("t/0".into(), 1)].into(),
            ..small_run_config()
        };
        let r = crate::checker::check(&b.build().unwrap(), &start_at_one);
        assert!(r.is_valid(), "{}", r.summary());
        // Without the log start, offset 0 is a hole, and p3's committed read of it is missing:
        // the one documented overlap between the two final-log checks.
        let r = report(&b);
        assert_eq!(
            r.kinds(),
            [AnomalyKind::FinalLogGap, AnomalyKind::FinalLogMissing].into(),
            "{}",
            r.summary()
        );
        assert_eq!(r.anomalies[&AnomalyKind::FinalLogGap][0].offsets, vec![0]);
    }
}

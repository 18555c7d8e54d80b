//! Reads of values that were never committed.
//!
//! - `aborted-read` (G1a): an `ok` poll returned a value whose send definitely failed. A `fail`
//!   is only recorded when the server proved nothing was written, so this is a dirty read, or a
//!   client that mislabelled an indeterminate error.
//! - `phantom-read`: an `ok` poll returned a value that was never sent to that key at all
//!   (corruption, or records crossing partitions).
//!
//! Each value is reported once, with the first poll that returned it.

use std::collections::HashSet;

use crate::history::Outcome;

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds reads of failed and never-sent values.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        let mut reported = HashSet::new();
        for r in &k.reads {
            if reported.contains(&r.value) {
                continue;
            }
            let poll = ix.op(r.op);
            let anomaly = match k.send_of.get(&r.value).map(|id| ix.op(*id)) {
                None => Anomaly::new(
                    AnomalyKind::PhantomRead,
                    Some(key),
                    format!(
                        "key {key}: poll returned value {} at offset {}, never sent to this key",
                        r.value, r.offset
                    ),
                )
                .ops([poll]),
                Some(send) if send.outcome == Outcome::Fail => Anomaly::new(
                    AnomalyKind::AbortedRead,
                    Some(key),
                    format!(
                        "key {key}: poll returned value {} at offset {}, whose send failed",
                        r.value, r.offset
                    ),
                )
                .ops([send, poll]),
                Some(_) => continue,
            };
            reported.insert(r.value);
            out.push(anomaly.offsets([r.offset]).values([r.value]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::AnomalyKind;
    use crate::history::{Function, HistoryBuilder};

    /// 10 is acknowledged at 0, 11 is sent with outcome `outcome`, 12 is acknowledged at 2, and
    /// both a consumer and the final reader see `middle` at offset 1.
    fn run(outcome: Function, fail: bool, middle: i64) -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0).invoke_send(2, "t/0", 11);
        if fail {
            b.fail(2, outcome);
        } else {
            b.info(2, outcome);
        }
        b.send(1, "t/0", 12, 2)
            .assign(3, &["t/0"], true)
            .poll(3, &[("t/0", &[(0, 10), (1, middle), (2, 12)])]);
        final_read(&mut b, &[(0, 10), (1, middle), (2, 12)]);
        b
    }

    #[test]
    fn read_of_indeterminate_send_passes() {
        assert_valid(&run(Function::Send, false, 11));
    }

    #[test]
    fn read_of_failed_send_is_an_aborted_read() {
        let r = assert_only(&run(Function::Send, true, 11), AnomalyKind::AbortedRead);
        let example = &r.anomalies[&AnomalyKind::AbortedRead][0];
        assert_eq!(
            (example.offsets.clone(), example.values.clone()),
            (vec![1], vec![11])
        );
        assert_eq!(example.ops.len(), 2);
    }

    #[test]
    fn read_of_value_never_sent_is_a_phantom_read() {
        let r = assert_only(&run(Function::Send, false, 99), AnomalyKind::PhantomRead);
        assert_eq!(r.anomaly_counts[&AnomalyKind::PhantomRead], 1);
    }
}

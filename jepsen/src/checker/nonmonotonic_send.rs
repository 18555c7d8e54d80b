//! `nonmonotonic-send`: a process's later acknowledged send to a key landed at or before its
//! earlier one.
//!
//! A process runs one operation at a time, so its sends to a key are ordered in real time too;
//! the cross-process version of this property is [`realtime_send_order`](super::realtime_send_order).
//! Sends with an unknown outcome or offset are skipped; the comparison is with the process's
//! previous acknowledged send to the key.

use std::collections::HashMap;

use crate::history::{Key, Offset, OpBody, OpId, Outcome, ProcessId};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds each process's sends that went backwards.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut last: HashMap<(ProcessId, &Key), (Offset, OpId)> = HashMap::new();
    for op in &ix.history.operations {
        let OpBody::Send {
            key,
            value,
            offset: Some(offset),
        } = &op.body
        else {
            continue;
        };
        if op.outcome != Outcome::Ok {
            continue;
        }
        if let Some(&(before, earlier)) = last.get(&(op.process, key)) {
            if *offset <= before {
                out.push(
                    Anomaly::new(
                        AnomalyKind::NonmonotonicSend,
                        Some(key),
                        format!(
                            "key {key}: process {} sent value {value} after a send that landed \
                             at offset {before}, but it landed at offset {offset}",
                            op.process
                        ),
                    )
                    .offsets([before, *offset])
                    .values([*value])
                    .ops([ix.op(earlier), op]),
                );
            }
        }
        last.insert((op.process, key), (*offset, op.id));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::AnomalyKind;
    use crate::history::HistoryBuilder;

    fn run(first: u64, second: u64) -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, first).send(1, "t/0", 11, second);
        let mut log = [(first, 10), (second, 11)];
        log.sort();
        b.assign(2, &["t/0"], true).poll(2, &[("t/0", &log)]);
        final_read(&mut b, &log);
        b
    }

    #[test]
    fn increasing_sends_pass() {
        assert_valid(&run(0, 1));
    }

    #[test]
    fn later_send_at_lower_offset_is_nonmonotonic() {
        let r = assert_only(&run(1, 0), AnomalyKind::NonmonotonicSend);
        assert_eq!(
            r.anomalies[&AnomalyKind::NonmonotonicSend][0].offsets,
            vec![1, 0]
        );
    }
}

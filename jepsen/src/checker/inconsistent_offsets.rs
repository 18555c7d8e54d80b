//! `inconsistent-offsets`: one key and offset seen with two different values, i.e. the replicas'
//! logs diverged (or a client was told one thing and shown another).
//!
//! Observations are the offsets `ok` sends were acknowledged at and every record any `ok` poll
//! returned, the final phase's included.

use std::collections::BTreeMap;

use crate::history::{Offset, OpId, Value};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds every (key, offset) observed with more than one value.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        // offset -> value -> the first operation that observed it
        let mut seen: BTreeMap<Offset, BTreeMap<Value, OpId>> = BTreeMap::new();
        for (offset, value, op) in ix.acked_sends(k) {
            seen.entry(offset)
                .or_default()
                .entry(value)
                .or_insert(op.id);
        }
        for r in &k.reads {
            seen.entry(r.offset)
                .or_default()
                .entry(r.value)
                .or_insert(r.op);
        }
        for (offset, values) in seen.into_iter().filter(|(_, vs)| vs.len() > 1) {
            let listed: Vec<Value> = values.keys().copied().collect();
            out.push(
                Anomaly::new(
                    AnomalyKind::InconsistentOffsets,
                    Some(key),
                    format!("key {key} offset {offset} was seen holding values {listed:?}"),
                )
                .offsets([offset])
                .values(listed)
                .ops(values.values().map(|id| ix.op(*id))),
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
    fn consistent_reads_pass() {
        let mut b = healthy();
        b.poll(3, &[("t/0", &[(0, 10), (1, 11), (2, 12)])]);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        assert_valid(&b);
    }

    #[test]
    fn two_values_at_one_offset_are_inconsistent() {
        // 13 is sent with an unknown outcome, and one consumer sees it where another saw 12.
        let mut b = healthy();
        b.invoke_send(4, "t/0", 13)
            .info(4, crate::history::Function::Send)
            .poll(3, &[("t/0", &[(0, 10), (1, 11), (2, 13)])]);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        let r = assert_only(&b, AnomalyKind::InconsistentOffsets);
        let example = &r.anomalies[&AnomalyKind::InconsistentOffsets][0];
        assert_eq!(example.offsets, vec![2]);
        assert_eq!(example.values, vec![12, 13]);
    }
}

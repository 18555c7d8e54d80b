//! `duplicate`: one value seen at two offsets of a key, e.g. a send applied twice.
//!
//! Observations are the same as for inconsistent-offsets: acknowledged offsets of `ok` sends and
//! every record returned by an `ok` poll.

use std::collections::BTreeMap;

use crate::history::{Offset, OpId, Value};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds every (key, value) observed at more than one offset.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        // value -> offset -> the first operation that observed it
        let mut seen: BTreeMap<Value, BTreeMap<Offset, OpId>> = BTreeMap::new();
        for (offset, value, op) in ix.acked_sends(k) {
            seen.entry(value)
                .or_default()
                .entry(offset)
                .or_insert(op.id);
        }
        for r in &k.reads {
            seen.entry(r.value)
                .or_default()
                .entry(r.offset)
                .or_insert(r.op);
        }
        for (value, offsets) in seen.into_iter().filter(|(_, os)| os.len() > 1) {
            let listed: Vec<Offset> = offsets.keys().copied().collect();
            out.push(
                Anomaly::new(
                    AnomalyKind::Duplicate,
                    Some(key),
                    format!("key {key} value {value} was seen at offsets {listed:?}"),
                )
                .offsets(listed)
                .values([value])
                .ops(offsets.values().map(|id| ix.op(*id))),
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
    fn each_value_at_one_offset_passes() {
        let mut b = healthy();
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        assert_valid(&b);
    }

    #[test]
    fn value_applied_twice_is_a_duplicate() {
        // 12 was acknowledged at offset 2 and also appended again at offset 3.
        let mut b = healthy();
        b.poll(2, &[("t/0", &[(3, 12)])]);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12), (3, 12)]);
        let r = assert_only(&b, AnomalyKind::Duplicate);
        let example = &r.anomalies[&AnomalyKind::Duplicate][0];
        assert_eq!(example.offsets, vec![2, 3]);
        assert_eq!(example.values, vec![12]);
    }
}

//! `unseen`: an acknowledged send that no `ok` poll returned by the end of the run, final phase
//! included, and whose offset is unknown or above every offset any poll of its key returned.
//!
//! A never-read send at or below a polled offset is a [`lost-write`](super::lost_write) instead.

use super::index::Index;
use super::{Anomaly, AnomalyKind};
use crate::history::{OpBody, Outcome};

/// Finds acknowledged sends nobody ever read.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        for id in &k.sends {
            let send = ix.op(*id);
            let OpBody::Send { value, offset, .. } = &send.body else {
                continue;
            };
            if send.outcome != Outcome::Ok || k.read_values.contains(value) {
                continue;
            }
            let polled_over = matches!((offset, k.max_polled), (Some(o), Some(m)) if *o <= m);
            if polled_over {
                continue;
            }
            let at =
                offset.map_or_else(|| "an unknown offset".to_owned(), |o| format!("offset {o}"));
            out.push(
                Anomaly::new(
                    AnomalyKind::Unseen,
                    Some(key),
                    format!("key {key}: value {value}, acknowledged at {at}, was never read"),
                )
                .offsets(*offset)
                .values([*value])
                .ops([send]),
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
    fn every_acknowledged_send_read_passes() {
        let mut b = healthy();
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        assert_valid(&b);
    }

    #[test]
    fn acknowledged_send_never_read_is_unseen() {
        let mut b = healthy();
        b.send(1, "t/0", 13, 3);
        // The final reader stops at offset 2 although the high watermark says 4.
        b.assign(9, &["t/0"], true).final_poll_with_hw(
            9,
            &[("t/0", &[(0, 10), (1, 11), (2, 12)])],
            &[("t/0", 4)],
        );
        let r = assert_only(&b, AnomalyKind::Unseen);
        assert_eq!(r.anomalies[&AnomalyKind::Unseen][0].values, vec![13]);
    }

    #[test]
    fn acknowledged_send_without_offset_never_read_is_unseen() {
        let mut b = healthy();
        b.invoke_send(1, "t/0", 13).event(
            1,
            crate::history::EventType::Ok,
            crate::history::Function::Send,
            serde_json::json!({"key": "t/0", "value": 13}),
        );
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        let r = assert_only(&b, AnomalyKind::Unseen);
        assert!(r.anomalies[&AnomalyKind::Unseen][0].offsets.is_empty());
    }
}

//! The high watermark (HW): one past the last committed offset, returned with every poll.
//!
//! - `read-above-hw`: an `ok` poll returned a record at or above the HW it reported for that key
//!   (data served before it committed).
//! - `hw-regression`: an `ok` poll invoked after another `ok` poll completed reported a lower HW
//!   for the same key. Committed data never uncommits, so the HW never goes back in real time.
//! - `hw-behind-ack`: an `ok` poll invoked after a send to the key was acknowledged at offset
//!   `o` reported a HW of `o` or less. An acknowledgement means committed, so the HW is past it.
//!
//! The two real-time checks assume every poll sees the current commit point. If the harness
//! lets clients fetch from followers, which may lag, turn them off with
//! [`CheckConfig::realtime_high_watermark`](super::CheckConfig::realtime_high_watermark).
//! Both use a sweep over completion times: O(n log n) per key.

use std::collections::BTreeMap;

use crate::history::{Key, Offset, OpBody, Operation, Outcome};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// Finds reads above the HW and, if enabled, HWs that went back or lag acknowledged sends.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    // key -> every ok poll that reported a HW for it
    let mut polls: BTreeMap<&Key, Vec<(Offset, &Operation)>> = BTreeMap::new();
    for op in &ix.history.operations {
        let OpBody::Poll(poll) = &op.body else {
            continue;
        };
        if op.outcome != Outcome::Ok {
            continue;
        }
        for (key, hw) in &poll.high_watermarks {
            polls.entry(key).or_default().push((*hw, op));
            let above = poll
                .reads
                .get(key)
                .into_iter()
                .flatten()
                .filter(|(o, _)| o >= hw);
            if let Some((offset, value)) = above.max() {
                out.push(
                    Anomaly::new(
                        AnomalyKind::ReadAboveHw,
                        Some(key),
                        format!(
                            "key {key}: poll by process {} returned offset {offset} with high \
                             watermark {hw}",
                            op.process
                        ),
                    )
                    .offsets([*offset, *hw])
                    .values([*value])
                    .ops([op]),
                );
            }
        }
    }
    if !ix.config.realtime_high_watermark {
        return out;
    }
    for (key, key_polls) in polls {
        out.extend(regressions(key, &key_polls));
        if let Some(k) = ix.keys.get(key) {
            let acks: Vec<(Offset, &Operation)> = ix
                .acked_sends(k)
                .map(|(offset, _, op)| (offset, op))
                .collect();
            out.extend(behind_acks(key, &key_polls, &acks));
        }
    }
    out
}

/// For each poll in invoke order, the highest `(offset, op)` of `earlier` that completed
/// strictly before it was invoked.
fn sweep<'h>(
    earlier: &[(Offset, &'h Operation)],
    polls: &[(Offset, &'h Operation)],
) -> Vec<(Offset, &'h Operation, Offset, &'h Operation)> {
    let mut done: Vec<(u64, Offset, &Operation)> = earlier
        .iter()
        .filter_map(|(o, op)| op.complete_ns.map(|c| (c, *o, *op)))
        .collect();
    done.sort_by_key(|(c, _, op)| (*c, op.id));
    let mut queries: Vec<(Offset, &Operation)> = polls.to_vec();
    queries.sort_by_key(|(_, op)| (op.invoke_ns, op.id));
    let mut done = done.into_iter().peekable();
    let mut best: Option<(Offset, &Operation)> = None;
    let mut pairs = Vec::new();
    for (hw, q) in queries {
        while let Some((_, o, op)) = done.next_if(|(c, _, _)| *c < q.invoke_ns) {
            if best.is_none_or(|(b, _)| o > b) {
                best = Some((o, op));
            }
        }
        if let Some((o, op)) = best {
            pairs.push((o, op, hw, q));
        }
    }
    pairs
}

fn regressions(key: &Key, polls: &[(Offset, &Operation)]) -> Vec<Anomaly> {
    sweep(polls, polls)
        .into_iter()
        .filter(|(before, _, hw, _)| hw < before)
        .map(|(before, p, hw, q)| {
            Anomaly::new(
                AnomalyKind::HwRegression,
                Some(key),
                format!(
                    "key {key}: poll by process {} reported high watermark {hw} after a poll by \
                     process {} had completed with {before}",
                    q.process, p.process
                ),
            )
            .offsets([before, hw])
            .ops([p, q])
        })
        .collect()
}

fn behind_acks(
    key: &Key,
    polls: &[(Offset, &Operation)],
    acks: &[(Offset, &Operation)],
) -> Vec<Anomaly> {
    sweep(acks, polls)
        .into_iter()
        .filter(|(acked, _, hw, _)| hw <= acked)
        .map(|(acked, send, hw, q)| {
            Anomaly::new(
                AnomalyKind::HwBehindAck,
                Some(key),
                format!(
                    "key {key}: poll by process {} reported high watermark {hw} after a send \
                     was acknowledged at offset {acked}",
                    q.process
                ),
            )
            .offsets([acked, hw])
            .ops([send, q])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::{AnomalyKind, CheckConfig};
    use crate::history::HistoryBuilder;

    /// 10 and 11 are acknowledged at 0 and 1; 12's send is in flight while `middle` runs, then
    /// acknowledged at 2; the final phase reads everything.
    fn run(middle: impl FnOnce(&mut HistoryBuilder)) -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0)
            .send(1, "t/0", 11, 1)
            .invoke_send(1, "t/0", 12);
        b.assign(2, &["t/0"], true).assign(3, &["t/0"], true);
        middle(&mut b);
        b.ok_send(1, "t/0", 12, 2);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        b
    }

    #[test]
    fn advancing_high_watermark_passes() {
        assert_valid(&run(|b| {
            b.poll_with_hw(2, &[("t/0", &[(0, 10), (1, 11)])], &[("t/0", 2)])
                .poll_with_hw(3, &[("t/0", &[(0, 10), (1, 11), (2, 12)])], &[("t/0", 3)]);
        }));
    }

    #[test]
    fn record_at_the_high_watermark_is_a_read_above_hw() {
        let r = assert_only(
            &run(|b| {
                b.poll_with_hw(2, &[("t/0", &[(0, 10), (1, 11), (2, 12)])], &[("t/0", 2)]);
            }),
            AnomalyKind::ReadAboveHw,
        );
        assert_eq!(
            r.anomalies[&AnomalyKind::ReadAboveHw][0].offsets,
            vec![2, 2]
        );
    }

    fn stale_follower(b: &mut HistoryBuilder) {
        b.poll_with_hw(2, &[("t/0", &[(0, 10), (1, 11), (2, 12)])], &[("t/0", 3)])
            .poll_with_hw(3, &[("t/0", &[(0, 10), (1, 11)])], &[("t/0", 2)]);
    }

    #[test]
    fn lower_high_watermark_later_is_a_regression() {
        let r = assert_only(&run(stale_follower), AnomalyKind::HwRegression);
        let example = &r.anomalies[&AnomalyKind::HwRegression][0];
        assert_eq!(example.offsets, vec![3, 2]);
        assert_eq!((example.ops[0].process, example.ops[1].process), (2, 3));
    }

    #[test]
    fn realtime_checks_can_be_disabled_for_follower_reads() {
        let config = CheckConfig {
            realtime_high_watermark: false,
            ..small_run_config()
        };
        let r = crate::checker::check(&run(stale_follower).build().unwrap(), &config);
        assert!(r.is_valid(), "{}", r.summary());
    }

    #[test]
    fn high_watermark_not_past_an_acknowledged_send_is_behind() {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0)
            .send(1, "t/0", 11, 1)
            .send(1, "t/0", 12, 2);
        b.assign(2, &["t/0"], true)
            .poll_with_hw(2, &[("t/0", &[(0, 10), (1, 11)])], &[("t/0", 2)])
            .poll_with_hw(2, &[("t/0", &[(2, 12)])], &[("t/0", 3)]);
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        let r = assert_only(&b, AnomalyKind::HwBehindAck);
        assert_eq!(
            r.anomalies[&AnomalyKind::HwBehindAck][0].offsets,
            vec![2, 2]
        );
    }
}

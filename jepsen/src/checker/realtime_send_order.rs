//! `realtime-send-order`: if send A was acknowledged before send B was invoked on the same key,
//! a Raft log must place A first: `offset(A) < offset(B)`.
//!
//! Only pairs from different processes are reported here (a process's own sends are
//! [`nonmonotonic-send`](super::nonmonotonic_send)), and only strict inversions: two sends at
//! one offset are already `inconsistent-offsets`.
//!
//! For each B the check compares the highest-offset A, among sends by other processes that
//! completed strictly before B's invoke; a sweep over completion times makes this
//! O(n log n) per key.

use crate::history::{Offset, Operation, ProcessId};

use super::index::Index;
use super::{Anomaly, AnomalyKind};

/// The highest-offset acknowledged send seen so far, and the highest from any other process.
#[derive(Default)]
struct TopTwo<'h> {
    best: Option<(Offset, &'h Operation)>,
    other: Option<(Offset, &'h Operation)>,
}

impl<'h> TopTwo<'h> {
    fn add(&mut self, offset: Offset, op: &'h Operation) {
        match self.best {
            None => self.best = Some((offset, op)),
            Some((best, best_op)) if offset > best => {
                if best_op.process != op.process {
                    self.other = self.best;
                }
                self.best = Some((offset, op));
            }
            Some((_, best_op)) => {
                let beats_other = self.other.is_none_or(|(o, _)| offset > o);
                if best_op.process != op.process && beats_other {
                    self.other = Some((offset, op));
                }
            }
        }
    }

    /// The highest-offset send not made by `process`.
    fn excluding(&self, process: ProcessId) -> Option<(Offset, &'h Operation)> {
        match self.best {
            Some((_, op)) if op.process == process => self.other,
            best => best,
        }
    }
}

/// Finds acknowledged sends that landed before sends acknowledged ahead of them.
pub(crate) fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (key, k) in &ix.keys {
        let mut by_completion: Vec<(u64, Offset, &Operation)> = ix
            .acked_sends(k)
            .filter_map(|(offset, _, op)| op.complete_ns.map(|c| (c, offset, op)))
            .collect();
        by_completion.sort_by_key(|(c, _, op)| (*c, op.id));
        let mut by_invoke: Vec<(Offset, &Operation)> = ix
            .acked_sends(k)
            .map(|(offset, _, op)| (offset, op))
            .collect();
        by_invoke.sort_by_key(|(_, op)| (op.invoke_ns, op.id));

        let mut done = by_completion.into_iter().peekable();
        let mut top = TopTwo::default();
        for (offset, b) in by_invoke {
            while let Some((_, a_offset, a)) = done.next_if(|(c, _, _)| *c < b.invoke_ns) {
                top.add(a_offset, a);
            }
            let Some((a_offset, a)) = top.excluding(b.process) else {
                continue;
            };
            if a_offset > offset {
                out.push(
                    Anomaly::new(
                        AnomalyKind::RealtimeSendOrder,
                        Some(key),
                        format!(
                            "key {key}: a send acknowledged at offset {a_offset} (process {}) \
                             completed before a send by process {} was invoked, which then \
                             landed earlier, at offset {offset}",
                            a.process, b.process
                        ),
                    )
                    .offsets([a_offset, offset])
                    .ops([a, b]),
                );
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

    fn log(b: &mut HistoryBuilder) {
        b.assign(3, &["t/0"], true)
            .poll(3, &[("t/0", &[(0, 20), (1, 10)])]);
        final_read(b, &[(0, 20), (1, 10)]);
    }

    #[test]
    fn concurrent_sends_may_land_in_either_order() {
        let mut b = HistoryBuilder::new();
        b.invoke_send(1, "t/0", 10)
            .invoke_send(2, "t/0", 20)
            .ok_send(1, "t/0", 10, 1)
            .ok_send(2, "t/0", 20, 0);
        log(&mut b);
        assert_valid(&b);
    }

    #[test]
    fn send_acknowledged_first_but_landing_later_is_reported() {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 1).send(2, "t/0", 20, 0);
        log(&mut b);
        let r = assert_only(&b, AnomalyKind::RealtimeSendOrder);
        let example = &r.anomalies[&AnomalyKind::RealtimeSendOrder][0];
        assert_eq!(example.offsets, vec![1, 0]);
        assert_eq!((example.ops[0].process, example.ops[1].process), (1, 2));
    }

    #[test]
    fn top_two_skips_the_same_process() {
        // p1's own higher send must not hide p2's.
        let mut b = HistoryBuilder::new();
        b.send(2, "t/0", 20, 2)
            .send(1, "t/0", 10, 3)
            .send(1, "t/0", 11, 1);
        b.invoke_send(4, "t/0", 30)
            .info(4, crate::history::Function::Send);
        b.assign(3, &["t/0"], true);
        b.poll(3, &[("t/0", &[(0, 30), (1, 11), (2, 20), (3, 10)])]);
        final_read(&mut b, &[(0, 30), (1, 11), (2, 20), (3, 10)]);
        let r = report(&b);
        let realtime = &r.anomalies[&AnomalyKind::RealtimeSendOrder];
        assert_eq!(realtime.len(), 1, "{}", r.summary());
        assert_eq!(realtime[0].offsets, vec![2, 1]);
        assert!(r.kinds().contains(&AnomalyKind::NonmonotonicSend));
    }
}

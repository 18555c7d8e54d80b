//! Linearizability of one register, by the Wing–Gong–Lowe search (Lowe, "Testing for
//! linearizability", 2017) with memoization of (linearized set, register value).
//!
//! Calls and returns are laid out in time order in a doubly linked list. The search walks it
//! from the front: at a call it tries to linearize that operation now (legal for the register,
//! and a configuration not visited before), lifts it out of the list and starts again from the
//! front; at a return it has failed to linearize that operation before its deadline and
//! backtracks. Ties are concurrent: at equal times calls come before returns.
//!
//! Operations with an unknown outcome (`complete_ns: None`) have no deadline. A write of that
//! kind may take effect at any time after its invoke, or never: once only such operations are
//! left, the history is linearizable. Reads of unknown outcome say nothing and are dropped.
//!
//! A write of unknown outcome whose value no completed read returned is dropped too, before the
//! search starts. That changes no answer: in any linearization that places it, no read sits
//! between it and the next write (such a read would return its value), so leaving it out (it
//! "never happened") is a linearization as well. Without this, every such write doubles the
//! configurations to visit, and a run with a few dozen timeouts would end "unknown".
//!
//! The search is exponential in the worst case (many overlapping operations), so it stops after
//! `max_states` configurations and answers "unknown".

use std::collections::HashSet;

use crate::history::{Offset, OpId};

/// What a call does to the register; `None` is "nothing committed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterOp {
    Write(Offset),
    Read(Option<Offset>),
}

/// One operation on the register.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegisterCall {
    pub(crate) op: OpId,
    pub(crate) action: RegisterOp,
    pub(crate) invoke_ns: u64,
    /// `None`: the outcome is unknown; the operation may take effect later, or never.
    pub(crate) complete_ns: Option<u64>,
}

/// The answer of the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Linearizability {
    Linearizable,
    /// No order works. At the deepest point the search reached, `linearized` operations were
    /// placed, the register held `state`, and `blocked` could not be placed before it returned.
    Violation {
        blocked: OpId,
        state: Option<Offset>,
        linearized: usize,
    },
    /// The search visited `explored` configurations and gave up.
    Unknown {
        explored: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Call(usize),
    Return(usize),
}

/// Decides whether `calls` are linearizable for a register starting at `initial`.
pub(crate) fn check(
    calls: &[RegisterCall],
    initial: Option<Offset>,
    max_states: usize,
) -> Linearizability {
    let read_values: HashSet<Option<Offset>> = calls
        .iter()
        .filter_map(|c| match (c.action, c.complete_ns) {
            (RegisterOp::Read(v), Some(_)) => Some(v),
            _ => None,
        })
        .collect();
    let calls: Vec<RegisterCall> = calls
        .iter()
        .filter(|c| match c.action {
            _ if c.complete_ns.is_some() => true,
            RegisterOp::Write(o) => read_values.contains(&Some(o)),
            RegisterOp::Read(_) => false,
        })
        .copied()
        .collect();
    let mut timed: Vec<((u64, u8, usize), Entry)> = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        timed.push(((c.invoke_ns, 0, i), Entry::Call(i)));
        let done = c.complete_ns.map_or((u64::MAX, 2, i), |t| (t, 1, i));
        timed.push((done, Entry::Return(i)));
    }
    timed.sort_by_key(|(t, _)| *t);
    let entries: Vec<Entry> = timed.into_iter().map(|(_, e)| e).collect();
    let mut list = List::new(&entries, calls.len());

    let words = calls.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<Offset>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<Offset>)> = Vec::new();
    let mut state = initial;
    let mut deepest: Option<(usize, usize, Option<Offset>)> = None;
    let mut at = list.first();
    loop {
        let Some(e) = at else {
            return Linearizability::Linearizable;
        };
        match entries[e] {
            Entry::Call(i) => {
                let next_state = match calls[i].action {
                    RegisterOp::Write(o) => Some(Some(o)),
                    RegisterOp::Read(r) if r == state => Some(state),
                    RegisterOp::Read(_) => None,
                };
                if let Some(next_state) = next_state {
                    linearized[i / 64] |= 1 << (i % 64);
                    if cache.insert((linearized.clone(), next_state)) {
                        if cache.len() > max_states {
                            return Linearizability::Unknown {
                                explored: cache.len(),
                            };
                        }
                        stack.push((e, state));
                        state = next_state;
                        list.lift(e);
                        at = list.first();
                        continue;
                    }
                    linearized[i / 64] &= !(1 << (i % 64));
                }
                at = list.next(e);
            }
            Entry::Return(i) => {
                if calls[i].complete_ns.is_none() {
                    // Only operations of unknown outcome remain; they need never happen.
                    return Linearizability::Linearizable;
                }
                if deepest.is_none_or(|(depth, _, _)| stack.len() >= depth) {
                    deepest = Some((stack.len(), i, state));
                }
                let Some((call, before)) = stack.pop() else {
                    let (linearized, blocked, state) = deepest.unwrap_or((0, i, state));
                    return Linearizability::Violation {
                        blocked: calls[blocked].op,
                        state,
                        linearized,
                    };
                };
                if let Entry::Call(j) = entries[call] {
                    linearized[j / 64] &= !(1 << (j % 64));
                }
                state = before;
                list.unlift(call);
                at = list.next(call);
            }
        }
    }
}

/// The entries as a doubly linked list with two sentinels, supporting lift/unlift of a call and
/// its return in LIFO order (dancing links).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each call entry, the index of its return entry.
    partner: Vec<usize>,
    head: usize,
    tail: usize,
}

impl List {
    fn new(entries: &[Entry], calls: usize) -> Self {
        let n = entries.len();
        let (head, tail) = (n, n + 1);
        let mut next = vec![0; n + 2];
        let mut prev = vec![0; n + 2];
        let order: Vec<usize> = std::iter::once(head).chain(0..n).chain([tail]).collect();
        for w in order.windows(2) {
            next[w[0]] = w[1];
            prev[w[1]] = w[0];
        }
        let mut return_of = vec![0; calls];
        for (e, entry) in entries.iter().enumerate() {
            if let Entry::Return(i) = entry {
                return_of[*i] = e;
            }
        }
        let partner = entries
            .iter()
            .map(|entry| match entry {
                Entry::Call(i) => return_of[*i],
                Entry::Return(_) => usize::MAX,
            })
            .collect();
        List {
            next,
            prev,
            partner,
            head,
            tail,
        }
    }

    fn first(&self) -> Option<usize> {
        self.next(self.head)
    }

    fn next(&self, e: usize) -> Option<usize> {
        Some(self.next[e]).filter(|n| *n != self.tail)
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[n] = x;
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: usize, action: RegisterOp, invoke: u64, complete: Option<u64>) -> RegisterCall {
        RegisterCall {
            op: OpId(id),
            action,
            invoke_ns: invoke,
            complete_ns: complete,
        }
    }

    use RegisterOp::{Read, Write};

    #[test]
    fn sequential_reads_of_the_last_write_are_linearizable() {
        let calls = [
            call(0, Read(None), 0, Some(1)),
            call(1, Write(3), 2, Some(3)),
            call(2, Read(Some(3)), 4, Some(5)),
            call(3, Write(5), 6, Some(7)),
            call(4, Read(Some(5)), 8, Some(9)),
        ];
        assert_eq!(check(&calls, None, 1000), Linearizability::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_a_violation() {
        let calls = [
            call(0, Write(3), 0, Some(1)),
            call(1, Write(5), 2, Some(3)),
            call(2, Read(Some(3)), 4, Some(5)),
        ];
        match check(&calls, None, 1000) {
            Linearizability::Violation { blocked, state, .. } => {
                assert_eq!(blocked, OpId(2));
                assert_eq!(state, Some(5));
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn overlapping_write_may_be_seen_before_or_after() {
        // The read overlaps the write of 5: either answer is fine, and both reads together
        // (3 then 5) are too.
        let calls = [
            call(0, Write(3), 0, Some(1)),
            call(1, Write(5), 2, Some(10)),
            call(2, Read(Some(3)), 3, Some(4)),
            call(3, Read(Some(5)), 5, Some(6)),
        ];
        assert_eq!(check(&calls, None, 1000), Linearizability::Linearizable);
        // But not 5 then 3: once 5 is seen, the write has happened.
        let calls = [
            call(0, Write(3), 0, Some(1)),
            call(1, Write(5), 2, Some(10)),
            call(2, Read(Some(5)), 3, Some(4)),
            call(3, Read(Some(3)), 5, Some(6)),
        ];
        assert!(matches!(
            check(&calls, None, 1000),
            Linearizability::Violation { .. }
        ));
    }

    #[test]
    fn unknown_write_may_take_effect_late_or_never() {
        let late = [
            call(0, Write(3), 0, None),
            call(1, Read(None), 5, Some(6)),
            call(2, Read(Some(3)), 7, Some(8)),
        ];
        assert_eq!(check(&late, None, 1000), Linearizability::Linearizable);
        let never = [call(0, Write(3), 0, None), call(1, Read(None), 5, Some(6))];
        assert_eq!(check(&never, None, 1000), Linearizability::Linearizable);
    }

    #[test]
    fn unknown_write_cannot_take_effect_before_its_invoke() {
        let calls = [
            call(0, Read(Some(3)), 0, Some(1)),
            call(1, Write(3), 2, None),
        ];
        assert!(matches!(
            check(&calls, None, 1000),
            Linearizability::Violation { .. }
        ));
    }

    #[test]
    fn many_unread_unknown_writes_stay_cheap() {
        // Forty writes of unknown outcome that no read ever returned, interleaved with
        // sequential writes and reads: without pruning, each doubles the search.
        let mut calls = Vec::new();
        for i in 0..40u64 {
            let t = i * 10;
            calls.push(call(3 * i as usize, Write(1000 + i), t, None));
            calls.push(call(3 * i as usize + 1, Write(i), t + 1, Some(t + 2)));
            calls.push(call(3 * i as usize + 2, Read(Some(i)), t + 3, Some(t + 4)));
        }
        assert_eq!(check(&calls, None, 1000), Linearizability::Linearizable);
        // A read of one of them still needs it placed, and still catches a stale read after it.
        calls.push(call(200, Read(Some(1005)), 500, Some(501)));
        calls.push(call(201, Read(Some(39)), 502, Some(503)));
        assert!(matches!(
            check(&calls, None, 100_000),
            Linearizability::Violation { .. }
        ));
    }

    #[test]
    fn unknown_read_is_ignored() {
        let calls = [
            call(0, Write(3), 0, Some(1)),
            call(1, Read(Some(9)), 2, None),
        ];
        assert_eq!(check(&calls, None, 1000), Linearizability::Linearizable);
    }

    #[test]
    fn exploding_search_answers_unknown() {
        // Twenty overlapping writes and a read of a value none of them wrote: every subset of
        // the writes is a distinct configuration to rule out.
        let mut calls: Vec<RegisterCall> = (0..20)
            .map(|i| call(i, Write(i as u64), 0, Some(100)))
            .collect();
        calls.push(call(20, Read(Some(99)), 1, Some(2)));
        assert!(matches!(
            check(&calls, None, 1000),
            Linearizability::Unknown { .. }
        ));
    }

    #[test]
    fn many_sequential_operations_stay_cheap() {
        let calls: Vec<RegisterCall> = (0..2000)
            .map(|i| {
                let t = i as u64 * 10;
                let action = if i % 2 == 0 {
                    Write(i as u64)
                } else {
                    Read(Some(i as u64 - 1))
                };
                call(i, action, t, Some(t + 5))
            })
            .collect();
        assert_eq!(check(&calls, None, 10_000), Linearizability::Linearizable);
    }
}

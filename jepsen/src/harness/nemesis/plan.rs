//! The membership changes of a schedule: one per step, every kind the nemesis has in turn (a
//! round), within the cluster's [`Room`]: never more joins than spare slots, never a removal
//! that leaves fewer than [`Room::min_active`] nodes. The plan counts on every change taking
//! effect; the nemesis checks the live cluster again before it acts.

use super::fault::{Fault, NemesisSpec};
use crate::harness::rng::Rng;

/// How far the membership may change: the schedule plans joins and removals within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Nodes the cluster starts with.
    pub nodes: u64,
    /// Spare slots for nodes that join.
    pub spares: u64,
    /// Never fewer active nodes than this after a removal (the replication factor plus one, so
    /// a kill on top still leaves enough nodes to place every replica).
    pub min_active: u64,
}

/// Plans the membership change of each step: every kind the nemesis has comes up once per
/// round, in a seeded order, within `room`.
pub(super) struct MembershipPlan {
    kinds: Vec<Fault>,
    unused: Vec<Fault>,
    active: u64,
    spares: u64,
    min_active: u64,
}

impl MembershipPlan {
    pub(super) fn new(spec: &NemesisSpec, room: Room) -> Self {
        let kinds: Vec<Fault> = spec
            .faults
            .iter()
            .copied()
            .filter(|f| f.is_membership())
            .collect();
        MembershipPlan {
            unused: kinds.clone(),
            kinds,
            active: room.nodes,
            spares: room.spares,
            min_active: room.min_active,
        }
    }

    fn possible(&self, f: Fault) -> bool {
        match f {
            Fault::AddNode => self.spares > 0,
            f if f.shrinks() => self.active > self.min_active,
            _ => true,
        }
    }

    /// The next membership change, or `None` when the nemesis has none.
    pub(super) fn next(&mut self, rng: &mut Rng) -> Option<Fault> {
        if self.kinds.is_empty() {
            return None;
        }
        let mut preferred: Vec<Fault> = self
            .unused
            .iter()
            .copied()
            .filter(|f| self.possible(*f))
            .collect();
        if preferred.is_empty() {
            self.unused = self.kinds.clone();
            preferred = self
                .unused
                .iter()
                .copied()
                .filter(|f| self.possible(*f))
                .collect();
        }
        // Nothing possible (e.g. only add-node, slots used up): the nemesis falls back to a
        // reassignment when it comes to it.
        let pick = *rng.pick(&preferred).unwrap_or(&self.kinds[0]);
        self.unused.retain(|f| *f != pick);
        match pick {
            Fault::AddNode if self.spares > 0 => {
                self.spares -= 1;
                self.active += 1;
            }
            f if f.shrinks() && self.active > self.min_active => self.active -= 1,
            _ => {}
        }
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fault::{schedule, Class, Step, Timing};
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    const T: Timing = Timing {
        quiet_s: (2, 4),
        hold_s: (5, 10),
    };

    const ROOM: Room = Room {
        nodes: 5,
        spares: 3,
        min_active: 4,
    };

    /// Replays a schedule's membership changes on a count of active nodes and free slots.
    fn replay(steps: &[Step], room: Room) -> (u64, u64) {
        let (mut active, mut spares) = (room.nodes, room.spares);
        for step in steps {
            for f in &step.faults {
                match f {
                    Fault::AddNode => {
                        assert!(spares > 0, "a join without a free slot: {steps:?}");
                        spares -= 1;
                        active += 1;
                    }
                    Fault::Decommission | Fault::RemoveDead => {
                        assert!(active > room.min_active, "shrinks too far: {steps:?}");
                        active -= 1;
                    }
                    _ => {}
                }
            }
        }
        (active, spares)
    }

    #[test]
    fn membership_steps_change_the_cluster_once_each_within_its_room() {
        let spec = NemesisSpec::by_name("membership").unwrap_or_else(|| unreachable!());
        assert!(spec.combined && spec.changes_membership() && !spec.needs_fake_clock());
        let ci = Timing {
            quiet_s: (1, 2),
            hold_s: (4, 6),
        };
        for seed in 0..200 {
            let steps = schedule(
                &spec,
                &mut Rng::new(seed),
                Duration::from_secs(40),
                ci,
                ROOM,
            );
            assert!(steps.len() >= 4, "seed {seed}: {steps:?}");
            for step in &steps {
                let m = step.faults.iter().filter(|f| f.is_membership()).count();
                assert_eq!(m, 1, "seed {seed}: {step:?}");
                let classes: BTreeSet<Class> = step.faults.iter().map(|f| f.class()).collect();
                assert_eq!(classes.len(), step.faults.len(), "{step:?}");
            }
            // The first four steps are one round: every kind once.
            let kinds: BTreeSet<Fault> = steps[..4]
                .iter()
                .flat_map(|s| s.faults.iter().copied())
                .filter(|f| f.is_membership())
                .collect();
            assert_eq!(kinds.len(), 4, "seed {seed}: {steps:?}");
            replay(&steps, ROOM);
        }
        // A long run uses the spare slots and never shrinks below the floor.
        for seed in 0..50 {
            let steps = schedule(
                &spec,
                &mut Rng::new(seed),
                Duration::from_secs(600),
                T,
                ROOM,
            );
            let (active, _) = replay(&steps, ROOM);
            assert!(active >= ROOM.min_active);
        }
        // Three nodes and no room to shrink: joins first, then removals.
        let small = Room {
            nodes: 3,
            spares: 1,
            min_active: 3,
        };
        let steps = schedule(&spec, &mut Rng::new(7), Duration::from_secs(120), T, small);
        replay(&steps, small);
    }
}

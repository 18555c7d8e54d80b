//! What a nemesis may inject, and when: the [`Fault`] kinds, the named nemeses
//! ([`NemesisSpec::by_name`]), and the seeded [`schedule`].
//!
//! The schedule is computed before a cell starts, from the cell's seed alone, so a cell re-run
//! from its seed meets the same faults at the same times.
//!
//! Membership faults ([`Fault::MEMBERSHIP`]) are actions rather than conditions: each step of a
//! nemesis that has them carries exactly one, planned so that every kind comes up in turn and
//! the cluster never shrinks below [`Room::min_active`] nodes nor grows past its spare slots
//! (the nemesis checks the live cluster again before acting, and falls back to a reassignment).

use std::time::Duration;

use super::plan::{MembershipPlan, Room};
use crate::harness::rng::Rng;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// One node isolated from the others.
    PartitionOne,
    /// Minority / majority split.
    PartitionHalves,
    /// Majorities ring.
    PartitionRing,
    /// The partition leaders isolated from the rest.
    PartitionLeaders,
    /// One-way: a node that cannot hear, or cannot be heard.
    PartitionOneWay,
    /// The clients cut from some nodes.
    PartitionClients,
    /// `kill -9` of one node.
    KillOne,
    /// `kill -9` of the partition leaders.
    KillLeaders,
    /// `kill -9` of every node.
    KillAll,
    /// SIGSTOP of one node.
    PauseOne,
    /// SIGSTOP of the partition leaders.
    PauseLeaders,
    /// Random packet loss.
    Loss,
    /// Bandwidth limit.
    Bandwidth,
    /// Forward clock jumps.
    ClockBump,
    /// A clock running fast.
    ClockStrobe,
    /// One partition moved to a random replica set among the active nodes.
    Reassign,
    /// A node started in a spare slot joins the running cluster (`--join`).
    AddNode,
    /// A node drained and removed (`POST /v1/cluster/nodes/{id}/decommission`).
    Decommission,
    /// A node killed (`kill -9`) and removed as dead (`DELETE /v1/cluster/nodes/{id}?dead=true`);
    /// it never comes back under its id.
    RemoveDead,
}

/// Faults of one class never overlap in a combined step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Class {
    Partition,
    Process,
    Network,
    Clock,
    Membership,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 15] = [
        Fault::PartitionOne,
        Fault::PartitionHalves,
        Fault::PartitionRing,
        Fault::PartitionLeaders,
        Fault::PartitionOneWay,
        Fault::PartitionClients,
        Fault::KillOne,
        Fault::KillLeaders,
        Fault::KillAll,
        Fault::PauseOne,
        Fault::PauseLeaders,
        Fault::Loss,
        Fault::Bandwidth,
        Fault::ClockBump,
        Fault::ClockStrobe,
    ];

    /// The membership changes. Not in [`Fault::ALL`], so neither `combined` nor the full
    /// profile's single-fault cells draw them; the `membership` nemesis does.
    pub const MEMBERSHIP: [Fault; 4] = [
        Fault::Reassign,
        Fault::AddNode,
        Fault::Decommission,
        Fault::RemoveDead,
    ];

    /// The fault called `name`, membership changes included.
    pub fn by_name(name: &str) -> Option<Fault> {
        Fault::ALL
            .iter()
            .chain(Fault::MEMBERSHIP.iter())
            .copied()
            .find(|f| f.name() == name)
    }

    /// The fault's name in histories and cell names.
    pub fn name(self) -> &'static str {
        match self {
            Fault::PartitionOne => "partition-one",
            Fault::PartitionHalves => "partition-halves",
            Fault::PartitionRing => "partition-ring",
            Fault::PartitionLeaders => "partition-leaders",
            Fault::PartitionOneWay => "partition-oneway",
            Fault::PartitionClients => "partition-clients",
            Fault::KillOne => "kill-one",
            Fault::KillLeaders => "kill-leaders",
            Fault::KillAll => "kill-all",
            Fault::PauseOne => "pause-one",
            Fault::PauseLeaders => "pause-leaders",
            Fault::Loss => "loss",
            Fault::Bandwidth => "bandwidth",
            Fault::ClockBump => "clock-bump",
            Fault::ClockStrobe => "clock-strobe",
            Fault::Reassign => "reassign",
            Fault::AddNode => "add-node",
            Fault::Decommission => "decommission",
            Fault::RemoveDead => "remove-dead",
        }
    }

    pub(super) fn class(self) -> Class {
        match self {
            Fault::PartitionOne
            | Fault::PartitionHalves
            | Fault::PartitionRing
            | Fault::PartitionLeaders
            | Fault::PartitionOneWay
            | Fault::PartitionClients => Class::Partition,
            Fault::KillOne
            | Fault::KillLeaders
            | Fault::KillAll
            | Fault::PauseOne
            | Fault::PauseLeaders => Class::Process,
            Fault::Loss | Fault::Bandwidth => Class::Network,
            Fault::ClockBump | Fault::ClockStrobe => Class::Clock,
            Fault::Reassign | Fault::AddNode | Fault::Decommission | Fault::RemoveDead => {
                Class::Membership
            }
        }
    }

    /// Whether it changes the cluster's membership or placement.
    pub fn is_membership(self) -> bool {
        self.class() == Class::Membership
    }

    /// Whether it shrinks the cluster by one node.
    pub(super) fn shrinks(self) -> bool {
        matches!(self, Fault::Decommission | Fault::RemoveDead)
    }

    /// Whether the nodes must run under libfaketime for this fault.
    pub fn needs_fake_clock(self) -> bool {
        self.class() == Class::Clock
    }
}

/// The faults a named nemesis draws from, and whether it combines them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NemesisSpec {
    /// Its name.
    pub name: String,
    /// The faults it may inject.
    pub faults: Vec<Fault>,
    /// Whether one step may apply several faults (of different classes) at once.
    pub combined: bool,
}

impl NemesisSpec {
    /// The nemesis called `name`: `none`, a fault's name, a family (`partition`, `kill`,
    /// `pause`, `network`, `clock`), `combined`, or `membership`.
    pub fn by_name(name: &str) -> Option<Self> {
        let of = |pred: &dyn Fn(&Fault) -> bool| -> Vec<Fault> {
            Fault::ALL.iter().copied().filter(|f| pred(f)).collect()
        };
        let (faults, combined) = match name {
            "none" => (Vec::new(), false),
            "partition" => (of(&|f| f.class() == Class::Partition), false),
            "kill" => (
                vec![Fault::KillOne, Fault::KillLeaders, Fault::KillAll],
                false,
            ),
            "pause" => (vec![Fault::PauseOne, Fault::PauseLeaders], false),
            "network" => (of(&|f| f.class() == Class::Network), false),
            // Clock faults alone never make a Raftka request fail (it times everything with the
            // monotonic clock and shrugs off forward jumps), so a clock-only cell is vacuous by
            // the guard. The `clock` family pairs them with crashes and pauses of one node, so
            // nodes restart and rejoin under skewed clocks.
            "clock" => (
                vec![
                    Fault::KillOne,
                    Fault::PauseOne,
                    Fault::ClockBump,
                    Fault::ClockStrobe,
                ],
                true,
            ),
            "combined" => (Fault::ALL.to_vec(), true),
            // Every step changes the membership or placement once, and may add a kill and a
            // partition on top: moves then run while replicas die, restart and lose each other.
            "membership" => {
                let mut faults = Fault::MEMBERSHIP.to_vec();
                faults.extend([
                    Fault::PartitionOne,
                    Fault::PartitionHalves,
                    Fault::PartitionRing,
                    Fault::PartitionLeaders,
                    Fault::KillOne,
                    Fault::KillLeaders,
                ]);
                (faults, true)
            }
            single => (vec![Fault::by_name(single)?], false),
        };
        Some(NemesisSpec {
            name: name.to_owned(),
            faults,
            combined,
        })
    }

    /// Whether any of its faults needs libfaketime.
    pub fn needs_fake_clock(&self) -> bool {
        self.faults.iter().any(|f| f.needs_fake_clock())
    }

    /// Whether any of its faults changes the membership (then the cell has spare slots to
    /// fill and checks that the membership settles after healing).
    pub fn changes_membership(&self) -> bool {
        self.faults.iter().any(|f| f.is_membership())
    }
}

/// How long faults last and how long the cluster rests between them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time before each fault, seconds (inclusive range).
    pub quiet_s: (u64, u64),
    /// How long each fault is held, seconds (inclusive range).
    pub hold_s: (u64, u64),
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When to apply it, from the start of the workload.
    pub at: Duration,
    /// What to apply.
    pub faults: Vec<Fault>,
    /// How long to hold it before healing.
    pub hold: Duration,
    /// Seed of the step's own choices (victims).
    pub seed: u64,
}

/// The schedule of a cell: faults until `duration` (every fault healed before it ends). A
/// nemesis with membership faults applies exactly one per step, planned within `room`.
pub fn schedule(
    spec: &NemesisSpec,
    rng: &mut Rng,
    duration: Duration,
    t: Timing,
    room: Room,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if spec.faults.is_empty() {
        return steps;
    }
    let mut plan = MembershipPlan::new(spec, room);
    let mut at = Duration::ZERO;
    // Bounded: every iteration advances `at` by at least one second.
    loop {
        at += Duration::from_secs(rng.range(t.quiet_s.0, t.quiet_s.1).max(1));
        let hold = Duration::from_secs(rng.range(t.hold_s.0, t.hold_s.1).max(1));
        if at + hold > duration {
            break;
        }
        let mut faults: Vec<Fault> = plan.next(rng).into_iter().collect();
        let want = if spec.combined { rng.range(1, 3) } else { 1 };
        let mut pool: Vec<Fault> = spec
            .faults
            .iter()
            .copied()
            .filter(|f| !f.is_membership())
            .collect();
        rng.shuffle(&mut pool);
        for f in pool {
            if faults.len() as u64 >= want {
                break;
            }
            if faults.iter().all(|g: &Fault| g.class() != f.class()) {
                faults.push(f);
            }
        }
        faults.sort();
        steps.push(Step {
            at,
            faults,
            hold,
            seed: rng.next_u64(),
        });
        at += hold;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const T: Timing = Timing {
        quiet_s: (2, 4),
        hold_s: (5, 10),
    };

    const ROOM: Room = Room {
        nodes: 5,
        spares: 3,
        min_active: 4,
    };

    #[test]
    fn schedule_is_a_function_of_the_seed() {
        let spec = NemesisSpec::by_name("combined").unwrap_or_else(|| unreachable!());
        let a = schedule(&spec, &mut Rng::new(9), Duration::from_secs(120), T, ROOM);
        let b = schedule(&spec, &mut Rng::new(9), Duration::from_secs(120), T, ROOM);
        assert_eq!(a, b);
        assert!(a.len() >= 5, "{a:?}");
        let last = a.last().map(|s| s.at + s.hold).unwrap_or_default();
        assert!(last <= Duration::from_secs(120));
        for step in &a {
            let classes: BTreeSet<Class> = step.faults.iter().map(|f| f.class()).collect();
            assert_eq!(classes.len(), step.faults.len(), "{step:?}");
            assert!(step.faults.iter().all(|f| !f.is_membership()), "{step:?}");
        }
    }

    #[test]
    fn names_resolve() {
        for f in Fault::ALL.into_iter().chain(Fault::MEMBERSHIP) {
            let spec = NemesisSpec::by_name(f.name()).unwrap_or_else(|| unreachable!());
            assert_eq!(spec.faults, vec![f]);
        }
        assert!(NemesisSpec::by_name("nonsense").is_none());
        assert_eq!(
            NemesisSpec::by_name("kill").map(|s| s.faults.len()),
            Some(3)
        );
        assert!(NemesisSpec::by_name("clock").is_some_and(|s| s.needs_fake_clock() && s.combined));
        assert!(NemesisSpec::by_name("none").is_some_and(|s| s.faults.is_empty()));
        assert!(NemesisSpec::by_name("combined").is_some_and(|s| !s.changes_membership()));
        assert!(NemesisSpec::by_name("reassign").is_some_and(|s| s.changes_membership()));
    }
}

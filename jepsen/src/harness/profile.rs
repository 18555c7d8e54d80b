//! The cells of each profile, and the canary cells.
//!
//! | profile | cells | clients run | about |
//! |---|---|---|---|
//! | `ci` | `queue` under partitions, kills and `membership`; `group` and `offsets` under partitions and under `combined` | 35–40 s each | about 5 min |
//! | `full` | `queue`: a fault-free baseline, every single fault but the clock ones, each family, `combined` twice, `membership`; `group` and `offsets`: each family but `network`, `combined` and `membership` | 60–180 s each | over an hour |
//!
//! `clock-bump` and `clock-strobe` alone are not in any profile: they never make a request fail,
//! so the vacuity guard rightly calls such a cell vacuous. They run in the `clock` family
//! (paired with crashes and pauses) and in `combined`, and stay available through `--cell`.
//!
//! A canary cell runs a canary build of the node under the fault that exposes it:
//!
//! | canary | nemesis | why |
//! |---|---|---|
//! | `ack-before-commit` | `partition-leaders` | acknowledged writes of an isolated leader never commit |
//! | `skip-fsync` | `kill-all` | unsynced writes vanish when every replica dies at once |
//! | `read-above-hw` | `partition-leaders` | an isolated leader serves its uncommitted tail |
//! | `reassign-unsafe` | `reassign` | a move switches to new replicas with empty logs and deletes the old ones' data |

use std::path::Path;
use std::time::Duration;

use super::cell::CellSpec;
use super::nemesis::{NemesisSpec, Timing};
use super::workload::{Load, Workload};

/// Every canary the node can be built with (`canary-<name>` cargo features).
pub const CANARIES: [(&str, &str); 4] = [
    ("ack-before-commit", "partition-leaders"),
    ("skip-fsync", "kill-all"),
    ("read-above-hw", "partition-leaders"),
    ("reassign-unsafe", "reassign"),
];

const CI_TIMING: Timing = Timing {
    quiet_s: (2, 4),
    hold_s: (4, 8),
};

/// The ci profile's membership cell: shorter rests, so that its 40 s hold at least four steps
/// (one round of reassign, add-node, decommission and remove-dead).
const MEMBERSHIP_CI_TIMING: Timing = Timing {
    quiet_s: (1, 2),
    hold_s: (4, 6),
};

const FULL_TIMING: Timing = Timing {
    quiet_s: (3, 8),
    hold_s: (5, 15),
};

/// Canary cells: many short faults. `read-above-hw` shows only while an isolated leader's lease
/// lasts (the 2 s election timeout), so its chances grow with the number of isolations.
const CANARY_TIMING: Timing = Timing {
    quiet_s: (1, 3),
    hold_s: (3, 5),
};

const LOAD: Load = Load {
    clients: 8,
    rate: 60,
};

/// Canary cells: more clients and requests, so that more of them meet an isolated leader
/// within its lease.
const CANARY_LOAD: Load = Load {
    clients: 12,
    rate: 100,
};

fn cell(
    bin: &Path,
    workload: Workload,
    nemesis: &str,
    secs: u64,
    timing: Timing,
) -> Option<CellSpec> {
    Some(CellSpec {
        name: format!("{}/{nemesis}", workload.name()),
        workload,
        nemesis: NemesisSpec::by_name(nemesis)?,
        duration: Duration::from_secs(secs),
        timing,
        load: LOAD,
        partitions: 3,
        replication: 3,
        bin: bin.to_path_buf(),
        request_timeout_ms: 5000,
    })
}

/// The cells of profile `name` (`ci` or `full`), running node binary `bin`.
pub fn profile(name: &str, bin: &Path) -> Option<Vec<CellSpec>> {
    use Workload::{Group, Offsets, Queue};
    let mut cells = Vec::new();
    match name {
        "ci" => {
            // A few short cells: the two fault kinds that find most bugs, on the plain log and
            // through consumer groups, one mixed schedule per group workload, and membership
            // changes under kills and partitions.
            for (w, n, secs) in [
                // The lengths that passed run after run before the membership cell came: the
                // group workload polls least (one member owns each partition), and at 35 s a
                // group/combined key fell under the vacuity guard's 10 ok polls.
                (Queue, "partition", 40),
                (Queue, "kill", 40),
                (Group, "partition", 35),
                (Group, "combined", 40),
                (Offsets, "partition", 35),
                (Offsets, "combined", 40),
            ] {
                cells.push(cell(bin, w, n, secs, CI_TIMING)?);
            }
            cells.push(cell(bin, Queue, "membership", 40, MEMBERSHIP_CI_TIMING)?);
        }
        "full" => {
            let secs = 120;
            let mut queue = vec!["none"];
            queue.extend(
                super::nemesis::Fault::ALL
                    .iter()
                    .filter(|f| !f.needs_fake_clock())
                    .map(|f| f.name()),
            );
            queue.extend([
                "partition",
                "kill",
                "pause",
                "network",
                "clock",
                "combined",
                "membership",
            ]);
            for n in queue {
                // Families and the combined modes get longer runs: they mix several faults.
                let secs = match n {
                    "none" => 60,
                    "partition" | "kill" | "pause" | "network" | "clock" => secs + 30,
                    "combined" | "membership" => secs + 60,
                    _ => secs,
                };
                cells.push(cell(bin, Queue, n, secs, FULL_TIMING)?);
            }
            // A second combined cell: the richest schedule deserves two draws.
            let mut again = cell(bin, Queue, "combined", secs + 60, FULL_TIMING)?;
            again.name = "queue/combined-2".into();
            cells.push(again);
            for w in [Group, Offsets] {
                for n in ["partition", "kill", "pause", "combined", "membership"] {
                    cells.push(cell(bin, w, n, secs, FULL_TIMING)?);
                }
            }
        }
        _ => return None,
    }
    Some(cells)
}

/// A cell of `workload/nemesis` outside any profile (for `--cell`), with `profile`'s timing.
pub fn ad_hoc(name: &str, profile: &str, bin: &Path) -> Option<CellSpec> {
    let (workload, nemesis) = name.split_once('/')?;
    let workload = Workload::by_name(workload)?;
    let (secs, timing) = if profile == "full" {
        (120, FULL_TIMING)
    } else {
        (40, CI_TIMING)
    };
    cell(bin, workload, nemesis, secs, timing)
}

/// The canary cell of canary `name`, running the canary build `bin`.
pub fn canary(name: &str, bin: &Path) -> Option<CellSpec> {
    let (_, nemesis) = CANARIES.iter().find(|(c, _)| *c == name)?;
    let mut spec = cell(bin, Workload::Queue, nemesis, 60, CANARY_TIMING)?;
    spec.name = format!("canary-{name}/{nemesis}");
    spec.load = CANARY_LOAD;
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve() {
        let bin = Path::new("/bin/true");
        let ci = profile("ci", bin).unwrap_or_default();
        assert_eq!(ci.len(), 7);
        let total: u64 = ci.iter().map(|c| c.duration.as_secs()).sum();
        assert!(total <= 300, "ci runs clients for {total} s");
        let membership = ci.iter().filter(|c| c.nemesis.changes_membership()).count();
        assert_eq!(membership, 1, "exactly one ci cell changes the membership");
        for w in ["queue", "group", "offsets"] {
            assert!(ci.iter().any(|c| c.name.starts_with(w)), "ci runs {w}");
        }
        let full = profile("full", bin).unwrap_or_default();
        assert!(full.len() > 20);
        let mut names: Vec<_> = full.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), full.len(), "cell names are unique");
        for w in ["queue", "group", "offsets"] {
            assert!(
                names.contains(&format!("{w}/membership")),
                "full runs {w}/membership"
            );
        }
        for (c, _) in CANARIES {
            assert!(canary(c, bin).is_some());
        }
        assert!(profile("nope", bin).is_none());
        assert!(ad_hoc("queue/kill-one", "ci", bin).is_some());
        assert!(ad_hoc("group/kill-one", "ci", bin).is_some());
        assert!(ad_hoc("offsets/pause", "full", bin).is_some());
        assert!(ad_hoc("queue/remove-dead", "ci", bin).is_some());
        assert!(canary("reassign-unsafe", bin).is_some_and(|c| c.nemesis.changes_membership()));
        assert!(ad_hoc("nope/kill-one", "ci", bin).is_none());
    }
}

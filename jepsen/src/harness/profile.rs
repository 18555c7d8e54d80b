//! The cells of each profile, and the canary cells.
//!
//! | profile | cells | clients run | about |
//! |---|---|---|---|
//! | `ci` | one per fault family: partition, kill, pause, network, combined | 45–60 s each | 5 min |
//! | `full` | a fault-free baseline, every single fault but the clock ones, each family, `combined` twice | 60–180 s each | 1 hour |
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

use std::path::Path;
use std::time::Duration;

use super::cell::CellSpec;
use super::nemesis::{NemesisSpec, Timing};
use super::workload::Load;

/// Every canary the node can be built with (`canary-<name>` cargo features).
pub const CANARIES: [(&str, &str); 3] = [
    ("ack-before-commit", "partition-leaders"),
    ("skip-fsync", "kill-all"),
    ("read-above-hw", "partition-leaders"),
];

const CI_TIMING: Timing = Timing {
    quiet_s: (2, 4),
    hold_s: (4, 8),
};

const FULL_TIMING: Timing = Timing {
    quiet_s: (3, 8),
    hold_s: (5, 15),
};

const LOAD: Load = Load {
    clients: 8,
    rate: 60,
};

fn cell(bin: &Path, workload: &str, nemesis: &str, secs: u64, timing: Timing) -> Option<CellSpec> {
    Some(CellSpec {
        name: format!("{workload}/{nemesis}"),
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
    let (nemeses, secs, timing): (Vec<&str>, u64, Timing) = match name {
        "ci" => (
            vec!["partition", "kill", "pause", "network", "combined"],
            45,
            CI_TIMING,
        ),
        "full" => {
            let mut v = vec!["none"];
            v.extend(
                super::nemesis::Fault::ALL
                    .iter()
                    .filter(|f| !f.needs_fake_clock())
                    .map(|f| f.name()),
            );
            v.extend(["partition", "kill", "pause", "network", "clock", "combined"]);
            (v, 120, FULL_TIMING)
        }
        _ => return None,
    };
    let mut cells = Vec::new();
    for n in nemeses {
        // In the full profile, families and the combined mode get longer runs: they mix
        // several faults.
        let secs = match (name, n) {
            ("full", "none") => 60,
            ("full", "partition" | "kill" | "pause" | "network" | "clock") => secs + 30,
            ("full", "combined") => secs + 60,
            (_, "combined") => secs + 15,
            _ => secs,
        };
        cells.push(cell(bin, "queue", n, secs, timing)?);
    }
    if name == "full" {
        // A second combined cell: the richest schedule deserves two draws.
        let mut again = cell(bin, "queue", "combined", secs + 60, timing)?;
        again.name = "queue/combined-2".into();
        cells.push(again);
    }
    Some(cells)
}

/// A cell of `workload/nemesis` outside any profile (for `--cell`), with `profile`'s timing.
pub fn ad_hoc(name: &str, profile: &str, bin: &Path) -> Option<CellSpec> {
    let (workload, nemesis) = name.split_once('/')?;
    if workload != "queue" {
        return None;
    }
    let (secs, timing) = if profile == "full" {
        (120, FULL_TIMING)
    } else {
        (45, CI_TIMING)
    };
    cell(bin, workload, nemesis, secs, timing)
}

/// The canary cell of canary `name`, running the canary build `bin`.
pub fn canary(name: &str, bin: &Path) -> Option<CellSpec> {
    let (_, nemesis) = CANARIES.iter().find(|(c, _)| *c == name)?;
    let mut spec = cell(bin, &format!("canary-{name}"), nemesis, 40, CI_TIMING)?;
    spec.name = format!("canary-{name}/{nemesis}");
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve() {
        let bin = Path::new("/bin/true");
        let ci = profile("ci", bin).unwrap_or_default();
        assert_eq!(ci.len(), 5);
        let total: u64 = ci.iter().map(|c| c.duration.as_secs()).sum();
        assert!(total <= 260, "ci runs clients for {total} s");
        let full = profile("full", bin).unwrap_or_default();
        assert!(full.len() > 20);
        let mut names: Vec<_> = full.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), full.len(), "cell names are unique");
        for (c, _) in CANARIES {
            assert!(canary(c, bin).is_some());
        }
        assert!(profile("nope", bin).is_none());
        assert!(ad_hoc("queue/kill-one", "ci", bin).is_some());
        assert!(ad_hoc("group/kill-one", "ci", bin).is_none());
    }
}

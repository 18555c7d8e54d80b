//! The workloads: concurrent clients running until a deadline, then the final phase that reads
//! every key from offset 0.
//!
//! | workload | clients | checked by |
//! |---|---|---|
//! | `queue` | send, poll assigned partitions, re-assign, crash ([`QueueClient`]) | every log check |
//! | `group` | send; consume through a consumer group: join, heartbeat, resume at the committed offset, commit, hand over, leave, crash ([`GroupClient`]) | every log check, and committed offsets as registers |
//! | `offsets` | send, poll, contended commits of random offsets, reads of committed offsets ([`GroupClient`]) | every log check, and committed offsets as registers |

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::client::{QueueClient, Shared};
use super::group::{GroupClient, Mode};
use super::rng::Rng;
use crate::history::ProcessId;

/// Process ids of the final phase start here (clients use small ids).
pub const FINAL_PROCESS: ProcessId = 2_000_000_000;

/// How the clients of a cell behave.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent client processes.
    pub clients: u64,
    /// Target operations per second, across all clients.
    pub rate: u64,
}

/// What the clients of a cell do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Sends and polls of assigned partitions.
    Queue,
    /// Sends, and consumption through a consumer group.
    Group,
    /// Sends, polls, and contended commits and reads of committed offsets.
    Offsets,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 3] = [Workload::Queue, Workload::Group, Workload::Offsets];

    /// The name used in cell names (`<workload>/<nemesis>`).
    pub fn name(self) -> &'static str {
        match self {
            Workload::Queue => "queue",
            Workload::Group => "group",
            Workload::Offsets => "offsets",
        }
    }

    /// The workload called `name`.
    pub fn by_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// One client of any workload.
enum AnyClient<'s, 'a> {
    Queue(QueueClient<'s, 'a>),
    Group(Box<GroupClient<'s, 'a>>),
}

impl AnyClient<'_, '_> {
    fn step(&mut self, rng: &mut Rng) {
        match self {
            AnyClient::Queue(c) => c.step(rng),
            AnyClient::Group(c) => c.step(rng),
        }
    }
}

/// Runs `workload` with `load` against the cluster until `deadline`; each client draws from
/// its own stream of `seed`.
pub fn run(shared: &Shared<'_>, workload: Workload, load: Load, seed: u64, deadline: Instant) {
    let mean_gap_ms = (1000 * load.clients / load.rate.max(1)).max(1);
    std::thread::scope(|scope| {
        for i in 0..load.clients {
            scope.spawn(move || {
                let mut rng = Rng::derive(seed, &format!("client-{i}"));
                let mut client = match workload {
                    Workload::Queue => AnyClient::Queue(QueueClient::new(shared, i, load.clients)),
                    Workload::Group => AnyClient::Group(Box::new(GroupClient::new(
                        shared,
                        i,
                        load.clients,
                        Mode::Group,
                    ))),
                    Workload::Offsets => AnyClient::Group(Box::new(GroupClient::new(
                        shared,
                        i,
                        load.clients,
                        Mode::Offsets,
                    ))),
                };
                // Bounded by the deadline; every step is bounded by its timeouts.
                while Instant::now() < deadline {
                    client.step(&mut rng);
                    let gap = Duration::from_millis(rng.below(2 * mean_gap_ms));
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(gap.min(left));
                }
            });
        }
    });
}

/// What the final phase managed.
#[derive(Debug, Clone, Default)]
pub struct FinalOutcome {
    /// Per partition: where the final read ended and the target it had to reach.
    pub reached: BTreeMap<u32, (u64, u64)>,
    /// Whether every partition reached its target.
    pub complete: bool,
}

/// After healing: reads every partition from offset 0 until the reads reach the highest offset
/// (and the highest high watermark) ever seen, or `timeout` passes.
pub fn final_reads(shared: &Shared<'_>, nodes: usize, timeout: Duration) -> FinalOutcome {
    let deadline = Instant::now() + timeout;
    let mut out = FinalOutcome {
        complete: true,
        ..FinalOutcome::default()
    };
    let mut node = 0usize;
    for p in 0..shared.partitions {
        // Each partition gets its own process, so a retired one (after an `info`) can start over.
        let mut client = QueueClient::new(shared, FINAL_PROCESS + u64::from(p) * 1000, 1);
        client.assign(&[p], true);
        let mut reached = 0;
        let mut target = 0;
        // Bounded by the deadline; each poll is bounded by its timeouts.
        loop {
            let seen = shared
                .max_offset
                .lock()
                .ok()
                .and_then(|m| m.get(&p).copied())
                .map_or(0, |o| o + 1);
            target = target.max(seen);
            if !client.has_assignment() {
                client.assign(&[p], true);
            }
            client.poll_with(node % nodes, true);
            node += 1;
            let before = reached;
            reached = client.position(p).unwrap_or(reached);
            if let Some(hw) = client.last_high_watermark(p) {
                target = target.max(hw);
            }
            if reached >= target && client.last_high_watermark(p).is_some() {
                break;
            }
            if Instant::now() >= deadline {
                out.complete = false;
                break;
            }
            if client.last_poll_failed() {
                std::thread::sleep(Duration::from_millis(250));
            } else if reached == before {
                // No progress (the target lies beyond what the cluster holds): do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        out.reached.insert(p, (reached, target));
    }
    out
}

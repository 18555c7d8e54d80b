//! The nemesis: faults on a seeded schedule, each applied, held, then healed.
//!
//! A cell's nemesis is a set of [`Fault`]s. [`schedule`] turns it and the cell's seed into a
//! list of [`Step`]s (when, which faults, for how long) before the cell starts, so a cell re-run
//! from its seed meets the same faults at the same times. Victims that depend on the cluster's
//! state (the current leaders) are looked up when the step starts, using the step's own seed for
//! every other choice.
//!
//! | fault | what it does | heal |
//! |---|---|---|
//! | `partition-one` | one node cut from every other node | drop rules removed |
//! | `partition-halves` | a random minority / majority split | 〃 |
//! | `partition-ring` | majorities ring: every node sees its ring neighbours, a majority, and no two see the same majority | 〃 |
//! | `partition-leaders` | the current partition leaders cut from the other nodes | 〃 |
//! | `partition-oneway` | one node (a leader half of the time) hears nobody, or nobody hears it | 〃 |
//! | `partition-clients` | the client namespace cut from some nodes (both directions) | 〃 |
//! | `kill-one`, `kill-leaders`, `kill-all` | `kill -9` | restart |
//! | `pause-one`, `pause-leaders` | SIGSTOP | SIGCONT |
//! | `loss` | 10–40 % of packets into every node dropped (nft `numgen`) | rule removed |
//! | `bandwidth` | every node's egress limited to 128–1024 kbit/s (`tc tbf`) | qdisc removed |
//! | `clock-bump` | the clocks of one node up to a majority jump forward 1–288 s (libfaketime) | none: clocks keep their offset |
//! | `clock-strobe` | a majority's clocks jump forward by 1 s about three times a second (a clock running fast) | 〃 |
//! | `reassign` | one partition moved to a random replica set of active nodes (`POST /v1/cluster/reassignments`) | none: the move runs on |
//! | `add-node` | a node started in a spare slot with `--join` | the leaders rebalanced onto it once it is active (`POST /v1/cluster/rebalance`) |
//! | `decommission` | a node drained (`POST /v1/cluster/nodes/{id}/decommission`) | stopped once the cluster reports it `removed` |
//! | `remove-dead` | a node killed and removed as dead (`DELETE /v1/cluster/nodes/{id}?dead=true`) | never restarted |
//!
//! Clock faults move `CLOCK_REALTIME` and `CLOCK_MONOTONIC` together, because libfaketime fakes
//! both; a backwards jump of a monotonic clock breaks the bounded-drift assumption every leader
//! lease rests on (and cannot happen on real hardware), so clock faults only ever go forward.
//!
//! In a combined nemesis a step applies one to three faults of different classes at once. The
//! `clock` family is combined too: clock faults paired with a `kill -9` or a pause of one node,
//! because clock faults alone cause no error in Raftka at all (see [`NemesisSpec::by_name`]).
//! So is `membership`: every step makes one membership change ([`membership`]), applied first,
//! with up to two kills or partitions on top; victims are always drawn from the current members.

mod cluster_view;
mod control;
mod fault;
mod membership;
mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::json;

pub use cluster_view::{parse_cluster, plan_replicas, ClusterView, NodeView, PartitionView};
use fault::Class;
pub use fault::{schedule, Fault, NemesisSpec, Step, Timing};
pub use plan::Room;

use super::cluster::Cluster;
use super::firewall::{self, Bandwidth, NsRules};
use super::http::{self, Timeouts};
use super::node_list::NodeList;
use super::recorder::Recorder;
use super::rng::Rng;
use super::topology::Topology;

/// The nemesis of one cell: applies and heals faults on `cluster`.
pub struct Nemesis<'c> {
    cluster: &'c mut Cluster,
    recorder: &'c Recorder,
    topic: String,
    /// Drop rules per namespace: namespace -> sources it drops.
    grudges: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    loss: u8,
    killed: BTreeSet<u64>,
    paused: BTreeSet<u64>,
    throttled: bool,
    clock_offsets: BTreeMap<u64, u64>,
    /// The addresses clients use; membership changes update them.
    nodes: &'c NodeList,
    membership: membership::State,
    /// Errors while applying or healing faults (infrastructure trouble, reported with the cell),
    /// and membership that did not settle after healing.
    pub errors: Vec<String>,
}

impl<'c> Nemesis<'c> {
    /// A nemesis for `cluster`, recording to `recorder`; membership changes keep `nodes` (the
    /// clients' addresses) current and place `replication` replicas per partition.
    pub fn new(
        cluster: &'c mut Cluster,
        recorder: &'c Recorder,
        topic: &str,
        nodes: &'c NodeList,
        replication: usize,
    ) -> Self {
        Nemesis {
            cluster,
            recorder,
            topic: topic.to_owned(),
            grudges: BTreeMap::new(),
            loss: 0,
            killed: BTreeSet::new(),
            paused: BTreeSet::new(),
            throttled: false,
            clock_offsets: BTreeMap::new(),
            nodes,
            membership: membership::State::new(replication),
            errors: Vec::new(),
        }
    }

    fn topo(&self) -> Topology {
        self.cluster.topology()
    }

    /// Runs `steps` against the wall clock from `start`, then heals everything.
    pub fn run(&mut self, steps: &[Step], start: Instant) {
        let changes_membership = steps
            .iter()
            .any(|s| s.faults.iter().any(|f| f.is_membership()));
        for step in steps {
            sleep_until(start + step.at);
            let mut rng = Rng::new(step.seed);
            let mut applied = Vec::new();
            // The membership change first: kills and partitions then hit the move it started.
            let mut order = step.faults.clone();
            order.sort_by_key(|f| !f.is_membership());
            for f in &order {
                let detail = self.apply(*f, &mut rng);
                self.recorder.nemesis(
                    json!({"fault": f.name(), "phase": "start", "detail": detail.clone()}),
                );
                applied.push((*f, detail));
            }
            let until = Instant::now() + step.hold;
            if step.faults.contains(&Fault::ClockStrobe) {
                self.strobe(until, &mut rng);
            }
            sleep_until(until);
            for (f, _) in applied.iter().rev() {
                self.heal(*f);
                self.recorder
                    .nemesis(json!({"fault": f.name(), "phase": "stop"}));
            }
        }
        // A fault-free cell records no nemesis event at all (the vacuity guard counts them).
        self.heal_all(!steps.is_empty());
        if changes_membership {
            self.settle_membership();
        }
    }

    /// The members now, shuffled.
    fn shuffled_members(&self, rng: &mut Rng) -> Vec<u64> {
        let mut ids = self.cluster.members();
        rng.shuffle(&mut ids);
        ids
    }

    /// The partition leaders, asked of the first node that answers; a random node if none does.
    fn leaders(&mut self, rng: &mut Rng) -> BTreeSet<u64> {
        let t = self.topo();
        let timeouts = Timeouts {
            connect: Duration::from_millis(500),
            total: Duration::from_secs(2),
        };
        let ids = self.shuffled_members(rng);
        for id in ids {
            let path = format!("/v1/topics/{}", self.topic);
            if let Ok(r) = http::request(t.node_addr(id), "GET", &path, None, timeouts) {
                if r.status != 200 {
                    continue;
                }
                let leaders: BTreeSet<u64> = r.json()["partitions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["leader"].as_u64())
                    .collect();
                if !leaders.is_empty() {
                    return leaders;
                }
            }
        }
        let all = self.cluster.members();
        BTreeSet::from([*rng.pick(&all).unwrap_or(&1)])
    }

    /// `a` drops everything `b` sends.
    fn grudge(&mut self, a_ns: String, b: Ipv4Addr) {
        self.grudges.entry(a_ns).or_default().insert(b);
    }

    /// Cuts the nodes of each component from the nodes of every other component.
    fn partition(&mut self, components: &[Vec<u64>]) {
        let t = self.topo();
        for (i, comp) in components.iter().enumerate() {
            for (j, other) in components.iter().enumerate() {
                if i == j {
                    continue;
                }
                for a in comp {
                    for b in other {
                        self.grudge(t.node_ns(*a), t.node_ip(*b));
                    }
                }
            }
        }
    }

    fn sync_firewall(&mut self) {
        let t = self.topo();
        let mut namespaces: Vec<String> = t.slots().iter().map(|id| t.node_ns(*id)).collect();
        namespaces.push(t.client_ns());
        for ns in namespaces {
            let rules = NsRules {
                drop_from: self.grudges.get(&ns).cloned().unwrap_or_default(),
                loss_percent: if ns == t.client_ns() { 0 } else { self.loss },
            };
            if let Err(e) = firewall::apply(&ns, &rules) {
                self.errors.push(e);
            }
        }
    }

    fn apply(&mut self, fault: Fault, rng: &mut Rng) -> serde_json::Value {
        let t = self.topo();
        let ids = self.shuffled_members(rng);
        // Smallest majority of the members now.
        let majority = ids.len() / 2 + 1;
        match fault {
            Fault::Reassign | Fault::AddNode | Fault::Decommission | Fault::RemoveDead => {
                self.apply_membership(fault, rng)
            }
            Fault::PartitionOne => {
                let victim = ids[0];
                let rest: Vec<u64> = ids[1..].to_vec();
                self.partition(&[vec![victim], rest.clone()]);
                self.sync_firewall();
                json!({"components": [[victim], rest]})
            }
            Fault::PartitionHalves => {
                let minority = ids[..ids.len() / 2].to_vec();
                let majority = ids[ids.len() / 2..].to_vec();
                self.partition(&[minority.clone(), majority.clone()]);
                self.sync_firewall();
                json!({"components": [minority, majority]})
            }
            Fault::PartitionRing => {
                // Node at ring position i hears positions within distance d, where 2d+1 is a
                // majority; everyone else is dropped.
                let n = ids.len();
                let d = majority / 2;
                let mut sees = BTreeMap::new();
                for (i, a) in ids.iter().enumerate() {
                    let mut visible = Vec::new();
                    for (j, b) in ids.iter().enumerate() {
                        let dist = (i + n - j) % n;
                        let dist = dist.min(n - dist);
                        if dist <= d {
                            visible.push(*b);
                        } else {
                            self.grudge(t.node_ns(*a), t.node_ip(*b));
                        }
                    }
                    sees.insert(a.to_string(), visible);
                }
                self.sync_firewall();
                json!({"ring": ids, "sees": sees})
            }
            Fault::PartitionLeaders => {
                let leaders: Vec<u64> = self.leaders(rng).into_iter().collect();
                let rest: Vec<u64> = ids.into_iter().filter(|i| !leaders.contains(i)).collect();
                self.partition(&[leaders.clone(), rest.clone()]);
                self.sync_firewall();
                json!({"components": [leaders, rest]})
            }
            Fault::PartitionOneWay => {
                let node = if rng.chance(50) {
                    let leaders: Vec<u64> = self.leaders(rng).into_iter().collect();
                    *rng.pick(&leaders).unwrap_or(&ids[0])
                } else {
                    ids[0]
                };
                let deaf = rng.chance(50);
                for other in ids.iter().copied().filter(|o| *o != node) {
                    if deaf {
                        self.grudge(t.node_ns(node), t.node_ip(other));
                    } else {
                        self.grudge(t.node_ns(other), t.node_ip(node));
                    }
                }
                self.sync_firewall();
                json!({"node": node, "direction": if deaf { "hears nobody" } else { "nobody hears it" }})
            }
            Fault::PartitionClients => {
                let count = rng.range(1, ids.len() as u64 - 1) as usize;
                let cut: Vec<u64> = ids[..count].to_vec();
                for id in &cut {
                    self.grudge(t.node_ns(*id), t.client_ip());
                    self.grudge(t.client_ns(), t.node_ip(*id));
                }
                self.sync_firewall();
                json!({"cut_from_clients": cut})
            }
            Fault::KillOne | Fault::KillLeaders | Fault::KillAll => {
                let victims: Vec<u64> = match fault {
                    Fault::KillOne => vec![ids[0]],
                    Fault::KillLeaders => self.leaders(rng).into_iter().collect(),
                    _ => self.cluster.members(),
                };
                for id in &victims {
                    self.cluster.kill(*id);
                    self.killed.insert(*id);
                    self.paused.remove(id);
                }
                json!({"killed": victims})
            }
            Fault::PauseOne | Fault::PauseLeaders => {
                let victims: Vec<u64> = match fault {
                    Fault::PauseOne => vec![ids[0]],
                    _ => self.leaders(rng).into_iter().collect(),
                };
                let mut done = Vec::new();
                for id in victims {
                    if self.cluster.is_running(id) && self.cluster.pause(id).is_ok() {
                        self.paused.insert(id);
                        done.push(id);
                    }
                }
                json!({"paused": done})
            }
            Fault::Loss => {
                self.loss = rng.range(10, 40) as u8;
                self.sync_firewall();
                json!({"loss_percent": self.loss})
            }
            Fault::Bandwidth => {
                let rate_kbit = rng.range(128, 1024) as u32;
                for id in self.cluster.members() {
                    if let Err(e) =
                        firewall::set_bandwidth(&t.node_ns(id), Some(Bandwidth { rate_kbit }))
                    {
                        self.errors.push(e);
                    }
                }
                self.throttled = true;
                json!({"rate_kbit": rate_kbit})
            }
            Fault::ClockBump => {
                let count = rng.range(1, majority as u64) as usize;
                let mut bumps = BTreeMap::new();
                for id in ids.into_iter().take(count) {
                    let by = rng.range(1, 288);
                    self.bump_clock(id, by);
                    bumps.insert(id.to_string(), by);
                }
                json!({"forward_s": bumps})
            }
            Fault::ClockStrobe => {
                let victims: Vec<u64> = ids.into_iter().take(majority).collect();
                json!({"strobing": victims})
            }
        }
    }

    fn bump_clock(&mut self, id: u64, by_s: u64) {
        if !self.cluster.has_fake_clocks() {
            self.errors
                .push("clock fault in a cluster started without libfaketime".into());
            return;
        }
        let total = {
            let e = self.clock_offsets.entry(id).or_insert(0);
            *e += by_s;
            *e
        };
        let path = self.cluster.clock_file(id);
        if let Err(e) = std::fs::write(&path, format!("+{total}\n")) {
            self.errors.push(format!("{}: {e}", path.display()));
        }
    }

    /// Jumps the clocks of a majority forward by a second about three times a second until
    /// `until` (libfaketime re-reads the offset file once a second).
    fn strobe(&mut self, until: Instant, rng: &mut Rng) {
        let mut ids = self.shuffled_members(rng);
        ids.truncate(ids.len() / 2 + 1);
        // Bounded by `until`: each round sleeps 300 ms.
        while Instant::now() + Duration::from_millis(300) < until {
            for id in &ids {
                self.bump_clock(*id, 1);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn heal(&mut self, fault: Fault) {
        match fault.class() {
            Class::Partition => {
                self.grudges.clear();
                self.sync_firewall();
            }
            Class::Process => {
                for id in std::mem::take(&mut self.paused) {
                    self.cluster.resume(id);
                }
                for id in std::mem::take(&mut self.killed) {
                    // A node that left the cluster meanwhile stays down.
                    if !self.cluster.is_member(id) {
                        continue;
                    }
                    if let Err(e) = self.cluster.start(id) {
                        self.errors.push(e);
                    }
                }
            }
            Class::Network => {
                if fault == Fault::Loss {
                    self.loss = 0;
                    self.sync_firewall();
                } else {
                    let t = self.topo();
                    for id in t.slots() {
                        if let Err(e) = firewall::set_bandwidth(&t.node_ns(id), None) {
                            self.errors.push(e);
                        }
                    }
                    self.throttled = false;
                }
            }
            // Clocks keep their offsets: going back would break monotonic time.
            Class::Clock => {}
            Class::Membership => self.heal_membership(fault),
        }
    }

    /// Removes every fault, whatever is active: rules, limits, pauses, dead members (nodes that
    /// left the cluster stay down); records a nemesis event if `record`.
    pub fn heal_all(&mut self, record: bool) {
        self.grudges.clear();
        self.loss = 0;
        self.sync_firewall();
        let t = self.topo();
        for id in t.slots() {
            if let Err(e) = firewall::set_bandwidth(&t.node_ns(id), None) {
                self.errors.push(e);
            }
            self.cluster.resume(id);
        }
        self.throttled = false;
        self.paused.clear();
        self.killed.clear();
        for id in self.cluster.members() {
            if !self.cluster.is_running(id) {
                if let Err(e) = self.cluster.start(id) {
                    self.errors.push(e);
                }
            }
        }
        if record {
            self.recorder
                .nemesis(json!({"fault": "all", "phase": "heal"}));
        }
    }
}

/// Sleeps until `when` (returns at once if it has passed).
pub fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

//! Membership changes while the clients run: partition moves, joins, drains and dead-node
//! removals, through the cluster API (`docs/api.md`), and the checks that the membership
//! settles once everything is healed.
//!
//! | fault | action | heal |
//! |---|---|---|
//! | `reassign` | `POST /v1/cluster/reassignments` with a random replica set of the replication factor's size among the active nodes, most of the time as far from the current one as the cluster allows | nothing: the move runs on |
//! | `add-node` | a spare slot's node started with `--join <members>` | once it is active: `POST /v1/cluster/rebalance {"max_moves": 2}` |
//! | `decommission` | `POST /v1/cluster/nodes/{id}/decommission` | the node is stopped and retired once the cluster reports it `removed` |
//! | `remove-dead` | `kill -9`, then `DELETE /v1/cluster/nodes/{id}?dead=true` until the cluster no longer sees it alive | never restarted: its id is retired at once |
//!
//! Invariants the nemesis keeps, so that the cluster can always recover:
//! - never fewer than `replication + 1` active members after a removal (the schedule plans
//!   within that, and each action checks the live cluster again, falling back to a
//!   reassignment);
//! - a node is removed as dead only when no move is in flight, so no partition ever loses two
//!   replicas for good before the first is rebuilt;
//! - a node that left (or may have left) is never started again under its id.
//!
//! After the final heal, [`Nemesis::settle_membership`] waits until no move is in flight, every
//! drained node is `removed`, every dead removal is confirmed, every joined node is `active` and
//! the metadata group has its 3 voters again, all of them members (automatic repair), then
//! checks the placement: each partition has exactly `replication` distinct replicas, none on a
//! node that left. Whatever does not settle is reported as a problem of the cell, and so is a
//! cell in which no membership change took effect at all (vacuous).
//!
//! Requests go through [`super::control`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::cluster_view::{plan_replicas, ClusterView, PartitionView};
use super::control::{Answer, Applied};
use super::{Fault, Nemesis};
use crate::harness::rng::Rng;

/// How long a dead-node removal is retried while the cluster still sees the node alive (its
/// health probe remembers an answer for 3 s).
const REMOVE_DEAD_WINDOW: Duration = Duration::from_secs(15);
/// How long a dead-node removal waits for moves in flight to finish before it gives up.
const QUIET_MOVES_WINDOW: Duration = Duration::from_secs(10);
/// How long the heal of a join waits for the node to become active before rebalancing.
const JOIN_WINDOW: Duration = Duration::from_secs(15);
/// After the final heal: how long moves, drains and removals may take to finish.
const SETTLE_WINDOW: Duration = Duration::from_secs(90);
/// Voters of the metadata group (the node's `--metadata-voters` default, which cells keep).
const METADATA_VOTERS: usize = 3;

/// What the membership nemesis keeps track of between steps.
#[derive(Debug)]
pub(super) struct State {
    replication: usize,
    /// Decommissions that were (or may have been) accepted: they run until `removed`.
    draining: BTreeSet<u64>,
    /// Nodes killed for a dead removal the cluster has not confirmed yet (already retired).
    pending_dead: BTreeSet<u64>,
    /// Joined nodes not yet seen active and rebalanced onto.
    joining: BTreeSet<u64>,
    /// The server did not understand a membership request (see [`super::control`]): the cell
    /// fails, and settling stops at once instead of waiting for what cannot happen.
    pub(super) misunderstood: bool,
    /// Changes that took effect, by kind (accepted requests; joins once the node is active).
    taken: BTreeMap<&'static str, u64>,
}

impl State {
    pub(super) fn new(replication: usize) -> Self {
        State {
            replication,
            draining: BTreeSet::new(),
            pending_dead: BTreeSet::new(),
            joining: BTreeSet::new(),
            misunderstood: false,
            taken: BTreeMap::new(),
        }
    }
}

impl Nemesis<'_> {
    /// The fewest active members the cluster may keep after a removal.
    fn min_active(&self) -> usize {
        self.membership.replication + 1
    }

    /// Members that are neither draining nor being removed.
    fn active_members(&self) -> Vec<u64> {
        self.cluster
            .members()
            .into_iter()
            .filter(|id| {
                !self.membership.draining.contains(id) && !self.membership.pending_dead.contains(id)
            })
            .collect()
    }

    fn count_taken(&mut self, a: &Answer, kind: &'static str) {
        if a.accepted() {
            *self.membership.taken.entry(kind).or_default() += 1;
        }
    }

    /// Node `id` left the cluster (or may have): no client sends to it, it is never started
    /// again, and no one waits for it to become active.
    fn retire(&mut self, id: u64) {
        self.cluster.retire(id);
        self.nodes.remove(id);
        self.membership.joining.remove(&id);
    }

    /// Applies membership fault `fault` (see the module table); returns the detail recorded.
    pub(super) fn apply_membership(&mut self, fault: Fault, rng: &mut Rng) -> Json {
        let view = self.cluster_view(rng);
        let can_shrink = self.active_members().len() > self.min_active();
        let possible = match fault {
            Fault::AddNode => !self.cluster.free_slots().is_empty(),
            Fault::Decommission | Fault::RemoveDead => can_shrink,
            _ => true,
        };
        if !possible {
            let mut d = self.reassign(view.as_ref(), rng);
            d["instead_of"] = json!(fault.name());
            return d;
        }
        match fault {
            Fault::AddNode => self.add_node(view.as_ref(), rng),
            Fault::Decommission => self.decommission(view.as_ref(), rng),
            Fault::RemoveDead => self.remove_dead(view.as_ref(), rng),
            _ => self.reassign(view.as_ref(), rng),
        }
    }

    /// A victim for a removal: an active member the cluster also sees active, if any.
    fn shrink_victim(&self, view: Option<&ClusterView>, rng: &mut Rng) -> Option<u64> {
        let mine = self.active_members();
        let both: Vec<u64> = view
            .map(|v| v.active())
            .unwrap_or_default()
            .into_iter()
            .filter(|id| mine.contains(id))
            .collect();
        rng.pick(if both.is_empty() { &mine } else { &both })
            .copied()
    }

    fn reassign(&mut self, view: Option<&ClusterView>, rng: &mut Rng) -> Json {
        let Some(view) = view else {
            return json!({"op": "reassign", "skipped": "no member answered GET /v1/cluster"});
        };
        let parts: Vec<&PartitionView> = view
            .partitions
            .iter()
            .filter(|p| p.topic == self.topic)
            .collect();
        let Some(p) = rng.pick(&parts).map(|p| (*p).clone()) else {
            return json!({"op": "reassign", "skipped": "no partition in GET /v1/cluster"});
        };
        let mine = self.active_members();
        let active: Vec<u64> = view
            .active()
            .into_iter()
            .filter(|id| mine.contains(id))
            .collect();
        if active.len() < self.membership.replication {
            return json!({"op": "reassign", "skipped": "too few active nodes", "active": active});
        }
        let to = plan_replicas(rng, &p.replicas, &active, self.membership.replication);
        let body = json!({"topic": p.topic, "partition": p.partition, "replicas": to});
        let a = self.control(
            "POST",
            "/v1/cluster/reassignments",
            Some(body),
            Some(view),
            rng,
        );
        self.count_taken(&a, "reassign");
        json!({"op": "reassign", "partition": p.partition, "from": p.replicas, "to": to,
               "answer": a.to_json()})
    }

    fn add_node(&mut self, view: Option<&ClusterView>, rng: &mut Rng) -> Json {
        let t = self.topo();
        let Some(slot) = self.cluster.free_slots().first().copied() else {
            return self.reassign(view, rng);
        };
        let seeds: Vec<_> = self
            .control_nodes(view, rng)
            .into_iter()
            .map(|id| t.node_addr(id))
            .collect();
        if let Err(e) = self.cluster.join(slot, &seeds) {
            self.errors.push(e);
            return json!({"op": "add-node", "node": slot, "error": "could not start"});
        }
        self.nodes.add(slot, t.node_addr(slot));
        self.membership.joining.insert(slot);
        json!({"op": "add-node", "node": slot,
               "join": seeds.iter().map(ToString::to_string).collect::<Vec<_>>()})
    }

    fn decommission(&mut self, view: Option<&ClusterView>, rng: &mut Rng) -> Json {
        let Some(victim) = self.shrink_victim(view, rng) else {
            return self.reassign(view, rng);
        };
        let path = format!("/v1/cluster/nodes/{victim}/decommission");
        let a = self.control("POST", &path, None, view, rng);
        if a.applied != Applied::No {
            // Accepted, or perhaps: it runs until the cluster reports it removed (or, if the
            // request never took effect, active again after settling).
            self.membership.draining.insert(victim);
            self.cluster.allow_exit(victim);
        }
        self.count_taken(&a, "decommission");
        json!({"op": "decommission", "node": victim, "answer": a.to_json()})
    }

    fn remove_dead(&mut self, view: Option<&ClusterView>, rng: &mut Rng) -> Json {
        // Only with no move in flight: a partition must not lose a second replica for good
        // before the first one is rebuilt.
        let deadline = Instant::now() + QUIET_MOVES_WINDOW;
        let mut moving = self.moves_in_flight(rng);
        // Bounded by the deadline.
        while moving != Some(0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            moving = self.moves_in_flight(rng);
        }
        if moving != Some(0) {
            return json!({"op": "remove-dead", "skipped": "moves in flight", "moves": moving});
        }
        let Some(victim) = self.shrink_victim(view, rng) else {
            return self.reassign(view, rng);
        };
        self.cluster.kill(victim);
        // From here on the node may be removed at any moment: never start it again.
        self.retire(victim);
        self.killed.remove(&victim);
        self.paused.remove(&victim);
        self.membership.pending_dead.insert(victim);
        let deadline = Instant::now() + REMOVE_DEAD_WINDOW;
        let mut tries = 0;
        let mut answer;
        // Bounded by the deadline; `409` while the cluster still sees the node alive.
        loop {
            tries += 1;
            answer = self.delete_dead(victim, view, rng);
            if answer.accepted() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if answer.accepted() {
            self.membership.pending_dead.remove(&victim);
        }
        self.count_taken(&answer, "remove-dead");
        json!({"op": "remove-dead", "node": victim, "tries": tries, "answer": answer.to_json()})
    }

    fn delete_dead(&mut self, id: u64, view: Option<&ClusterView>, rng: &mut Rng) -> Answer {
        let path = format!("/v1/cluster/nodes/{id}?dead=true");
        self.control("DELETE", &path, None, view, rng)
    }

    /// Heals membership fault `fault`: after a join, rebalances onto the new node once it is
    /// active; after anything, retires the nodes that left.
    pub(super) fn heal_membership(&mut self, fault: Fault) {
        let mut rng = Rng::new(self.recorder.now_ns());
        if fault == Fault::AddNode {
            self.rebalance_onto_joined(JOIN_WINDOW, &mut rng);
        }
        self.reconcile(&mut rng);
    }

    /// Waits up to `window` for every joining node to be active, then asks for a rebalance
    /// of at most two moves.
    fn rebalance_onto_joined(&mut self, window: Duration, rng: &mut Rng) {
        if self.membership.joining.is_empty() {
            return;
        }
        let deadline = Instant::now() + window;
        // Bounded by the deadline.
        loop {
            let view = self.cluster_view(rng);
            if let Some(v) = &view {
                let joined: Vec<u64> = self
                    .membership
                    .joining
                    .iter()
                    .copied()
                    .filter(|id| v.state(*id) == Some("active"))
                    .collect();
                if !joined.is_empty() {
                    for id in &joined {
                        self.membership.joining.remove(id);
                        *self.membership.taken.entry("add-node").or_default() += 1;
                    }
                    let body = json!({"max_moves": 2});
                    let a = self.control("POST", "/v1/cluster/rebalance", Some(body), Some(v), rng);
                    self.recorder
                        .nemesis(json!({"fault": "add-node", "phase": "rebalance",
                        "detail": {"active": joined, "answer": a.to_json()}}));
                }
            }
            if self.membership.joining.is_empty() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Retires drained nodes the cluster reports removed (stopping them), and retries dead
    /// removals not confirmed yet.
    fn reconcile(&mut self, rng: &mut Rng) {
        let Some(view) = self.cluster_view(rng) else {
            return;
        };
        for id in self.membership.draining.clone() {
            if view.has_left(id) {
                self.cluster.stop(id, Duration::from_secs(10));
                self.retire(id);
                self.membership.draining.remove(&id);
                self.recorder.nemesis(
                    json!({"fault": "decommission", "phase": "removed", "detail": {"node": id}}),
                );
            }
        }
        for id in self.membership.pending_dead.clone() {
            let done = view.has_left(id) || self.delete_dead(id, Some(&view), rng).accepted();
            if done {
                self.membership.pending_dead.remove(&id);
                self.recorder.nemesis(
                    json!({"fault": "remove-dead", "phase": "removed", "detail": {"node": id}}),
                );
            }
        }
    }

    /// After the final heal: waits until the membership settles (no move in flight, drains and
    /// dead removals done, joined nodes active), then checks the placement. Reports what did not
    /// settle in [`Nemesis::errors`].
    pub fn settle_membership(&mut self) {
        let mut rng = Rng::new(self.recorder.now_ns());
        let deadline = Instant::now() + SETTLE_WINDOW;
        // Bounded by the deadline.
        let last = loop {
            self.reconcile(&mut rng);
            self.rebalance_onto_joined(Duration::ZERO, &mut rng);
            let view = self.cluster_view(&mut rng);
            let moving = self.moves_in_flight(&mut rng);
            // A decommission that never took effect leaves its node active: it stays a member.
            if let Some(v) = &view {
                let undone: Vec<u64> = self
                    .membership
                    .draining
                    .iter()
                    .copied()
                    .filter(|id| v.state(*id) == Some("active"))
                    .collect();
                if moving == Some(0) {
                    for id in undone {
                        self.membership.draining.remove(&id);
                    }
                }
            }
            let members = self.cluster.members();
            let voters = view.as_ref().and_then(ClusterView::metadata_voters);
            let voters_ok = voters.as_ref().is_none_or(|v| {
                v.len() == METADATA_VOTERS.min(members.len())
                    && v.iter().all(|id| members.contains(id))
            });
            // Every member active in this view: a joined node seen `active` once, by a member
            // whose metadata had not registered it yet, may still be catching up.
            let not_active: Vec<u64> = view.as_ref().map_or_else(Vec::new, |v| {
                members
                    .iter()
                    .copied()
                    .filter(|id| !self.membership.draining.contains(id))
                    .filter(|id| v.state(*id) != Some("active"))
                    .collect()
            });
            let m = &self.membership;
            let settled = view.is_some()
                && not_active.is_empty()
                && moving == Some(0)
                && m.draining.is_empty()
                && m.pending_dead.is_empty()
                && m.joining.is_empty()
                && voters_ok;
            let hopeless = m.misunderstood;
            if settled || hopeless || Instant::now() >= deadline {
                if !settled && !hopeless {
                    self.errors.push(format!(
                        "membership did not settle {} s after healing: moves in flight {:?}, \
                         draining {:?}, dead not removed {:?}, joined not active {:?}, \
                         members not active {:?}, metadata voters {:?} (members {:?})",
                        SETTLE_WINDOW.as_secs(),
                        moving,
                        m.draining,
                        m.pending_dead,
                        m.joining,
                        not_active,
                        voters,
                        members
                    ));
                }
                break view;
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        let Some(view) = last else {
            self.errors
                .push("membership: no member answered GET /v1/cluster after healing".into());
            return;
        };
        let gone: Vec<u64> = self
            .topo()
            .slots()
            .into_iter()
            .filter(|id| self.cluster.is_retired(*id))
            .collect();
        for p in view.placement_problems(&self.topic, self.membership.replication, &gone) {
            self.errors.push(format!("membership: {p}"));
        }
        for id in self.cluster.members() {
            match view.state(id) {
                Some("active") => {}
                s => self.errors.push(format!(
                    "membership: member {id} is {s:?} after settling, not active"
                )),
            }
        }
        // Vacuity: a membership cell in which no change took effect tested no membership change.
        if self.membership.taken.is_empty() {
            self.errors
                .push("membership: no membership change took effect (vacuous)".into());
        }
        self.recorder
            .nemesis(json!({"fault": "membership", "phase": "settled",
            "detail": {"members": self.cluster.members(), "retired": gone,
                       "taken": self.membership.taken}}));
    }
}

//! The cluster's shape in the metadata: the node registry (who is in the cluster, at which
//! address, in which state) and the partition moves in flight, with the deterministic planning
//! of rebalances, drains and dead-node replacement.
//!
//! Everything here runs inside the metadata state machine's `apply`, from the command and the
//! current state only, so every replica computes the same plan. The moves are carried out by
//! [`crate::cluster::controller`] on the metadata leader, each by its partition's Raft leader
//! ([`crate::raft::membership`]).

use std::collections::{BTreeMap, BTreeSet};

use raft_store::{GroupId, NodeId};
use serde::{Deserialize, Serialize};

use super::metadata::TopicMeta;

/// A node's registered state. `down` is not stored: it is what an active or draining node
/// that does not answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeLife {
    /// Registered through `--join`; its metadata replica is catching up.
    Joining,
    /// Serving; new replicas may be placed on it.
    Active,
    /// Decommissioning: its replicas move off, it gets no new ones.
    Draining,
    /// Gone for good; the id is never reused.
    Removed,
}

impl NodeLife {
    /// The state as the API shows it.
    pub fn to_protocol(self) -> raftka_protocol::NodeState {
        use raftka_protocol::NodeState as S;
        match self {
            Self::Joining => S::Joining,
            Self::Active => S::Active,
            Self::Draining => S::Draining,
            Self::Removed => S::Removed,
        }
    }
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// The address other nodes and clients use (`--advertise`).
    pub addr: String,
    /// Its state.
    pub life: NodeLife,
}

/// A partition move in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveMeta {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The replicas when the move was recorded.
    pub from: Vec<NodeId>,
    /// The replicas it moves to, preferred leader first.
    pub to: Vec<NodeId>,
}

impl MoveMeta {
    /// The API's view.
    pub fn to_protocol(&self) -> raftka_protocol::Reassignment {
        raftka_protocol::Reassignment {
            topic: self.topic.clone(),
            partition: self.partition,
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }
}

/// Why a membership command was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClusterError {
    /// No such topic.
    #[error("topic '{0}' not found")]
    TopicNotFound(String),
    /// No such partition.
    #[error("topic '{topic}' has no partition {partition}")]
    PartitionNotFound {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// The node is not registered.
    #[error("node {0} is not in the cluster")]
    NodeNotFound(NodeId),
    /// The node's state forbids it.
    #[error("node {node} is {state}: {why}")]
    InvalidNodeState {
        /// Node.
        node: NodeId,
        /// Its state (as the API names it).
        state: String,
        /// What was refused.
        why: String,
    },
    /// A replica list that cannot be applied.
    #[error("{0}")]
    InvalidReplicas(String),
    /// The node registry is not filled yet (a cluster that just formed); retry shortly.
    #[error("the cluster's node registry is not filled yet (the cluster just started): retry")]
    RegistryEmpty,
    /// The partition is already moving.
    #[error("partition {topic}/{partition} is already being moved")]
    MoveInProgress {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
}

/// The cluster-shape part of the metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Every node ever registered, removed ones included (ids are never reused).
    pub nodes: BTreeMap<NodeId, NodeMeta>,
    /// Moves in flight, by partition group, in the order recorded (`order`).
    pub moves: BTreeMap<GroupId, MoveMeta>,
    /// The recording order of `moves`: moves are carried out oldest first.
    pub order: Vec<GroupId>,
    /// Groups whose Raft membership has ever been changed. A replica of such a group never
    /// initializes it: only the replicas named at creation may, with the same member set.
    pub reconfigured: BTreeSet<GroupId>,
}

impl ClusterMeta {
    /// Nodes that may hold new replicas.
    pub fn active_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.life == NodeLife::Active)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Nodes that are part of the cluster (not removed).
    pub fn member_nodes(&self) -> impl Iterator<Item = (NodeId, &NodeMeta)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.life != NodeLife::Removed)
            .map(|(id, n)| (*id, n))
    }

    /// Moves in flight, oldest first.
    pub fn moves_in_order(&self) -> impl Iterator<Item = (GroupId, &MoveMeta)> {
        self.order
            .iter()
            .filter_map(|g| self.moves.get(g).map(|m| (*g, m)))
    }

    /// Registers the nodes of the initial cluster (from the metadata group's membership) that
    /// the registry lacks, as active.
    pub fn bootstrap(&mut self, nodes: &[(NodeId, String)]) {
        for (id, addr) in nodes {
            self.nodes.entry(*id).or_insert_with(|| NodeMeta {
                addr: addr.clone(),
                life: NodeLife::Active,
            });
        }
    }

    /// Registers a joining node: `id` if given (an existing non-removed entry keeps its state
    /// and takes the new address), else the next id above every id known (`reserved` holds ids
    /// in use outside the registry, such as metadata members not registered yet).
    ///
    /// # Errors
    /// A removed id (ids are never reused: a replica of it may still sit in some group's
    /// history).
    pub fn register(
        &mut self,
        id: Option<NodeId>,
        addr: String,
        reserved: &[NodeId],
    ) -> Result<NodeId, ClusterError> {
        let id = match id {
            Some(id) => id,
            None => {
                let max_known = self
                    .nodes
                    .keys()
                    .chain(reserved)
                    .copied()
                    .max()
                    .unwrap_or(0);
                max_known + 1
            }
        };
        match self.nodes.get_mut(&id) {
            Some(n) if n.life == NodeLife::Removed => Err(ClusterError::InvalidNodeState {
                node: id,
                state: "removed".into(),
                why: "a removed node id is never reused; start the node with a new id and an \
                      empty data directory"
                    .into(),
            }),
            Some(n) => {
                n.addr = addr;
                Ok(id)
            }
            None => {
                self.nodes.insert(
                    id,
                    NodeMeta {
                        addr,
                        life: NodeLife::Joining,
                    },
                );
                Ok(id)
            }
        }
    }

    fn node(&self, id: NodeId) -> Result<&NodeMeta, ClusterError> {
        self.nodes.get(&id).ok_or(ClusterError::NodeNotFound(id))
    }

    /// Checks a requested replica list against the registry and the current replicas.
    ///
    /// # Errors
    /// Empty or repeated lists, unknown or inactive nodes, fewer replicas than a majority of
    /// the current ones.
    pub fn check_target(&self, current: &[NodeId], target: &[NodeId]) -> Result<(), ClusterError> {
        if target.is_empty() {
            return Err(ClusterError::InvalidReplicas(
                "the replica list is empty: a partition needs at least one replica".into(),
            ));
        }
        let distinct: BTreeSet<_> = target.iter().collect();
        if distinct.len() != target.len() {
            return Err(ClusterError::InvalidReplicas(format!(
                "the replica list {target:?} names a node twice"
            )));
        }
        let majority = current.len() / 2 + 1;
        if target.len() < majority {
            return Err(ClusterError::InvalidReplicas(format!(
                "{} replicas are fewer than a majority ({majority}) of the current {}: \
                 shrink by at most a minority at a time",
                target.len(),
                current.len()
            )));
        }
        for id in target {
            let n = self.node(*id)?;
            if n.life != NodeLife::Active && !current.contains(id) {
                return Err(ClusterError::InvalidNodeState {
                    node: *id,
                    state: n.life.to_protocol().as_str().into(),
                    why: "new replicas go only to active nodes".into(),
                });
            }
            if matches!(n.life, NodeLife::Removed) {
                return Err(ClusterError::InvalidNodeState {
                    node: *id,
                    state: "removed".into(),
                    why: "a removed node holds no replicas".into(),
                });
            }
        }
        Ok(())
    }

    /// Records a move of `group` to `to` (a no-op when `to` equals `current`).
    pub fn record_move(
        &mut self,
        group: GroupId,
        topic: &str,
        partition: u32,
        current: &[NodeId],
        to: Vec<NodeId>,
    ) -> Option<MoveMeta> {
        if to == current {
            return None;
        }
        let m = MoveMeta {
            topic: topic.to_string(),
            partition,
            from: current.to_vec(),
            to,
        };
        if self.moves.insert(group, m.clone()).is_none() {
            self.order.push(group);
        }
        Some(m)
    }

    /// Ends the move of `group` at `replicas`: returns whether a move to exactly those replicas
    /// was in flight (a stale completion changes nothing).
    pub fn complete_move(&mut self, group: GroupId, replicas: &[NodeId]) -> bool {
        match self.moves.get(&group) {
            Some(m) if m.to == replicas => {
                self.moves.remove(&group);
                self.order.retain(|g| *g != group);
                // canary: the unsafe reassignment leaves the group "never reconfigured", so
                // the new replicas initialize it afresh (with empty logs).
                #[cfg(not(feature = "canary-reassign-unsafe"))]
                self.reconfigured.insert(group);
                true
            }
            _ => false,
        }
    }

    /// Whether `node` still holds or is about to hold a replica.
    pub fn hosts_anything(&self, node: NodeId, topics: &BTreeMap<String, TopicMeta>) -> bool {
        topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(|p| p.replicas.contains(&node))
            || self
                .moves
                .values()
                .any(|m| m.to.contains(&node) || m.from.contains(&node))
    }
}

/// One partition as the planner sees it: its group and replicas (the move's target when one
/// is in flight, which the planner then leaves alone).
#[derive(Debug, Clone)]
pub struct PlanPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Group.
    pub group: GroupId,
    /// Replicas now (or a move's target).
    pub replicas: Vec<NodeId>,
    /// A move is in flight: do not plan another.
    pub moving: bool,
}

/// The partitions of `topics` for planning, with in-flight moves' targets.
pub fn plan_input(topics: &BTreeMap<String, TopicMeta>, cm: &ClusterMeta) -> Vec<PlanPartition> {
    topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (t.name.clone(), i as u32, p))
        })
        .map(|(topic, partition, p)| match cm.moves.get(&p.group) {
            Some(m) => PlanPartition {
                topic,
                partition,
                group: p.group,
                replicas: m.to.clone(),
                moving: true,
            },
            None => PlanPartition {
                topic,
                partition,
                group: p.group,
                replicas: p.replicas.clone(),
                moving: false,
            },
        })
        .collect()
}

fn replica_counts(parts: &[PlanPartition], nodes: &[NodeId]) -> BTreeMap<NodeId, usize> {
    let mut c: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for p in parts {
        for r in &p.replicas {
            if let Some(v) = c.get_mut(r) {
                *v += 1;
            }
        }
    }
    c
}

fn leader_counts(parts: &[PlanPartition], nodes: &[NodeId]) -> BTreeMap<NodeId, usize> {
    let mut c: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for p in parts {
        if let Some(v) = p.replicas.first().and_then(|f| c.get_mut(f)) {
            *v += 1;
        }
    }
    c
}

/// The least-loaded node of `nodes` not in `exclude` (ties: lowest id).
fn least_loaded(
    counts: &BTreeMap<NodeId, usize>,
    nodes: &[NodeId],
    exclude: &[NodeId],
) -> Option<NodeId> {
    nodes
        .iter()
        .filter(|n| !exclude.contains(n))
        .min_by_key(|n| (counts.get(n).copied().unwrap_or(0), **n))
        .copied()
}

/// Replaces `node` in every partition of `parts`, by the least-loaded active node not in that
/// partition (same position, so a preferred leader's slot goes to the replacement). With
/// `allow_shrink` (a dead node), a partition with no candidate left keeps its other replicas
/// only, when they are still a majority of the current set.
///
/// # Errors
/// A partition with no node to take the replica (without `allow_shrink`), one whose only
/// replica is `node` (its data would be lost), or one that would keep fewer than a majority of
/// its replicas.
pub fn plan_replace(
    parts: &mut [PlanPartition],
    node: NodeId,
    active: &[NodeId],
    allow_shrink: bool,
) -> Result<Vec<usize>, ClusterError> {
    let candidates: Vec<NodeId> = active.iter().copied().filter(|n| *n != node).collect();
    let mut counts = replica_counts(parts, &candidates);
    let mut changed = Vec::new();
    for (i, p) in parts.iter_mut().enumerate() {
        let Some(pos) = p.replicas.iter().position(|r| *r == node) else {
            continue;
        };
        if p.replicas.len() == 1 && (allow_shrink || candidates.is_empty()) {
            // A dead node's only replica cannot be copied from anywhere; a live one needs a
            // node to go to.
            return Err(ClusterError::InvalidReplicas(format!(
                "partition {}/{} has its only replica on node {node}: {}",
                p.topic,
                p.partition,
                if allow_shrink {
                    "its records exist nowhere else (bring the node back, or delete the topic)"
                } else {
                    "no other node can take it"
                }
            )));
        }
        match least_loaded(&counts, &candidates, &p.replicas) {
            Some(r) => {
                p.replicas[pos] = r;
                *counts.entry(r).or_insert(0) += 1;
            }
            None if !allow_shrink => {
                return Err(ClusterError::InvalidReplicas(format!(
                    "no active node can take partition {}/{}'s replica from node {node} (it \
                     holds {:?}): add a node first",
                    p.topic, p.partition, p.replicas
                )));
            }
            None => {
                let majority = p.replicas.len() / 2 + 1;
                if p.replicas.len() - 1 < majority {
                    return Err(ClusterError::InvalidReplicas(format!(
                        "partition {}/{} cannot keep a majority of its {} replicas without \
                         node {node}: add a node first",
                        p.topic,
                        p.partition,
                        p.replicas.len()
                    )));
                }
                p.replicas.remove(pos);
            }
        }
        changed.push(i);
    }
    Ok(changed)
}

/// Balances replicas (every active node within one of the others) and preferred leaders over
/// `active`, moving as few replicas as it can; partitions already moving are left alone.
/// Returns the indexes of the partitions whose replicas (or their order) changed.
pub fn plan_balance(parts: &mut [PlanPartition], active: &[NodeId]) -> Vec<usize> {
    let mut changed = BTreeSet::new();
    if active.is_empty() {
        return Vec::new();
    }
    // First, replicas on nodes that may not hold them (draining, removed) go to active ones.
    for node in parts
        .iter()
        .flat_map(|p| p.replicas.clone())
        .filter(|r| !active.contains(r))
        .collect::<BTreeSet<_>>()
    {
        let mut movable: Vec<PlanPartition> = parts.iter().filter(|p| !p.moving).cloned().collect();
        if let Ok(idx) = plan_replace(&mut movable, node, active, false) {
            let positions: Vec<usize> = (0..parts.len()).filter(|i| !parts[*i].moving).collect();
            for j in idx {
                let i = positions[j];
                parts[i].replicas = movable[j].replicas.clone();
                changed.insert(i);
            }
        }
    }
    // Then even out the replica counts: move one replica from the fullest node to the
    // emptiest, while they differ by more than one.
    let bound = parts.len() * 4 + 16;
    for _ in 0..bound {
        let counts = replica_counts(parts, active);
        let (Some((&hi, &hi_n)), Some((&lo, &lo_n))) = (
            counts
                .iter()
                .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n))),
            counts.iter().min_by_key(|(n, c)| (**c, **n)),
        ) else {
            break;
        };
        if hi_n <= lo_n + 1 {
            break;
        }
        let pick = (0..parts.len()).find(|i| {
            let p = &parts[*i];
            !p.moving && p.replicas.contains(&hi) && !p.replicas.contains(&lo)
        });
        let Some(i) = pick else { break };
        if let Some(pos) = parts[i].replicas.iter().position(|r| *r == hi) {
            parts[i].replicas[pos] = lo;
            changed.insert(i);
        }
    }
    // Last, even out preferred leaders by reordering within partitions (no data moves).
    for _ in 0..bound {
        let counts = leader_counts(parts, active);
        let (Some((&hi, &hi_n)), Some((&lo, &lo_n))) = (
            counts
                .iter()
                .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n))),
            counts.iter().min_by_key(|(n, c)| (**c, **n)),
        ) else {
            break;
        };
        if hi_n <= lo_n + 1 {
            break;
        }
        let pick = (0..parts.len()).find(|i| {
            let p = &parts[*i];
            !p.moving && p.replicas.first() == Some(&hi) && p.replicas.contains(&lo)
        });
        let Some(i) = pick else { break };
        if let Some(pos) = parts[i].replicas.iter().position(|r| *r == lo) {
            parts[i].replicas.swap(0, pos);
            changed.insert(i);
        }
    }
    changed.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(sets: &[&[NodeId]]) -> Vec<PlanPartition> {
        sets.iter()
            .enumerate()
            .map(|(i, s)| PlanPartition {
                topic: "t".into(),
                partition: i as u32,
                group: i as u64 + 1,
                replicas: s.to_vec(),
                moving: false,
            })
            .collect()
    }

    fn registry(active: &[NodeId]) -> ClusterMeta {
        let mut cm = ClusterMeta::default();
        cm.bootstrap(
            &active
                .iter()
                .map(|i| (*i, format!("127.0.0.1:{i}")))
                .collect::<Vec<_>>(),
        );
        cm
    }

    #[test]
    fn growing_from_three_to_five_nodes_balances_replicas_and_leaders() {
        let mut p = parts(&[
            &[1, 2, 3],
            &[2, 3, 1],
            &[3, 1, 2],
            &[1, 2, 3],
            &[2, 3, 1],
            &[3, 1, 2],
        ]);
        let active = [1, 2, 3, 4, 5];
        let changed = plan_balance(&mut p, &active);
        assert!(!changed.is_empty());
        let rc = replica_counts(&p, &active);
        assert!(rc.values().all(|c| (3..=4).contains(c)), "{rc:?}");
        let lc = leader_counts(&p, &active);
        assert!(lc.values().all(|c| *c <= 2), "{lc:?}");
        for q in &p {
            let d: BTreeSet<_> = q.replicas.iter().collect();
            assert_eq!(d.len(), 3, "distinct replicas {q:?}");
        }
        // A balanced cluster plans nothing more.
        assert!(plan_balance(&mut p, &active).is_empty());
    }

    #[test]
    fn draining_moves_every_replica_off_and_keeps_rf() {
        let mut p = parts(&[&[1, 2, 3], &[2, 3, 4], &[4, 1, 2]]);
        let changed = plan_replace(&mut p, 2, &[1, 3, 4], false).unwrap();
        assert_eq!(changed, vec![0, 1, 2]);
        for q in &p {
            assert!(!q.replicas.contains(&2));
            assert_eq!(q.replicas.len(), 3);
        }
    }

    #[test]
    fn the_last_replica_is_never_dropped() {
        let mut p = parts(&[&[2]]);
        assert!(matches!(
            plan_replace(&mut p, 2, &[2], true),
            Err(ClusterError::InvalidReplicas(_))
        ));
        // A dead node's only replica exists nowhere else, even with spare nodes.
        assert!(plan_replace(&mut p, 2, &[1, 3], true).is_err());
        assert!(plan_replace(&mut p, 2, &[1, 3], false).is_ok());
        // Without spare nodes a drain is refused, and a dead node's RF3 partition shrinks to
        // its two survivors.
        let mut p = parts(&[&[1, 2, 3]]);
        assert!(plan_replace(&mut p, 3, &[1, 2], false).is_err());
        plan_replace(&mut p, 3, &[1, 2], true).unwrap();
        assert_eq!(p[0].replicas, vec![1, 2]);
    }

    #[test]
    fn targets_are_checked() {
        let cm = registry(&[1, 2, 3, 4]);
        assert!(cm.check_target(&[1, 2, 3], &[1, 2, 4]).is_ok());
        assert!(matches!(
            cm.check_target(&[1, 2, 3], &[]),
            Err(ClusterError::InvalidReplicas(_))
        ));
        assert!(matches!(
            cm.check_target(&[1, 2, 3], &[1, 1, 2]),
            Err(ClusterError::InvalidReplicas(_))
        ));
        assert!(matches!(
            cm.check_target(&[1, 2, 3], &[4]),
            Err(ClusterError::InvalidReplicas(_))
        ));
        assert_eq!(
            cm.check_target(&[1, 2, 3], &[1, 2, 9]),
            Err(ClusterError::NodeNotFound(9))
        );
    }

    #[test]
    fn ids_are_assigned_above_all_known_and_never_reused() {
        let mut cm = registry(&[1, 2, 3]);
        assert_eq!(cm.register(None, "a:1".into(), &[7]), Ok(8));
        assert_eq!(cm.nodes[&8].life, NodeLife::Joining);
        assert_eq!(cm.register(Some(8), "a:2".into(), &[]), Ok(8));
        assert_eq!(cm.nodes[&8].addr, "a:2");
        cm.nodes.get_mut(&8).unwrap().life = NodeLife::Removed;
        assert!(cm.register(Some(8), "a:3".into(), &[]).is_err());
        assert_eq!(cm.register(None, "a:4".into(), &[]), Ok(9));
    }

    #[test]
    fn moves_complete_only_at_their_target() {
        let mut cm = registry(&[1, 2, 3, 4]);
        let m = cm.record_move(5, "t", 0, &[1, 2, 3], vec![1, 2, 4]);
        assert!(m.is_some());
        assert!(cm
            .record_move(6, "t", 1, &[1, 2, 3], vec![1, 2, 3])
            .is_none());
        assert!(!cm.complete_move(5, &[1, 2, 3]));
        assert!(cm.complete_move(5, &[1, 2, 4]));
        assert!(cm.moves.is_empty() && cm.order.is_empty());
        #[cfg(not(feature = "canary-reassign-unsafe"))]
        assert!(cm.reconfigured.contains(&5));
    }
}

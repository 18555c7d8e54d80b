//! The metadata group's state: topics, their partitions and where each replica lives.
//!
//! Placement happens inside `apply`, from the command and the current state only, so every
//! replica of the metadata group computes the same placement.

use std::collections::BTreeMap;

use raft_store::{codec, BlobState, GroupId, NodeId};
use serde::{Deserialize, Serialize};

use super::groups::{GroupError, GroupState, MemberState, TopicPartition};
use super::membership::{
    plan_balance, plan_input, plan_replace, ClusterError, ClusterMeta, MoveMeta, NodeLife,
    PlanPartition,
};
use super::placement::{place_replicas, Load};

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The Raft group that holds this partition's log.
    pub group: GroupId,
    /// The nodes holding replicas; the first is the preferred leader.
    pub replicas: Vec<NodeId>,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// The topic's name.
    pub name: String,
    /// Partitions, indexed by partition number.
    pub partitions: Vec<PartitionMeta>,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Topic configs (`retention.ms`, …), as given.
    pub configs: BTreeMap<String, String>,
}

/// The metadata state machine's state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetaState {
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// The next unused partition group id (group 0 is the metadata group).
    pub next_group: GroupId,
    /// Consumer groups by name.
    pub groups: BTreeMap<String, GroupState>,
    /// The node registry and the partition moves in flight. Last, so that state written by
    /// a build without it (which ends before it) still reads, as an empty registry.
    pub cluster: ClusterMeta,
    /// Users, token hashes and ACLs. Last, for the same reason as `cluster`.
    pub security: crate::auth::acl::Security,
}

/// Reads the fields in order; a missing trailing `cluster` (state stored by a build before the
/// node registry) reads as empty. The binary encoding has no field names, so this is the one
/// way an added field stays readable.
impl<'de> Deserialize<'de> for MetaState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = MetaState;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the metadata state")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<MetaState, A::Error> {
                use serde::de::Error;
                let topics = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let next_group = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let groups = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(2, &self))?;
                // Absent in state from before the registry: the end of the input.
                let cluster = seq.next_element().ok().flatten().unwrap_or_default();
                // Absent in state from before users and ACLs.
                let security = seq.next_element().ok().flatten().unwrap_or_default();
                Ok(MetaState {
                    topics,
                    next_group,
                    groups,
                    cluster,
                    security,
                })
            }
        }
        d.deserialize_struct(
            "MetaState",
            &["topics", "next_group", "groups", "cluster", "security"],
            Fields,
        )
    }
}

/// A change to the metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Create a topic, placing its replicas over `nodes`.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count.
        partitions: u32,
        /// Replication factor.
        replication_factor: u32,
        /// Configs.
        configs: BTreeMap<String, String>,
        /// The cluster's nodes at proposal time; placement picks among them.
        nodes: Vec<NodeId>,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// A consumer joins (or rejoins) a group.
    JoinGroup {
        /// Group.
        group: String,
        /// Rejoining member, or `None` for a new one.
        member_id: Option<String>,
        /// Client name.
        client_id: String,
        /// Subscribed topics.
        topics: Vec<String>,
        /// Session timeout.
        session_timeout_ms: u64,
    },
    /// Members leave (or are expired by the coordinator).
    RemoveMembers {
        /// Group.
        group: String,
        /// Members.
        members: Vec<String>,
    },
    /// A member acknowledges the generation and gives up revoked partitions.
    Release {
        /// Group.
        group: String,
        /// Member.
        member_id: String,
        /// Generation.
        generation: u64,
    },
    /// Commit offsets (next offset to read) for partitions the member owns.
    Commit {
        /// Group.
        group: String,
        /// Member.
        member_id: String,
        /// Generation.
        generation: u64,
        /// Offsets.
        offsets: Vec<(TopicPartition, u64)>,
    },
    /// Set offsets of an empty group (offset reset tools).
    SetOffsets {
        /// Group.
        group: String,
        /// Offsets.
        offsets: Vec<(TopicPartition, u64)>,
    },
    /// Delete an empty group.
    DeleteGroup {
        /// Group.
        group: String,
    },
    /// Change a topic's configs (validated by the proposer).
    AlterTopicConfigs {
        /// Topic.
        name: String,
        /// Configs to set.
        set: BTreeMap<String, String>,
        /// Configs to reset to their defaults.
        reset: Vec<String>,
    },
    /// Grow a topic to `partitions` partitions (never shrink), placing the new partitions'
    /// replicas over `nodes`. New variants go last: the metadata log stores commands by
    /// variant position.
    AddPartitions {
        /// Topic.
        name: String,
        /// The new partition count.
        partitions: u32,
        /// The cluster's nodes at proposal time; placement picks among them.
        nodes: Vec<NodeId>,
    },
    /// Registers the initial cluster's nodes (the metadata group's members), as active.
    BootstrapNodes {
        /// Ids and addresses.
        nodes: Vec<(NodeId, String)>,
    },
    /// A node joins (`--join`): registered as joining, with `id` or a fresh one.
    RegisterNode {
        /// The id it was started with, if any.
        id: Option<NodeId>,
        /// Its advertised address.
        addr: String,
        /// Ids in use that the registry may not hold yet (metadata group members).
        reserved: Vec<NodeId>,
    },
    /// A joined node's metadata replica caught up: it may hold replicas now.
    ActivateNode {
        /// Node.
        id: NodeId,
    },
    /// Move one partition's replicas.
    Reassign {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The new replicas, preferred leader first.
        replicas: Vec<NodeId>,
    },
    /// Plan moves that balance replicas and preferred leaders over the active nodes.
    Rebalance {
        /// Plan at most this many moves.
        max_moves: Option<u32>,
    },
    /// Drain a node: every replica moves off, then it leaves.
    Decommission {
        /// Node.
        id: NodeId,
    },
    /// A node that will never return: removed at once, its replicas rebuilt elsewhere.
    RemoveDeadNode {
        /// Node.
        id: NodeId,
    },
    /// A partition's Raft membership reached its move's target.
    CompleteMove {
        /// Partition group.
        group: GroupId,
        /// The replicas now (the move's target).
        replicas: Vec<NodeId>,
    },
    /// A drained node left the metadata group: it is removed.
    NodeLeft {
        /// Node.
        id: NodeId,
    },
    /// Users, tokens and ACLs.
    Security(crate::auth::acl::SecurityCommand),
}

/// The result of a [`MetaCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    /// The topic was created.
    TopicCreated(TopicMeta),
    /// A topic of that name exists.
    TopicExists,
    /// No such topic.
    TopicNotFound,
    /// The topic was deleted.
    TopicDeleted,
    /// Fewer nodes than the replication factor.
    NotEnoughNodes {
        /// Nodes needed.
        needed: u32,
        /// Nodes known.
        have: u32,
    },
    /// A member joined.
    Joined {
        /// Its id.
        member_id: String,
        /// The group generation.
        generation: u64,
        /// Partitions it owns now.
        assignment: Vec<TopicPartition>,
    },
    /// A group operation succeeded.
    GroupOk,
    /// A group operation was refused; nothing changed.
    GroupRefused(GroupError),
    /// The command could not be decoded (a version mismatch).
    Invalid(String),
    /// The topic's configs (or partition count) were changed.
    TopicAltered(TopicMeta),
    /// A partition count that does not grow the topic; nothing changed.
    PartitionsNotIncreased {
        /// The topic's partition count.
        current: u32,
    },
    /// A node was registered.
    NodeRegistered {
        /// Its id.
        id: NodeId,
    },
    /// Moves were recorded (none when nothing needed to move).
    MovesRecorded {
        /// The moves.
        moves: Vec<MoveMeta>,
        /// For a node operation, the node's state afterwards.
        node: Option<NodeLife>,
    },
    /// A cluster-shape command was refused; nothing changed.
    ClusterRefused(ClusterError),
    /// A cluster-shape command was applied (or was already in effect).
    ClusterOk,
    /// The result of a security command.
    Security(crate::auth::acl::SecurityReply),
}

impl MetaState {
    /// Looks up a topic.
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// Every partition group and its replicas, across topics.
    pub fn all_groups(&self) -> impl Iterator<Item = (&TopicMeta, u32, &PartitionMeta)> {
        self.topics.values().flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (t, i as u32, p))
        })
    }

    fn load(&self) -> Load {
        let mut load = Load::default();
        for (_, _, p) in self.all_groups() {
            for r in &p.replicas {
                *load.replicas.entry(*r).or_insert(0) += 1;
            }
            if let Some(first) = p.replicas.first() {
                *load.leaders.entry(*first).or_insert(0) += 1;
            }
        }
        load
    }

    /// `count` new partitions with fresh group ids, their replicas placed over `nodes` given
    /// the current load (deterministic: the same on every replica).
    fn new_partitions(&mut self, nodes: &[NodeId], count: u32, rf: u32) -> Vec<PartitionMeta> {
        let mut load = self.load();
        let first_group = self.next_group.max(1);
        let parts = (0..count)
            .map(|i| {
                let group = first_group + u64::from(i);
                PartitionMeta {
                    group,
                    replicas: place_replicas(nodes, &mut load, rf as usize, group),
                }
            })
            .collect();
        self.next_group = first_group + u64::from(count);
        parts
    }

    fn execute(&mut self, index: u64, cmd: MetaCommand) -> MetaResponse {
        match cmd {
            MetaCommand::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
                nodes,
            } => {
                if self.topics.contains_key(&name) {
                    return MetaResponse::TopicExists;
                }
                if (nodes.len() as u32) < replication_factor {
                    return MetaResponse::NotEnoughNodes {
                        needed: replication_factor,
                        have: nodes.len() as u32,
                    };
                }
                let parts = self.new_partitions(&nodes, partitions, replication_factor);
                let topic = TopicMeta {
                    name: name.clone(),
                    partitions: parts,
                    replication_factor,
                    configs,
                };
                self.topics.insert(name.clone(), topic.clone());
                self.rebalance_subscribers_of(&name);
                MetaResponse::TopicCreated(topic)
            }
            MetaCommand::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => {
                    for g in self.groups.values_mut() {
                        g.offsets.retain(|(t, _), _| *t != name);
                    }
                    self.rebalance_subscribers_of(&name);
                    MetaResponse::TopicDeleted
                }
                None => MetaResponse::TopicNotFound,
            },
            MetaCommand::AddPartitions {
                name,
                partitions,
                nodes,
            } => {
                let Some(t) = self.topics.get(&name) else {
                    return MetaResponse::TopicNotFound;
                };
                let current = t.partitions.len() as u32;
                if partitions <= current {
                    return MetaResponse::PartitionsNotIncreased { current };
                }
                let rf = t.replication_factor;
                if (nodes.len() as u32) < rf {
                    return MetaResponse::NotEnoughNodes {
                        needed: rf,
                        have: nodes.len() as u32,
                    };
                }
                let added = self.new_partitions(&nodes, partitions - current, rf);
                let topic = match self.topics.get_mut(&name) {
                    Some(t) => {
                        t.partitions.extend(added);
                        t.clone()
                    }
                    None => return MetaResponse::TopicNotFound,
                };
                self.rebalance_subscribers_of(&name);
                MetaResponse::TopicAltered(topic)
            }
            MetaCommand::AlterTopicConfigs { name, set, reset } => {
                match self.topics.get_mut(&name) {
                    Some(t) => {
                        for k in reset {
                            t.configs.remove(&k);
                        }
                        t.configs.extend(set);
                        MetaResponse::TopicAltered(t.clone())
                    }
                    None => MetaResponse::TopicNotFound,
                }
            }
            MetaCommand::BootstrapNodes { nodes } => {
                self.cluster.bootstrap(&nodes);
                MetaResponse::ClusterOk
            }
            MetaCommand::RegisterNode { id, addr, reserved } => {
                match self.cluster.register(id, addr, &reserved) {
                    Ok(id) => MetaResponse::NodeRegistered { id },
                    Err(e) => MetaResponse::ClusterRefused(e),
                }
            }
            MetaCommand::ActivateNode { id } => match self.cluster.nodes.get_mut(&id) {
                Some(n) if n.life == NodeLife::Joining => {
                    n.life = NodeLife::Active;
                    MetaResponse::ClusterOk
                }
                Some(_) => MetaResponse::ClusterOk,
                None => MetaResponse::ClusterRefused(ClusterError::NodeNotFound(id)),
            },
            MetaCommand::Reassign { .. }
            | MetaCommand::Rebalance { .. }
            | MetaCommand::Decommission { .. }
            | MetaCommand::RemoveDeadNode { .. }
                if self.cluster.nodes.is_empty() =>
            {
                MetaResponse::ClusterRefused(ClusterError::RegistryEmpty)
            }
            MetaCommand::Reassign {
                topic,
                partition,
                replicas,
            } => self.reassign(&topic, partition, replicas),
            MetaCommand::Rebalance { max_moves } => {
                let active = self.cluster.active_nodes();
                let mut parts = plan_input(&self.topics, &self.cluster);
                let changed = plan_balance(&mut parts, &active);
                let limit = max_moves.map_or(usize::MAX, |m| m as usize);
                let moves = self.record_planned(&parts, changed.into_iter().take(limit));
                MetaResponse::MovesRecorded { moves, node: None }
            }
            MetaCommand::Decommission { id } => self.drain(id, NodeLife::Draining),
            MetaCommand::RemoveDeadNode { id } => self.drain(id, NodeLife::Removed),
            MetaCommand::CompleteMove { group, replicas } => {
                if !self.cluster.complete_move(group, &replicas) {
                    return MetaResponse::ClusterOk;
                }
                if let Some(p) = self
                    .topics
                    .values_mut()
                    .flat_map(|t| t.partitions.iter_mut())
                    .find(|p| p.group == group)
                {
                    p.replicas = replicas;
                }
                // A replica that landed on a node drained meanwhile moves on at once.
                let moves = self.moves_off_inactive();
                MetaResponse::MovesRecorded { moves, node: None }
            }
            MetaCommand::NodeLeft { id } => {
                if self.cluster.hosts_anything(id, &self.topics) {
                    return MetaResponse::ClusterRefused(ClusterError::InvalidNodeState {
                        node: id,
                        state: "draining".into(),
                        why: "it still holds replicas".into(),
                    });
                }
                match self.cluster.nodes.get_mut(&id) {
                    Some(n) => {
                        n.life = NodeLife::Removed;
                        MetaResponse::ClusterOk
                    }
                    None => MetaResponse::ClusterRefused(ClusterError::NodeNotFound(id)),
                }
            }
            MetaCommand::Security(cmd) => MetaResponse::Security(self.security.apply(cmd)),
            MetaCommand::JoinGroup {
                group,
                member_id,
                client_id,
                topics,
                session_timeout_ms,
            } => {
                let counts = self.partition_counts();
                let g = self.groups.entry(group).or_default();
                let id = match member_id {
                    Some(id) if g.members.contains_key(&id) => id,
                    Some(_) => return MetaResponse::GroupRefused(GroupError::UnknownMember),
                    // Member ids come from the Raft index: unique and the same on every replica.
                    None => format!("{client_id}-{index}"),
                };
                let member = MemberState {
                    client_id,
                    topics: topics.into_iter().collect(),
                    session_timeout_ms,
                };
                let changed = g.members.get(&id) != Some(&member);
                g.members.insert(id.clone(), member);
                g.rebalance(&counts, changed);
                MetaResponse::Joined {
                    assignment: g.owned_by(&id),
                    generation: g.generation,
                    member_id: id,
                }
            }
            MetaCommand::RemoveMembers { group, members } => {
                let counts = self.partition_counts();
                let Some(g) = self.groups.get_mut(&group) else {
                    return MetaResponse::GroupRefused(GroupError::GroupNotFound);
                };
                let before = g.members.len();
                for m in &members {
                    g.members.remove(m);
                }
                if g.members.len() == before {
                    return MetaResponse::GroupRefused(GroupError::UnknownMember);
                }
                g.rebalance(&counts, true);
                MetaResponse::GroupOk
            }
            MetaCommand::Release {
                group,
                member_id,
                generation,
            } => match self.groups.get_mut(&group) {
                None => MetaResponse::GroupRefused(GroupError::GroupNotFound),
                Some(g) => match g.release(&member_id, generation) {
                    Ok(()) => MetaResponse::GroupOk,
                    Err(e) => MetaResponse::GroupRefused(e),
                },
            },
            MetaCommand::Commit {
                group,
                member_id,
                generation,
                offsets,
            } => match self.groups.get_mut(&group) {
                None => MetaResponse::GroupRefused(GroupError::GroupNotFound),
                Some(g) => match g.commit(&member_id, generation, &offsets) {
                    Ok(()) => MetaResponse::GroupOk,
                    Err(e) => MetaResponse::GroupRefused(e),
                },
            },
            MetaCommand::SetOffsets { group, offsets } => {
                let g = self.groups.entry(group).or_default();
                if !g.members.is_empty() {
                    return MetaResponse::GroupRefused(GroupError::NotEmpty);
                }
                for (tp, o) in offsets {
                    g.offsets.insert(tp, o);
                }
                MetaResponse::GroupOk
            }
            MetaCommand::DeleteGroup { group } => match self.groups.get(&group) {
                None => MetaResponse::GroupRefused(GroupError::GroupNotFound),
                Some(g) if !g.members.is_empty() => {
                    MetaResponse::GroupRefused(GroupError::NotEmpty)
                }
                Some(_) => {
                    self.groups.remove(&group);
                    MetaResponse::GroupOk
                }
            },
        }
    }

    fn reassign(&mut self, topic: &str, partition: u32, replicas: Vec<NodeId>) -> MetaResponse {
        let Some(t) = self.topics.get(topic) else {
            return MetaResponse::ClusterRefused(ClusterError::TopicNotFound(topic.into()));
        };
        let Some(p) = t.partitions.get(partition as usize) else {
            return MetaResponse::ClusterRefused(ClusterError::PartitionNotFound {
                topic: topic.into(),
                partition,
            });
        };
        if self.cluster.moves.contains_key(&p.group) {
            return MetaResponse::ClusterRefused(ClusterError::MoveInProgress {
                topic: topic.into(),
                partition,
            });
        }
        if let Err(e) = self.cluster.check_target(&p.replicas, &replicas) {
            return MetaResponse::ClusterRefused(e);
        }
        let (group, current) = (p.group, p.replicas.clone());
        let moves = self
            .cluster
            .record_move(group, topic, partition, &current, replicas)
            .into_iter()
            .collect();
        MetaResponse::MovesRecorded { moves, node: None }
    }

    /// Records moves for the planned partitions at `changed` (retargeting moves in flight).
    fn record_planned(
        &mut self,
        parts: &[PlanPartition],
        changed: impl Iterator<Item = usize>,
    ) -> Vec<MoveMeta> {
        let mut out = Vec::new();
        for i in changed {
            let p = &parts[i];
            let current = self
                .topics
                .get(&p.topic)
                .and_then(|t| t.partitions.get(p.partition as usize))
                .map(|m| m.replicas.clone())
                .unwrap_or_default();
            match self.cluster.moves.get_mut(&p.group) {
                Some(m) => {
                    // Retargeting a move in flight: nodes of the old target may already be
                    // voters, so they count as `from` until the move completes (their data
                    // stays until the group's configuration excludes them).
                    for n in std::mem::replace(&mut m.to, p.replicas.clone()) {
                        if !m.from.contains(&n) {
                            m.from.push(n);
                        }
                    }
                    out.push(m.clone());
                }
                None => out.extend(self.cluster.record_move(
                    p.group,
                    &p.topic,
                    p.partition,
                    &current,
                    p.replicas.clone(),
                )),
            }
        }
        out
    }

    /// Drains `id` (to `Draining`, or at once to `Removed` for a dead node): every replica on
    /// it, moves in flight included, is planned onto the other active nodes. All or nothing.
    fn drain(&mut self, id: NodeId, to: NodeLife) -> MetaResponse {
        let Some(n) = self.cluster.nodes.get(&id) else {
            return MetaResponse::ClusterRefused(ClusterError::NodeNotFound(id));
        };
        if n.life == NodeLife::Removed {
            return MetaResponse::ClusterRefused(ClusterError::InvalidNodeState {
                node: id,
                state: "removed".into(),
                why: "the node already left the cluster".into(),
            });
        }
        let active: Vec<NodeId> = self
            .cluster
            .active_nodes()
            .into_iter()
            .filter(|n| *n != id)
            .collect();
        let mut parts = plan_input(&self.topics, &self.cluster);
        let changed = match plan_replace(&mut parts, id, &active, to == NodeLife::Removed) {
            Ok(c) => c,
            Err(e) => return MetaResponse::ClusterRefused(e),
        };
        if let Some(n) = self.cluster.nodes.get_mut(&id) {
            n.life = to;
        }
        let moves = self.record_planned(&parts, changed.into_iter());
        MetaResponse::MovesRecorded {
            moves,
            node: Some(to),
        }
    }

    /// Moves for partitions (not already moving) with a replica on a draining or removed node.
    fn moves_off_inactive(&mut self) -> Vec<MoveMeta> {
        let active = self.cluster.active_nodes();
        let inactive: Vec<NodeId> = self
            .all_groups()
            .flat_map(|(_, _, p)| p.replicas.clone())
            .filter(|r| !active.contains(r))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut out = Vec::new();
        for node in inactive {
            let mut parts: Vec<PlanPartition> = plan_input(&self.topics, &self.cluster)
                .into_iter()
                .filter(|p| !p.moving)
                .collect();
            let dead = self
                .cluster
                .nodes
                .get(&node)
                .is_none_or(|n| n.life == NodeLife::Removed);
            if let Ok(changed) = plan_replace(&mut parts, node, &active, dead) {
                out.extend(self.record_planned(&parts, changed.into_iter()));
            }
        }
        out
    }

    /// The nodes new replicas may be placed on: the registry's active nodes.
    pub fn placement_nodes(&self) -> Vec<NodeId> {
        self.cluster.active_nodes()
    }

    /// Partition counts of every topic.
    pub fn partition_counts(&self) -> BTreeMap<String, u32> {
        self.topics
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len() as u32))
            .collect()
    }

    fn rebalance_subscribers_of(&mut self, topic: &str) {
        let counts = self.partition_counts();
        for g in self.groups.values_mut() {
            if g.members.values().any(|m| m.topics.contains(topic)) {
                g.rebalance(&counts, false);
            }
        }
    }
}

impl BlobState for MetaState {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let resp = match codec::decode::<MetaCommand>(command) {
            Ok(cmd) => self.execute(index, cmd),
            Err(e) => MetaResponse::Invalid(e.to_string()),
        };
        // Encoding our own enum cannot fail; an empty reply decodes as an error upstream.
        codec::encode(&resp).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, partitions: u32, rf: u32) -> MetaCommand {
        MetaCommand::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            nodes: vec![1, 2, 3],
        }
    }

    #[test]
    fn create_assigns_fresh_groups_and_rejects_duplicates() {
        let mut s = MetaState::default();
        let MetaResponse::TopicCreated(t) = s.execute(0, create("a", 3, 3)) else {
            panic!("not created")
        };
        assert_eq!(
            t.partitions.iter().map(|p| p.group).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(s.execute(0, create("a", 3, 3)), MetaResponse::TopicExists);
        let MetaResponse::TopicCreated(b) = s.execute(0, create("b", 2, 1)) else {
            panic!("not created")
        };
        assert_eq!(b.partitions[0].group, 4);
        assert_eq!(
            s.execute(0, MetaCommand::DeleteTopic { name: "a".into() }),
            MetaResponse::TopicDeleted
        );
        // Group ids are never reused, so a recreated topic cannot meet old Raft state.
        let MetaResponse::TopicCreated(a2) = s.execute(0, create("a", 1, 1)) else {
            panic!("not created")
        };
        assert_eq!(a2.partitions[0].group, 6);
    }

    #[test]
    fn replication_factor_above_node_count_is_refused() {
        let mut s = MetaState::default();
        assert_eq!(
            s.execute(0, create("a", 1, 4)),
            MetaResponse::NotEnoughNodes { needed: 4, have: 3 }
        );
    }

    #[test]
    fn apply_is_deterministic() {
        let cmds = [
            create("a", 6, 3),
            create("b", 5, 2),
            MetaCommand::DeleteTopic { name: "a".into() },
            create("c", 4, 1),
        ];
        let run = || {
            let mut s = MetaState::default();
            let outs: Vec<Vec<u8>> = cmds
                .iter()
                .map(|c| s.apply(0, &codec::encode(c).unwrap()))
                .collect();
            (outs, codec::encode(&s).unwrap())
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn partitions_only_grow_and_keep_existing_placement() {
        let mut s = MetaState::default();
        let MetaResponse::TopicCreated(before) = s.execute(0, create("a", 2, 3)) else {
            panic!("create");
        };
        let grow = |n: u32| MetaCommand::AddPartitions {
            name: "a".into(),
            partitions: n,
            nodes: vec![1, 2, 3],
        };
        let MetaResponse::TopicAltered(after) = s.execute(0, grow(5)) else {
            panic!("grow");
        };
        assert_eq!(after.partitions.len(), 5);
        assert_eq!(after.partitions[..2], before.partitions[..]);
        let groups: std::collections::BTreeSet<_> =
            after.partitions.iter().map(|p| p.group).collect();
        assert_eq!(groups.len(), 5, "every partition its own group");
        assert!(after.partitions.iter().all(|p| p.replicas.len() == 3));
        assert_eq!(
            s.execute(0, grow(5)),
            MetaResponse::PartitionsNotIncreased { current: 5 }
        );
        assert_eq!(
            s.execute(0, grow(3)),
            MetaResponse::PartitionsNotIncreased { current: 5 }
        );
        let MetaResponse::TopicCreated(b) = s.execute(0, create("b", 1, 1)) else {
            panic!("create b");
        };
        assert!(
            b.partitions[0].group > after.partitions[4].group,
            "no group id reused"
        );
    }

    #[test]
    fn garbage_command_is_reported_not_applied() {
        let mut s = MetaState::default();
        let out: MetaResponse = codec::decode(&s.apply(0, &[0xff, 0xff])).unwrap();
        assert!(matches!(out, MetaResponse::Invalid(_)));
        assert!(s.topics.is_empty());
    }
}

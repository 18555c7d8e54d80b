//! The metadata group's state: topics, their partitions and where each replica lives.
//!
//! Placement happens inside `apply`, from the command and the current state only, so every
//! replica of the metadata group computes the same placement.

use std::collections::BTreeMap;

use raft_store::{codec, BlobState, GroupId, NodeId};
use serde::{Deserialize, Serialize};

use super::groups::{GroupError, GroupState, MemberState, TopicPartition};
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetaState {
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// The next unused partition group id (group 0 is the metadata group).
    pub next_group: GroupId,
    /// Consumer groups by name.
    pub groups: BTreeMap<String, GroupState>,
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

//! The metadata group's state: topics, their partitions and where each replica lives.
//!
//! Placement happens inside `apply`, from the command and the current state only, so every
//! replica of the metadata group computes the same placement.

use std::collections::BTreeMap;

use raft_store::{codec, BlobState, GroupId, NodeId};
use serde::{Deserialize, Serialize};

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
    /// The command could not be decoded (a version mismatch).
    Invalid(String),
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

    fn execute(&mut self, cmd: MetaCommand) -> MetaResponse {
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
                let mut load = self.load();
                let first_group = self.next_group.max(1);
                let parts = (0..partitions)
                    .map(|p| PartitionMeta {
                        group: first_group + u64::from(p),
                        replicas: place_replicas(
                            &nodes,
                            &mut load,
                            replication_factor as usize,
                            first_group + u64::from(p),
                        ),
                    })
                    .collect();
                self.next_group = first_group + u64::from(partitions);
                let topic = TopicMeta {
                    name: name.clone(),
                    partitions: parts,
                    replication_factor,
                    configs,
                };
                self.topics.insert(name, topic.clone());
                MetaResponse::TopicCreated(topic)
            }
            MetaCommand::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => MetaResponse::TopicDeleted,
                None => MetaResponse::TopicNotFound,
            },
        }
    }
}

impl BlobState for MetaState {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let resp = match codec::decode::<MetaCommand>(command) {
            Ok(cmd) => self.execute(cmd),
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
        let MetaResponse::TopicCreated(t) = s.execute(create("a", 3, 3)) else {
            panic!("not created")
        };
        assert_eq!(
            t.partitions.iter().map(|p| p.group).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(s.execute(create("a", 3, 3)), MetaResponse::TopicExists);
        let MetaResponse::TopicCreated(b) = s.execute(create("b", 2, 1)) else {
            panic!("not created")
        };
        assert_eq!(b.partitions[0].group, 4);
        assert_eq!(
            s.execute(MetaCommand::DeleteTopic { name: "a".into() }),
            MetaResponse::TopicDeleted
        );
        // Group ids are never reused, so a recreated topic cannot meet old Raft state.
        let MetaResponse::TopicCreated(a2) = s.execute(create("a", 1, 1)) else {
            panic!("not created")
        };
        assert_eq!(a2.partitions[0].group, 6);
    }

    #[test]
    fn replication_factor_above_node_count_is_refused() {
        let mut s = MetaState::default();
        assert_eq!(
            s.execute(create("a", 1, 4)),
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
    fn garbage_command_is_reported_not_applied() {
        let mut s = MetaState::default();
        let out: MetaResponse = codec::decode(&s.apply(0, &[0xff, 0xff])).unwrap();
        assert!(matches!(out, MetaResponse::Invalid(_)));
        assert!(s.topics.is_empty());
    }
}

//! What the membership nemesis reads of `GET /v1/cluster` ([`ClusterView`]), the placement
//! invariants it checks after settling, and how it draws a new replica set
//! ([`plan_replicas`]). The harness speaks JSON, not the server's types, so that it reads any
//! server version: a server without node states reads as `active` (alive) or `down`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::harness::rng::Rng;

/// One node in `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// It answered the answering node's health probe lately.
    pub alive: bool,
    /// `joining`, `active`, `draining`, `down` or `removed`; from `alive` when the server does
    /// not report states (`active` or `down`).
    pub state: String,
    /// `voter`, `learner` or `none` in the metadata group, when reported.
    pub metadata_role: Option<String>,
}

/// One partition in `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Its replicas, preferred leader first.
    pub replicas: Vec<u64>,
}

/// The parts of `GET /v1/cluster` the membership nemesis reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The node that answered.
    pub answered_by: Option<u64>,
    /// The metadata leader it knows of.
    pub metadata_leader: Option<u64>,
    /// Registered nodes by id.
    pub nodes: BTreeMap<u64, NodeView>,
    /// Every partition.
    pub partitions: Vec<PartitionView>,
    /// Moves in flight, when reported.
    pub moves: Option<usize>,
}

/// Parses `GET /v1/cluster`; `None` if it is not a cluster state.
pub fn parse_cluster(j: &Json) -> Option<ClusterView> {
    let nodes = j["nodes"].as_array()?;
    let mut view = ClusterView {
        answered_by: j["node_id"].as_u64(),
        metadata_leader: j["metadata_leader"].as_u64(),
        moves: j["reassignments"].as_array().map(Vec::len),
        ..ClusterView::default()
    };
    for n in nodes {
        let Some(id) = n["id"].as_u64() else {
            continue;
        };
        let alive = n["alive"].as_bool().unwrap_or(false);
        let state = n["state"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| if alive { "active" } else { "down" }.to_owned());
        let metadata_role = n["metadata_role"].as_str().map(str::to_owned);
        view.nodes.insert(
            id,
            NodeView {
                alive,
                state,
                metadata_role,
            },
        );
    }
    for p in j["partitions"].as_array().into_iter().flatten() {
        let (Some(topic), Some(partition)) = (p["topic"].as_str(), p["partition"].as_u64()) else {
            continue;
        };
        view.partitions.push(PartitionView {
            topic: topic.to_owned(),
            partition: partition as u32,
            replicas: p["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Json::as_u64)
                .collect(),
        });
    }
    Some(view)
}

impl ClusterView {
    /// Node `id`'s state, `None` when it is not registered.
    pub fn state(&self, id: u64) -> Option<&str> {
        self.nodes.get(&id).map(|n| n.state.as_str())
    }

    /// Whether a node that was registered has left: `removed`, or no longer listed.
    pub fn has_left(&self, id: u64) -> bool {
        matches!(self.state(id), None | Some("removed"))
    }

    /// The metadata group's voters, ascending; `None` when the server reports no roles.
    pub fn metadata_voters(&self) -> Option<Vec<u64>> {
        if self.nodes.values().all(|n| n.metadata_role.is_none()) {
            return None;
        }
        Some(
            self.nodes
                .iter()
                .filter(|(_, n)| n.metadata_role.as_deref() == Some("voter"))
                .map(|(id, _)| *id)
                .collect(),
        )
    }

    /// Nodes that are active and answering, ascending.
    pub fn active(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state == "active" && n.alive)
            .map(|(id, _)| *id)
            .collect()
    }

    /// What is wrong with the placement of `topic`'s partitions: a replica count other than
    /// `replication`, a node twice, or a replica on a node that left (`gone`, or `removed`, or
    /// unknown to the cluster).
    pub fn placement_problems(&self, topic: &str, replication: usize, gone: &[u64]) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.partitions.iter().filter(|p| p.topic == topic) {
            let distinct: BTreeSet<u64> = p.replicas.iter().copied().collect();
            if p.replicas.len() != replication || distinct.len() != p.replicas.len() {
                out.push(format!(
                    "{topic}/{} has replicas {:?}, not {replication} distinct nodes",
                    p.partition, p.replicas
                ));
            }
            let left: Vec<u64> = distinct
                .iter()
                .copied()
                .filter(|id| gone.contains(id) || self.has_left(*id))
                .collect();
            if !left.is_empty() {
                out.push(format!(
                    "{topic}/{} keeps replicas {left:?} on nodes that left the cluster",
                    p.partition
                ));
            }
        }
        out
    }
}

/// A new replica set of `replication` nodes drawn from `active` for a partition now on
/// `current`, preferred leader first. Three times in four it takes as many nodes from outside
/// `current` as there are (the hardest move: most data to copy, the leader often leaves); else
/// a random number of them, at least one. With no node outside `current` it reorders `current`.
pub fn plan_replicas(
    rng: &mut Rng,
    current: &[u64],
    active: &[u64],
    replication: usize,
) -> Vec<u64> {
    let mut outside: Vec<u64> = active
        .iter()
        .copied()
        .filter(|id| !current.contains(id))
        .collect();
    let mut inside: Vec<u64> = active
        .iter()
        .copied()
        .filter(|id| current.contains(id))
        .collect();
    rng.shuffle(&mut outside);
    rng.shuffle(&mut inside);
    let most = replication.min(outside.len());
    let fresh = if most == 0 || rng.chance(75) {
        most
    } else {
        rng.range(1, most as u64) as usize
    };
    let mut to: Vec<u64> = outside.drain(..fresh).collect();
    // The rest from the current replicas, then (if they are too few) from the other nodes.
    for id in inside.into_iter().chain(outside) {
        if to.len() >= replication {
            break;
        }
        to.push(id);
    }
    rng.shuffle(&mut to);
    to
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Json {
        json!({
            "node_id": 2, "metadata_leader": 1,
            "nodes": [
                {"id": 1, "address": "a", "alive": true, "state": "active", "metadata_role": "voter"},
                {"id": 2, "address": "b", "alive": true, "state": "draining", "metadata_role": "learner"},
                {"id": 3, "address": "c", "alive": false, "state": "down"},
                {"id": 4, "address": "d", "alive": false, "state": "removed"},
                {"id": 5, "address": "e", "alive": true},
                {"id": 6, "address": "f", "alive": true, "state": "joining"}
            ],
            "partitions": [
                {"topic": "jepsen", "partition": 0, "leader": 1, "replicas": [1, 2, 3],
                 "high_watermark": 0, "log_start_offset": 0},
                {"topic": "jepsen", "partition": 1, "leader": null, "replicas": [1, 4, 4],
                 "high_watermark": 0, "log_start_offset": 0},
                {"topic": "other", "partition": 0, "leader": 1, "replicas": [1],
                 "high_watermark": 0, "log_start_offset": 0}
            ],
            "reassignments": [{"topic": "jepsen", "partition": 0, "from": [1, 2, 3], "to": [1, 5, 3]}]
        })
    }

    #[test]
    fn cluster_state_parses_with_and_without_node_states() {
        let v = parse_cluster(&sample()).unwrap_or_else(|| unreachable!());
        assert_eq!(v.answered_by, Some(2));
        assert_eq!(v.metadata_leader, Some(1));
        assert_eq!(v.moves, Some(1));
        assert_eq!(v.state(2), Some("draining"));
        assert_eq!(
            v.state(5),
            Some("active"),
            "no state: alive reads as active"
        );
        assert_eq!(v.active(), vec![1, 5]);
        assert!(v.has_left(4) && v.has_left(9) && !v.has_left(3));
        assert_eq!(v.partitions.len(), 3);
        assert_eq!(v.metadata_voters(), Some(vec![1]));
        let old = json!({"node_id": 1, "nodes": [{"id": 1, "alive": true}], "partitions": []});
        assert_eq!(parse_cluster(&old).and_then(|v| v.metadata_voters()), None);
        assert!(parse_cluster(&json!({"error": "x"})).is_none());
    }

    #[test]
    fn placement_problems_name_bad_partitions_only() {
        let v = parse_cluster(&sample()).unwrap_or_else(|| unreachable!());
        let p = v.placement_problems("jepsen", 3, &[]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|m| m.contains("jepsen/1")), "{p:?}");
        let p = v.placement_problems("jepsen", 3, &[3]);
        assert!(p.iter().any(|m| m.contains("jepsen/0")), "{p:?}");
    }

    #[test]
    fn planned_replicas_are_distinct_active_and_mostly_new() {
        let mut rng = Rng::new(11);
        let active = [1, 2, 3, 4, 5, 6];
        let mut all_new = 0;
        for _ in 0..400 {
            let to = plan_replicas(&mut rng, &[1, 2, 3], &active, 3);
            let set: BTreeSet<u64> = to.iter().copied().collect();
            assert_eq!(set.len(), 3, "{to:?}");
            assert!(to.iter().all(|id| active.contains(id)));
            let fresh = to.iter().filter(|id| ![1, 2, 3].contains(*id)).count();
            assert!(fresh >= 1, "{to:?}");
            all_new += usize::from(fresh == 3);
        }
        assert!(all_new > 250, "{all_new} of 400 moved every replica");
        // Five nodes: at most two new replicas; current replicas that are not active are
        // replaced by other nodes.
        let to = plan_replicas(&mut rng, &[1, 2, 3], &[1, 2, 3, 4, 5], 3);
        assert_eq!(to.len(), 3);
        let to = plan_replicas(&mut rng, &[1, 2, 9], &[1, 4, 5], 3);
        let set: BTreeSet<u64> = to.into_iter().collect();
        assert_eq!(set, BTreeSet::from([1, 4, 5]));
        let to = plan_replicas(&mut rng, &[1, 2, 3], &[1, 2, 3], 3);
        let set: BTreeSet<u64> = to.into_iter().collect();
        assert_eq!(set, BTreeSet::from([1, 2, 3]));
    }
}

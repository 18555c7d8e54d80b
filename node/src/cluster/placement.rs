//! Replica placement: spread replicas evenly over nodes, and spread preferred leaders too.

use std::collections::BTreeMap;

use raft_store::NodeId;

/// Current load per node: replicas hosted, and partitions whose preferred leader it is.
#[derive(Debug, Default, Clone)]
pub struct Load {
    /// Replicas per node.
    pub replicas: BTreeMap<NodeId, usize>,
    /// Preferred leaderships (first replica) per node.
    pub leaders: BTreeMap<NodeId, usize>,
}

/// Picks `rf` distinct nodes for one partition: the least-loaded nodes, ties broken by a
/// rotation seeded with `seed`; the chosen node with the fewest preferred leaderships goes
/// first. Updates `load`.
///
/// Deterministic: the same inputs give the same answer on every replica.
pub fn place_replicas(nodes: &[NodeId], load: &mut Load, rf: usize, seed: u64) -> Vec<NodeId> {
    let n = nodes.len().max(1);
    let rot = |i: usize| (i + n - (seed as usize % n)) % n;
    let mut candidates: Vec<(usize, usize, NodeId)> = nodes
        .iter()
        .enumerate()
        .map(|(i, id)| (load.replicas.get(id).copied().unwrap_or(0), rot(i), *id))
        .collect();
    candidates.sort_unstable();
    let mut chosen: Vec<(usize, usize, NodeId)> = candidates
        .into_iter()
        .take(rf)
        .map(|(_, r, id)| (load.leaders.get(&id).copied().unwrap_or(0), r, id))
        .collect();
    chosen.sort_unstable();
    let chosen: Vec<NodeId> = chosen.into_iter().map(|(_, _, id)| id).collect();
    for id in &chosen {
        *load.replicas.entry(*id).or_insert(0) += 1;
    }
    if let Some(first) = chosen.first() {
        *load.leaders.entry(*first).or_insert(0) += 1;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_distinct_and_balanced() {
        let nodes = [1, 2, 3, 4, 5];
        let mut load = Load::default();
        for g in 0..20 {
            let r = place_replicas(&nodes, &mut load, 3, g);
            let mut d = r.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        let spread = |m: &BTreeMap<NodeId, usize>| {
            (
                m.values().min().copied().unwrap_or(0),
                m.values().max().copied().unwrap_or(0),
            )
        };
        let (min, max) = spread(&load.replicas);
        assert!(max - min <= 1, "replicas {load:?}");
        assert_eq!(
            load.leaders.len(),
            5,
            "every node leads some partitions: {load:?}"
        );
        let (min, max) = spread(&load.leaders);
        // Greedy placement: leaders stay within two of each other.
        assert!(max - min <= 2, "leaders {load:?}");
    }

    #[test]
    fn three_nodes_rf3_rotate_leaders() {
        let mut load = Load::default();
        let firsts: Vec<NodeId> = (0..6)
            .map(|g| place_replicas(&[1, 2, 3], &mut load, 3, g)[0])
            .collect();
        for id in [1, 2, 3] {
            assert_eq!(firsts.iter().filter(|f| **f == id).count(), 2, "{firsts:?}");
        }
    }
}

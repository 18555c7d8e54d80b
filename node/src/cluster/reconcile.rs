//! Keeps the partition groups open on this node in line with the applied metadata, and the
//! transport's address book in line with the node registry.
//!
//! A group is opened when the metadata places a replica here (or a move in flight names this
//! node), and dropped (its data deleted) only when the metadata proves this node no longer
//! holds it: the group was deleted (group ids are never reused, so a group below `next_group`
//! that no topic holds is gone for good), or a completed move took its replica away (the move
//! completes only once the group's committed Raft configuration excludes this node). A group
//! this node has state for but does not yet know about (its metadata lags) is left alone.
//!
//! Only the replicas named when a group was created may initialize it, all with the same
//! member set. A replica added by a move never does (two different initial configurations
//! would be a split brain): it waits for the leader, and refuses to vote until it holds a log
//! ([`PartitionHandle::joined`]), so an empty replica can never elect a stale candidate.

use std::collections::{BTreeMap, BTreeSet};

use openraft::impls::BasicNode;
use raft_store::{GroupId, LogStore, NodeId, PartitionReader, PartitionStateMachine};
use tracing::Instrument;

use crate::node::Node;
use crate::partition::{PartitionHandle, PartitionRaft};
use crate::raft::network::GroupNetwork;

/// When a replica of a new group initializes it. The preferred replica (the first, which
/// placement rotates across nodes) does so at once and so becomes the first leader; the others
/// wait a few election timeouts and initialize only if no leader has reached them, so a group
/// whose preferred replica is down still starts. Identical initializations are safe.
pub fn initialize_delay(
    me: NodeId,
    replicas: &[NodeId],
    election_max_ms: u64,
) -> std::time::Duration {
    if replicas.first() == Some(&me) {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::from_millis(election_max_ms.saturating_mul(3))
    }
}

/// Runs until the node shuts down.
pub async fn run(node: Node) {
    let mut applied = node.inner.meta_applied.clone();
    loop {
        if let Err(e) = reconcile_once(&node).await {
            tracing::warn!(error = %e, "reconcile failed; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        node.inner
            .reconciled
            .store(true, std::sync::atomic::Ordering::Release);
        tokio::select! {
            _ = node.inner.cancel.cancelled() => return,
            r = applied.changed() => if r.is_err() { return },
        }
    }
}

async fn reconcile_once(node: &Node) -> Result<(), String> {
    let me = node.id();
    let meta = node.metadata();
    let addresses: BTreeMap<NodeId, String> = meta
        .cluster
        .member_nodes()
        .map(|(id, n)| (id, n.addr.clone()))
        .collect();
    let removed: Vec<NodeId> = meta
        .cluster
        .nodes
        .iter()
        .filter(|(_, n)| n.life == super::membership::NodeLife::Removed)
        .map(|(id, _)| *id)
        .collect();
    node.inner.transport.update_addresses(&addresses, &removed);
    let mut wanted: BTreeMap<GroupId, Vec<NodeId>> = BTreeMap::new();
    let mut live: BTreeSet<GroupId> = BTreeSet::new();
    for (topic, partition, p) in meta.all_groups() {
        live.insert(p.group);
        let moving = meta.cluster.moves.get(&p.group);
        let named = p.replicas.contains(&me)
            || moving.is_some_and(|m| m.from.contains(&me) || m.to.contains(&me));
        if named {
            wanted.insert(p.group, p.replicas.clone());
            if node.partitions().get(p.group).is_none() {
                // Only a creation-time replica of a never-reconfigured group may initialize.
                let founder =
                    p.replicas.contains(&me) && !meta.cluster.reconfigured.contains(&p.group);
                let span = tracing::info_span!("partition", topic = %topic.name, partition, group = p.group);
                open_group(node, p.group, &p.replicas, founder)
                    .instrument(span)
                    .await?;
            }
        }
    }
    // A live group this node no longer holds: a completed move took it away.
    let moved_away = |g: &GroupId| live.contains(g) && !wanted.contains_key(g);
    // Close groups that were deleted (or moved away) while open.
    for g in node.partitions().ids() {
        if !wanted.contains_key(&g) {
            if let Some(h) = node.partitions().remove(g) {
                tracing::info!(group = g, "closing partition group");
                let _ = h.raft.shutdown().await;
            }
            if g < meta.next_group && (!live.contains(&g) || moved_away(&g)) {
                tracing::info!(group = g, "dropping the data of a replica moved away");
                node.store().drop_group(g).map_err(|e| e.to_string())?;
            }
        }
    }
    // Drop leftover state of deleted groups (e.g. deleted while this node was down).
    let on_disk = node
        .store()
        .groups_with_state()
        .map_err(|e| e.to_string())?;
    for g in on_disk {
        if g != raft_store::METADATA_GROUP
            && g < meta.next_group
            && (!live.contains(&g) || moved_away(&g))
        {
            tracing::info!(
                group = g,
                "dropping data of a deleted or moved-away partition group"
            );
            node.store().drop_group(g).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

async fn open_group(
    node: &Node,
    group: GroupId,
    replicas: &[NodeId],
    founder: bool,
) -> Result<(), String> {
    let store = node.store().clone();
    let (sm, progress) =
        PartitionStateMachine::open(store.clone(), group).map_err(|e| e.to_string())?;
    let raft = PartitionRaft::new(
        node.id(),
        node.inner.raft_config.clone(),
        GroupNetwork::new(node.inner.transport.clone(), group),
        LogStore::new(store.clone(), group),
        sm,
    )
    .await
    .map_err(|e| e.to_string())?;
    if founder && !raft.is_initialized().await.unwrap_or(true) {
        let members: BTreeMap<NodeId, BasicNode> = replicas
            .iter()
            .map(|id| {
                let addr = node.inner.transport.addr_of(*id).unwrap_or_default();
                (*id, BasicNode { addr })
            })
            .collect();
        let delay = initialize_delay(node.id(), replicas, node.config().election_max_ms);
        let raft = raft.clone();
        let cancel = node.inner.cancel.clone();
        node.inner.tasks.spawn(
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                // Still empty: the preferred replica is down (or slow); start the group anyway.
                if !raft.is_initialized().await.unwrap_or(true) {
                    if let Err(e) = raft.initialize(members).await {
                        tracing::debug!(error = %e, "partition group already initialized");
                    }
                }
            }
            .in_current_span(),
        );
    }
    tracing::info!("opened partition group");
    node.partitions().insert(PartitionHandle {
        group,
        raft,
        progress,
        reader: PartitionReader::new(store, group),
        joined: !founder,
        quiet: Default::default(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::initialize_delay;
    use std::time::Duration;

    #[test]
    fn only_the_preferred_replica_initializes_at_once() {
        assert_eq!(initialize_delay(2, &[2, 3, 1], 1000), Duration::ZERO);
        assert_eq!(
            initialize_delay(3, &[2, 3, 1], 1000),
            Duration::from_secs(3)
        );
        assert_eq!(
            initialize_delay(1, &[2, 3, 1], 1000),
            Duration::from_secs(3)
        );
    }
}

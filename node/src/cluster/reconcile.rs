//! Keeps the partition groups open on this node in line with the applied metadata.
//!
//! A group is opened when the metadata places a replica here, and dropped (its data deleted)
//! only when the metadata proves the group was deleted: group ids are never reused, so a group
//! below `next_group` that no topic holds is gone for good. A group this node has state for but
//! does not yet know about (its metadata lags) is left alone.

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
    let mut wanted: BTreeMap<GroupId, Vec<NodeId>> = BTreeMap::new();
    let mut live: BTreeSet<GroupId> = BTreeSet::new();
    for (topic, partition, p) in meta.all_groups() {
        live.insert(p.group);
        if p.replicas.contains(&me) {
            wanted.insert(p.group, p.replicas.clone());
            if node.partitions().get(p.group).is_none() {
                let span = tracing::info_span!("partition", topic = %topic.name, partition, group = p.group);
                open_group(node, p.group, &p.replicas)
                    .instrument(span)
                    .await?;
            }
        }
    }
    // Close groups that were deleted (or moved away) while open.
    for g in node.partitions().ids() {
        if !wanted.contains_key(&g) {
            if let Some(h) = node.partitions().remove(g) {
                tracing::info!(group = g, "closing partition group");
                let _ = h.raft.shutdown().await;
            }
            if g < meta.next_group && !live.contains(&g) {
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
        if g != raft_store::METADATA_GROUP && g < meta.next_group && !live.contains(&g) {
            tracing::info!(group = g, "dropping data of a deleted partition group");
            node.store().drop_group(g).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

async fn open_group(node: &Node, group: GroupId, replicas: &[NodeId]) -> Result<(), String> {
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
    if !raft.is_initialized().await.unwrap_or(true) {
        let members: BTreeMap<NodeId, BasicNode> = replicas
            .iter()
            .map(|id| {
                let addr = node
                    .inner
                    .transport
                    .addr_of(*id)
                    .unwrap_or_default()
                    .to_string();
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

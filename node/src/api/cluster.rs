//! Cluster status and health endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use futures::future::join_all;
use std::collections::{BTreeMap, BTreeSet};

use openraft::async_runtime::WatchReceiver;
use raft_store::NodeId;
use raftka_protocol::{
    ClusterPartition, ClusterState, Health, LeaderRebalance, MetadataRole, NodeInfo, NodeState,
    StorageStats,
};

use crate::auth::Caller;
use crate::cluster::leader_balance::MAX_TAKEOVER_LAG;
use crate::cluster::membership::NodeLife;
use crate::cluster::metadata::{MetaState, PartitionMeta};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use crate::partition::PartitionStatus;
use raftka_protocol::{ErrorBody, Operation};

/// `GET /v1/cluster`: nodes, the metadata leader, and every partition's leader, replicas and
/// (from its leader) each follower's replication lag.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    operation_id = "cluster_state",
    responses(
        (status = 200, description = "The cluster as the answering node sees it", body = ClusterState),
        (status = 403, description = "`forbidden`: no `describe` on the cluster", body = ErrorBody),
    )
)]
pub async fn cluster(
    State(node): State<Node>,
    caller: Caller,
) -> Result<Json<ClusterState>, ApiError> {
    caller.cluster(Operation::Describe)?;
    let meta = node.metadata();
    let groups: Vec<_> = meta
        .all_groups()
        .map(|(t, i, p)| (t.name.clone(), i, p.clone()))
        .collect();
    let statuses = join_all(
        groups
            .iter()
            .map(|(_, _, p)| node.partition_status(p.group, &p.replicas)),
    )
    .await;
    let in_sync = |lag: &raftka_protocol::ReplicaLag| {
        lag.lag <= MAX_TAKEOVER_LAG
            && lag
                .last_ack_ms
                .is_some_and(|ms| ms <= node.config().election_max_ms)
    };
    let under_replicated = groups
        .iter()
        .zip(&statuses)
        .filter(|((_, _, p), s)| {
            let followers = p.replicas.len().saturating_sub(1);
            match (&s.leader, &s.replicas_lag) {
                (Some(_), Some(lags)) => lags.iter().filter(|l| in_sync(l)).count() < followers,
                _ => true,
            }
        })
        .count();
    let nodes = node_infos(&node, &meta, &groups, &statuses);
    let partitions: Vec<ClusterPartition> = groups
        .into_iter()
        .zip(statuses)
        .map(|((topic, partition, p), s)| ClusterPartition {
            topic,
            partition,
            leader: s.leader,
            replicas: p.replicas,
            high_watermark: s.high_watermark,
            log_start_offset: s.log_start_offset,
            replicas_lag: s.replicas_lag,
        })
        .collect();
    let stats = node.store().stats();
    Ok(Json(ClusterState {
        node_id: node.id(),
        metadata_leader: node.meta_leader(),
        nodes,
        partitions,
        under_replicated_partitions: Some(under_replicated),
        storage: Some(StorageStats {
            appends_synced: stats.appends_synced,
            wal_syncs: stats.wal_syncs,
        }),
        reassignments: Some(
            meta.cluster
                .moves_in_order()
                .map(|(_, m)| m.to_protocol())
                .collect(),
        ),
    }))
}

/// Every node: the registry's (removed ones included) and any peer it does not hold yet, with
/// its state (`down` for an active or draining node that does not answer probes), replica and
/// leadership counts and its role in the metadata group.
fn node_infos(
    node: &Node,
    meta: &MetaState,
    groups: &[(String, u32, PartitionMeta)],
    statuses: &[PartitionStatus],
) -> Vec<NodeInfo> {
    let mut addrs: BTreeMap<NodeId, String> = node.inner.transport.peers();
    for (id, n) in &meta.cluster.nodes {
        addrs.insert(*id, n.addr.clone());
    }
    let m = node.meta_raft().metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let members: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    addrs
        .into_iter()
        .map(|(id, address)| {
            let alive = node.is_alive(id);
            let life = meta.cluster.nodes.get(&id).map(|n| n.life);
            let state = match life {
                Some(NodeLife::Removed) => NodeState::Removed,
                Some(NodeLife::Joining) => NodeState::Joining,
                _ if !alive => NodeState::Down,
                Some(NodeLife::Draining) => NodeState::Draining,
                _ => NodeState::Active,
            };
            let replicas = groups
                .iter()
                .filter(|(_, _, p)| p.replicas.contains(&id))
                .count();
            let leaderships = statuses.iter().filter(|s| s.leader == Some(id)).count();
            let metadata_role = if voters.contains(&id) {
                MetadataRole::Voter
            } else if members.contains(&id) {
                MetadataRole::Learner
            } else {
                MetadataRole::None
            };
            NodeInfo {
                id,
                address,
                alive,
                state: Some(state),
                replicas: Some(u32::try_from(replicas).unwrap_or(u32::MAX)),
                leaderships: Some(u32::try_from(leaderships).unwrap_or(u32::MAX)),
                metadata_role: Some(metadata_role),
            }
        })
        .collect()
}

/// `POST /v1/cluster/rebalance-leaders`: hands every partition not led by its preferred
/// replica back to it, where that replica is alive and caught up.
#[utoipa::path(
    post,
    path = "/v1/cluster/rebalance-leaders",
    tag = "cluster",
    operation_id = "rebalance_leaders",
    responses(
        (status = 200, description = "What became of each partition not led by its preferred replica", body = LeaderRebalance),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
    )
)]
pub async fn rebalance_leaders(
    State(node): State<Node>,
    caller: Caller,
) -> Result<Json<LeaderRebalance>, ApiError> {
    caller.cluster(Operation::Alter)?;
    Ok(Json(node.rebalance_leaders().await))
}

/// `GET /healthz`: the process serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "`status: ok`", body = Health))
)]
pub async fn healthz(State(node): State<Node>) -> impl IntoResponse {
    (
        StatusCode::OK,
        Json(Health {
            status: "ok".into(),
            node_id: node.id(),
        }),
    )
}

/// `GET /readyz`: a metadata leader is known and local partitions are open.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "`status: ready`", body = Health),
        (status = 503, description = "`not_ready`: no metadata leader yet, or shutting down", body = ErrorBody),
    )
)]
pub async fn readyz(State(node): State<Node>) -> Result<Json<Health>, ApiError> {
    if node.is_ready() {
        Ok(Json(Health {
            status: "ready".into(),
            node_id: node.id(),
        }))
    } else {
        Err(ApiError::new(
            ErrorCode::NotReady,
            "the node is not ready: no metadata leader yet, or shutting down",
        ))
    }
}

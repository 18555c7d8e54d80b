//! The cluster controller: on the metadata leader, it carries out what the metadata records
//! about the cluster's shape, one safe step per tick, so a new leader (after a crash or a
//! restart) resumes where the old one stopped. Nothing here is remembered outside the metadata
//! and the Raft groups' own configurations.
//!
//! Each tick it:
//! 1. registers the initial cluster's nodes (the metadata group's members) in the registry;
//! 2. keeps the metadata group's membership in line with the registry: every member node
//!    follows it (as a learner at least), a joined node becomes active once caught up, and the
//!    voters are a bounded set (`--metadata-voters`) of live, caught-up nodes, a voter that is
//!    draining, removed or down for `--voter-repair-ms` being replaced when another can take
//!    its place;
//! 3. advances the oldest `--max-concurrent-moves` partition moves by one step each, on each
//!    partition's leader ([`crate::raft::membership::step`]), and records a move as complete
//!    once the group's committed configuration is its target;
//! 4. retires drained nodes: once a draining node holds nothing and no longer votes, it leaves
//!    the metadata group and is marked removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use openraft::async_runtime::WatchReceiver;
use openraft::impls::BasicNode;
use openraft::ChangeMembers;
use raft_store::{GroupId, NodeId};
use tokio::time::Instant;
use tracing::Instrument;

use super::leader_balance::MAX_TAKEOVER_LAG;
use super::membership::{ClusterError, MoveMeta, NodeLife};
use super::metadata::{MetaCommand, MetaResponse, MetaState};
use crate::error::{ApiError, ErrorCode};
use crate::forward::message::JoinReply;
use crate::forward::{InternalRequest, Leader};
use crate::node::Node;
use crate::raft::membership::{lag_of, step, MoveProgress};

/// How often the controller looks at the cluster.
const TICK: Duration = Duration::from_millis(500);
/// How long one move step may look for its partition's leader.
const STEP_DEADLINE: Duration = Duration::from_secs(15);

/// Runs until the node shuts down; acts only while this node leads the metadata group.
pub async fn run(node: Node) {
    loop {
        if node.meta_leader() == Some(node.id()) {
            if let Err(e) = tick(&node).await {
                tracing::debug!(error = %e.message, "controller tick");
            }
        }
        tokio::select! {
            _ = node.inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn tick(node: &Node) -> Result<(), ApiError> {
    let state = node.metadata();
    bootstrap_registry(node, &state).await?;
    metadata_members(node, &state).await?;
    drive_moves(node, &state).await;
    retire_drained(node, &state).await
}

/// The metadata group's member nodes (voters and learners) with their addresses.
fn meta_members(node: &Node) -> BTreeMap<NodeId, String> {
    let m = node.meta_raft().metrics().borrow_watched().clone();
    m.membership_config
        .membership()
        .nodes()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect()
}

async fn bootstrap_registry(node: &Node, state: &MetaState) -> Result<(), ApiError> {
    let missing: Vec<(NodeId, String)> = meta_members(node)
        .into_iter()
        .filter(|(id, _)| !state.cluster.nodes.contains_key(id))
        .collect();
    if !missing.is_empty() {
        node.controller_write(MetaCommand::BootstrapNodes { nodes: missing })
            .await?;
    }
    Ok(())
}

async fn metadata_members(node: &Node, state: &MetaState) -> Result<(), ApiError> {
    let raft = node.meta_raft();
    let m = raft.metrics().borrow_watched().clone();
    if m.membership_config.log_id() != m.committed_membership_config.log_id() {
        return Ok(());
    }
    let membership = m.membership_config.membership();
    let known: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let registry = &state.cluster.nodes;
    // Every joining or active node follows the metadata (a draining node that left it is
    // being retired: it does not come back).
    if let Some((id, n)) = registry.iter().find(|(id, n)| {
        matches!(n.life, NodeLife::Joining | NodeLife::Active) && !known.contains(id)
    }) {
        tracing::info!(node = id, addr = %n.addr, "adding node to the metadata group");
        raft.add_learner(
            *id,
            BasicNode {
                addr: n.addr.clone(),
            },
            false,
        )
        .await
        .map_err(|e| ApiError::new(ErrorCode::LeaderNotAvailable, e.to_string()))?;
        return Ok(());
    }
    // A joined node whose metadata caught up may hold replicas.
    for (id, n) in registry {
        if n.life == NodeLife::Joining
            && known.contains(id)
            && lag_of(&m, *id).is_some_and(|l| l <= MAX_TAKEOVER_LAG)
        {
            tracing::info!(node = id, "joined node caught up: active");
            node.controller_write(MetaCommand::ActivateNode { id: *id })
                .await?;
        }
    }
    let desired = desired_voters(node, state, &m, &voters, &known);
    if !desired.is_empty() && desired != voters {
        tracing::info!(?voters, ?desired, "changing the metadata voters");
        let addrs = registry
            .iter()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let desired: Vec<NodeId> = desired.into_iter().collect();
        step(raft, &desired, &addrs, MAX_TAKEOVER_LAG, true).await?;
        return Ok(());
    }
    // Removed nodes stop following the metadata.
    let gone: BTreeSet<NodeId> = known
        .iter()
        .filter(|id| {
            !voters.contains(id)
                && registry
                    .get(id)
                    .is_some_and(|n| n.life == NodeLife::Removed)
        })
        .copied()
        .collect();
    if !gone.is_empty() {
        tracing::info!(?gone, "removing nodes from the metadata group");
        raft.change_membership(ChangeMembers::RemoveNodes(gone), false)
            .await
            .map_err(|e| ApiError::new(ErrorCode::LeaderNotAvailable, e.to_string()))?;
    }
    Ok(())
}

/// The metadata voters the cluster should have: the current ones that may stay, topped up to
/// `--metadata-voters` with live, caught-up, active learners. A removed voter goes in any
/// case; a draining voter, or one down for longer than `--voter-repair-ms`, is replaced only
/// when another node can take its place (the voter set never shrinks for a drain or a
/// failure).
fn desired_voters(
    node: &Node,
    state: &MetaState,
    m: &openraft::RaftMetrics<raft_store::TypeConfig>,
    voters: &BTreeSet<NodeId>,
    known: &BTreeSet<NodeId>,
) -> BTreeSet<NodeId> {
    let me = node.id();
    let target = node.config().metadata_voters.max(1);
    let repair_after = Duration::from_millis(node.config().voter_repair_ms);
    let life = |id: &NodeId| state.cluster.nodes.get(id).map(|n| n.life);
    let removed = |id: &NodeId| life(id) == Some(NodeLife::Removed);
    let replaceable = |id: &NodeId| {
        life(id) == Some(NodeLife::Draining) || (*id != me && node.down_for(*id) > repair_after)
    };
    let staying: Vec<NodeId> = voters.iter().filter(|v| !removed(v)).copied().collect();
    let mut desired: BTreeSet<NodeId> = staying
        .iter()
        .filter(|v| !replaceable(v))
        .copied()
        .collect();
    let candidates = known.iter().filter(|id| {
        !voters.contains(id)
            && life(id) == Some(NodeLife::Active)
            && node.is_alive(**id)
            && lag_of(m, **id).is_some_and(|l| l <= MAX_TAKEOVER_LAG)
    });
    for c in candidates {
        if desired.len() >= target {
            break;
        }
        desired.insert(*c);
    }
    // Keep draining and down voters while nobody can replace them.
    for v in &staying {
        if desired.len() >= target.min(staying.len()) {
            break;
        }
        desired.insert(*v);
    }
    // Too many voters (a larger initial cluster): drop the highest ids but never this leader.
    while desired.len() > target {
        let Some(drop) = desired.iter().rev().find(|v| **v != me).copied() else {
            break;
        };
        desired.remove(&drop);
    }
    desired
}

async fn drive_moves(node: &Node, state: &MetaState) {
    let limit = node.config().max_concurrent_moves.max(1);
    let moves: Vec<(GroupId, MoveMeta)> = state
        .cluster
        .moves_in_order()
        .take(limit)
        .map(|(g, m)| (g, m.clone()))
        .collect();
    join_all(moves.into_iter().map(|(g, m)| {
        let span =
            tracing::info_span!("move", topic = %m.topic, partition = m.partition, group = g);
        drive_move(node, state, g, m).instrument(span)
    }))
    .await;
}

async fn drive_move(node: &Node, state: &MetaState, group: GroupId, m: MoveMeta) {
    if cfg!(feature = "canary-reassign-unsafe") {
        // canary: switch the replicas in the metadata at once, with no catch-up and no joint
        // consensus. The checker must catch what this loses.
        let _ = node
            .controller_write(MetaCommand::CompleteMove {
                group,
                replicas: m.to.clone(),
            })
            .await;
        return;
    }
    let addrs: BTreeMap<NodeId, String> =
        m.to.iter()
            .filter_map(|id| state.cluster.nodes.get(id).map(|n| (*id, n.addr.clone())))
            .collect();
    let mut candidates: Vec<NodeId> = m.from.clone();
    candidates.extend(m.to.iter().filter(|t| !m.from.contains(t)));
    let req = InternalRequest::MoveStep {
        group,
        target: m.to.clone(),
        addrs,
    };
    let deadline = Instant::now() + STEP_DEADLINE;
    let progress: Result<MoveProgress, ApiError> = node
        .call_leader(
            Leader::Partition {
                group,
                replicas: &candidates,
            },
            req,
            deadline,
        )
        .await;
    match progress {
        Ok(MoveProgress::Done) => {
            tracing::info!(to = ?m.to, "partition move complete");
            if let Err(e) = node
                .controller_write(MetaCommand::CompleteMove {
                    group,
                    replicas: m.to.clone(),
                })
                .await
            {
                tracing::warn!(error = %e.message, "recording a finished move");
            }
        }
        Ok(MoveProgress::Waiting(why)) => {
            tracing::info!(topic = %m.topic, partition = m.partition, %why, "partition move")
        }
        Err(e) => {
            tracing::debug!(topic = %m.topic, partition = m.partition, error = %e.message, "partition move step")
        }
    }
}

async fn retire_drained(node: &Node, state: &MetaState) -> Result<(), ApiError> {
    let raft = node.meta_raft();
    let m = raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let known: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    for (id, n) in &state.cluster.nodes {
        if n.life != NodeLife::Draining || state.cluster.hosts_anything(*id, &state.topics) {
            continue;
        }
        if voters.contains(id) {
            continue; // the voter repair takes it out first
        }
        if known.contains(id) {
            if m.membership_config.log_id() == m.committed_membership_config.log_id() {
                tracing::info!(node = id, "drained node leaves the metadata group");
                raft.change_membership(ChangeMembers::RemoveNodes([*id].into()), false)
                    .await
                    .map_err(|e| ApiError::new(ErrorCode::LeaderNotAvailable, e.to_string()))?;
            }
            return Ok(());
        }
        tracing::info!(node = id, "drained node removed");
        node.controller_write(MetaCommand::NodeLeft { id: *id })
            .await?;
    }
    Ok(())
}

impl Node {
    async fn controller_write(&self, cmd: MetaCommand) -> Result<MetaResponse, ApiError> {
        self.local_meta_write(cmd, self.config().request_timeout())
            .await
    }

    /// Registers a joining node, on the metadata leader: its id (given, or the next free one)
    /// and the addresses of every node.
    ///
    /// # Errors
    /// `not_leader`; `invalid_node_state` for a removed id; routing and commit errors.
    pub(crate) async fn local_join(
        &self,
        id: Option<NodeId>,
        addr: String,
    ) -> Result<JoinReply, ApiError> {
        let reserved: Vec<NodeId> = meta_members(self).into_keys().collect();
        let resp = self
            .controller_write(MetaCommand::RegisterNode { id, addr, reserved })
            .await?;
        match resp {
            MetaResponse::NodeRegistered { id } => {
                tracing::info!(node = id, "node registered");
                let mut nodes = self.inner.transport.peers();
                self.with_metadata(|s| {
                    for (nid, n) in s.cluster.member_nodes() {
                        nodes.insert(nid, n.addr.clone());
                    }
                });
                Ok(JoinReply { id, nodes })
            }
            MetaResponse::ClusterRefused(e) => Err(cluster_error(e)),
            other => Err(ApiError::internal(format!(
                "unexpected reply to a join: {other:?}"
            ))),
        }
    }
}

/// The API error for a refused cluster-shape command (nothing changed).
pub fn cluster_error(e: ClusterError) -> ApiError {
    let code = match &e {
        ClusterError::TopicNotFound(_) => ErrorCode::TopicNotFound,
        ClusterError::PartitionNotFound { .. } => ErrorCode::PartitionNotFound,
        ClusterError::NodeNotFound(_) => ErrorCode::NodeNotFound,
        ClusterError::InvalidNodeState { .. } => ErrorCode::InvalidNodeState,
        ClusterError::InvalidReplicas(_) => ErrorCode::InvalidReplicas,
        ClusterError::MoveInProgress { .. } => ErrorCode::ReassignmentInProgress,
        ClusterError::RegistryEmpty => ErrorCode::LeaderNotAvailable,
    };
    ApiError::new(code, e.to_string())
}

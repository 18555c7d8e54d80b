//! Cluster state and health: `GET /v1/cluster`, `/healthz`, `/readyz`.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A follower's replication progress as its partition leader sees it (openraft's replication
/// metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaLag {
    /// The follower's node id.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub node: NodeId,
    /// The last Raft log index the follower is known to hold, `None` when nothing yet.
    #[serde(default)]
    pub matched_index: Option<u64>,
    /// Raft log entries the follower is behind the leader's last log index (one entry per
    /// produce request and partition, whatever its record count).
    pub lag: u64,
    /// Milliseconds since the follower last acknowledged a heartbeat or an append; `None` when
    /// the leader's metrics hold no acknowledgement for it.
    #[serde(default)]
    pub last_ack_ms: Option<u64>,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    /// Node id.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub id: NodeId,
    /// `host:port`.
    pub address: String,
    /// Answered the answering node's health probe in the last 3 seconds.
    pub alive: bool,
    /// Where the node is in its life in the cluster; `down` when it is registered as
    /// active or draining but does not answer. `None` from servers before node states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NodeState>,
    /// Partition replicas placed on the node (moves in flight count for their target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Partitions this node leads right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaderships: Option<u32>,
    /// The node's part in the metadata group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_role: Option<MetadataRole>,
}

/// A node's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Registered with `--join`; its metadata replica is still catching up.
    Joining,
    /// Serving and eligible for new replicas.
    Active,
    /// Being decommissioned: its replicas are moving off; it gets no new ones.
    Draining,
    /// Registered active or draining but not answering health probes.
    Down,
    /// Gone for good (drained, or removed as dead); its id is never reused.
    Removed,
}

impl NodeState {
    /// The state's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Active => "active",
            Self::Draining => "draining",
            Self::Down => "down",
            Self::Removed => "removed",
        }
    }
}

/// A node's part in the metadata group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MetadataRole {
    /// Votes in the metadata group (one of the bounded voter set).
    Voter,
    /// Follows the metadata group without voting.
    Learner,
    /// Not (or no longer) in the metadata group.
    None,
}

/// One partition in the cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Leader, or `None` during an election.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub leader: Option<NodeId>,
    /// Replicas.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u64>))]
    pub replicas: Vec<NodeId>,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start offset.
    pub log_start_offset: u64,
    /// Each follower's replication lag, from the partition's leader; `None` when no leader
    /// answered (or the server is older and does not report it).
    #[serde(default)]
    pub replicas_lag: Option<Vec<ReplicaLag>>,
}

/// The answering node's storage counters (group commit at work: many appends per fsync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageStats {
    /// Appends made durable since start.
    pub appends_synced: u64,
    /// WAL fsyncs since start.
    pub wal_syncs: u64,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterState {
    /// The node that answered.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub node_id: NodeId,
    /// The node leading the cluster metadata, or `None` during an election.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub metadata_leader: Option<NodeId>,
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
    /// Every partition of every topic.
    pub partitions: Vec<ClusterPartition>,
    /// Partitions not fully replicated right now (Kafka's `UnderReplicatedPartitions`): no
    /// leader, or a follower that has not acknowledged its leader within an election timeout or
    /// is more than 64 log entries behind. `0` means every replica of every partition is in
    /// sync; a rolling restart waits for it before the next node.
    #[serde(default)]
    pub under_replicated_partitions: Option<usize>,
    /// The answering node's storage counters.
    #[serde(default)]
    pub storage: Option<StorageStats>,
    /// Partition moves in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignments: Option<Vec<Reassignment>>,
}

/// `GET /healthz` (`status: ok`) and `GET /readyz` (`status: ready`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// The node that answered.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub node_id: NodeId,
}

/// What became of one partition's move to its preferred leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeaderMoveOutcome {
    /// The preferred replica leads now.
    Moved,
    /// The preferred replica already led.
    AlreadyPreferred,
    /// The preferred replica is not alive or not caught up: nothing was changed.
    TargetNotReady,
    /// The transfer was asked for but did not complete in time; the group elects as usual.
    TimedOut,
    /// No leader could be asked (an election, an unreachable node).
    NoLeader,
}

/// One partition in a leader rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaderMove {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The leader before.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub from: Option<NodeId>,
    /// The preferred replica (the first of the partition's replicas).
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub to: NodeId,
    /// What happened.
    pub outcome: LeaderMoveOutcome,
}

/// `POST /v1/cluster/rebalance-leaders`: every partition not led by its preferred replica is
/// handed to it when that replica is alive and caught up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaderRebalance {
    /// Partitions already led by their preferred replica.
    pub already_preferred: usize,
    /// The partitions that were not, and what became of each.
    pub moves: Vec<LeaderMove>,
}

/// `POST /v1/cluster/reassignments`: move one partition's replicas to `replicas` (the first
/// is the preferred leader). Kafka's `kafka-reassign-partitions` for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReassignRequest {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The new replica set, preferred leader first: 1-7 distinct nodes.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u64>, min_items = 1, max_items = 7))]
    pub replicas: Vec<NodeId>,
}

/// A partition move: recorded in the metadata group, carried out by its partition's Raft
/// leader (new replicas join as learners, catch up, then the voters switch through joint
/// consensus, then the old replicas are removed and their data deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The replicas when the move was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u64>))]
    pub from: Vec<NodeId>,
    /// The replicas it moves to.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u64>))]
    pub to: Vec<NodeId>,
}

/// `GET /v1/cluster/reassignments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reassignments {
    /// Moves in flight, in the order they are carried out.
    pub reassignments: Vec<Reassignment>,
    /// At most this many moves run at once (`--max-concurrent-moves`).
    pub max_concurrent: u32,
}

/// `POST /v1/cluster/rebalance` (optional body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RebalanceRequest {
    /// Plan at most this many moves, at least 1 (default: every move needed).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_moves: Option<u32>,
}

/// The answer to a rebalance, decommission or dead-node removal: the moves it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MovePlan {
    /// The moves recorded (they run in the background, a bounded number at a time).
    pub moves: Vec<Reassignment>,
    /// For a node operation: the node's state afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_state: Option<NodeState>,
}

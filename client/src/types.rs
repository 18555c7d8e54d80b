//! Request and reply types of the v1 API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A record to produce.
#[derive(Debug, Clone, Serialize, Default)]
pub struct NewRecord {
    /// Optional key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// JSON value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Binary value, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Explicit partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Timestamp, ms since the epoch (default: the leader's clock at append).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}

impl NewRecord {
    /// A record with a JSON value.
    pub fn json(value: serde_json::Value) -> Self {
        Self {
            value: Some(value),
            ..Default::default()
        }
    }
    /// A record whose value is a JSON string.
    pub fn string(value: impl Into<String>) -> Self {
        Self::json(serde_json::Value::String(value.into()))
    }
    /// A record with a binary value (sent base64-encoded, fetched back in `value_base64`).
    pub fn binary(value: &[u8]) -> Self {
        use base64::Engine;
        Self {
            value_base64: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        }
    }
    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }
    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the partition.
    pub fn with_partition(mut self, p: u32) -> Self {
        self.partition = Some(p);
        self
    }
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub struct RecordOffset {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// A fetched record.
#[derive(Debug, Clone, Deserialize)]
pub struct FetchedRecord {
    /// Offset.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// Key.
    pub key: Option<String>,
    /// JSON value (null for binary values).
    pub value: serde_json::Value,
    /// Binary value, base64.
    #[serde(default)]
    pub value_base64: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A fetch reply.
#[derive(Debug, Clone, Deserialize)]
pub struct FetchResponse {
    /// Records.
    pub records: Vec<FetchedRecord>,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start offset.
    pub log_start_offset: u64,
}

/// One partition of a topic description.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PartitionInfo {
    /// Partition.
    pub partition: u32,
    /// Leader.
    pub leader: Option<u64>,
    /// Replicas.
    pub replicas: Vec<u64>,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start offset.
    pub log_start_offset: u64,
    /// Each follower's replication lag, from the partition's leader; `None` when no leader
    /// answered (or the server is older and does not report it).
    #[serde(default)]
    pub replicas_lag: Option<Vec<ReplicaLag>>,
}

/// A follower's replication progress as its partition leader sees it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReplicaLag {
    /// The follower's node id.
    pub node: u64,
    /// The last Raft log index the follower is known to hold.
    #[serde(default)]
    pub matched_index: Option<u64>,
    /// Raft log entries the follower is behind the leader (one entry per produce request and
    /// partition, whatever its record count).
    pub lag: u64,
    /// Milliseconds since the follower last acknowledged the leader; `None` when the leader
    /// holds no acknowledgement for it.
    #[serde(default)]
    pub last_ack_ms: Option<u64>,
}

/// A topic description.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Replication factor.
    pub replication_factor: u32,
    /// Configs.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// Partitions.
    pub partitions: Vec<PartitionInfo>,
}

/// One entry of the topic list.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u32,
}

/// The topic list.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TopicList {
    /// Topics.
    pub topics: Vec<TopicSummary>,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: u64,
    /// `host:port`.
    pub address: String,
    /// Answered the answering node's health probe in the last 3 seconds.
    pub alive: bool,
}

/// One partition in the cluster state.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClusterPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Leader, or `None` during an election.
    pub leader: Option<u64>,
    /// Replicas.
    pub replicas: Vec<u64>,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start offset.
    pub log_start_offset: u64,
    /// Each follower's replication lag, from the partition's leader; `None` when no leader
    /// answered (or the server is older and does not report it).
    #[serde(default)]
    pub replicas_lag: Option<Vec<ReplicaLag>>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClusterState {
    /// The node that answered.
    pub node_id: u64,
    /// The node leading the cluster metadata, or `None` during an election.
    pub metadata_leader: Option<u64>,
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
    /// Every partition of every topic.
    pub partitions: Vec<ClusterPartition>,
}

/// A partition's offsets.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct PartitionOffsets {
    /// Log start offset.
    pub earliest: u64,
    /// High watermark: the offset the next record will get.
    pub latest: u64,
}

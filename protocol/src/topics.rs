//! Topic administration: `POST/GET /v1/topics`, `GET/DELETE /v1/topics/{t}`,
//! `GET/PATCH /v1/topics/{t}/configs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::ReplicaLag;
use crate::NodeId;

/// `POST /v1/topics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTopicRequest {
    /// Topic name: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 249,
            pattern = "^[a-zA-Z0-9._-]+$",
            example = "orders"
        )
    )]
    pub name: String,
    /// Partition count, 1-1024 (default 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024, example = 3))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Replication factor (default: 3, or the node count if smaller).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, example = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
    /// Topic configs; values may be strings or numbers.
    #[serde(default)]
    pub configs: BTreeMap<String, serde_json::Value>,
}

/// `PATCH /v1/topics/{t}/configs`: configs to set; a `null` value resets one to its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({"configs": {"retention.ms": "604800000", "retention.bytes": null}}))
)]
#[serde(deny_unknown_fields)]
pub struct AlterConfigsRequest {
    /// Config name to value (string or number), or `null`; at least one.
    pub configs: BTreeMap<String, serde_json::Value>,
}

/// `PATCH /v1/topics/{t}`: grow the topic to `partitions` partitions (never shrink), as
/// Kafka's CreatePartitions. Keyed records placed by the default partitioner go to other
/// partitions after the change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlterTopicRequest {
    /// The new partition count, above the current one (at most 1024).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024))]
    pub partitions: u32,
}

/// One partition in a topic description (`GET /v1/topics/{t}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// Current leader, or `None` during an election.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub leader: Option<NodeId>,
    /// Replica nodes.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u64>))]
    pub replicas: Vec<NodeId>,
    /// High watermark.
    pub high_watermark: u64,
    /// First readable offset.
    pub log_start_offset: u64,
    /// Each follower's replication lag, from the partition leader; `None` when no leader
    /// answered (or the server is older and does not report it).
    #[serde(default)]
    pub replicas_lag: Option<Vec<ReplicaLag>>,
}

/// A topic description: `GET /v1/topics/{t}`, and the reply of create and alter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Replication factor.
    pub replication_factor: u32,
    /// Configs as set (defaults are not listed; see [`TopicConfigs`]).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// Partitions.
    pub partitions: Vec<PartitionDescription>,
}

/// One entry of the topic list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u32,
}

/// `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicList {
    /// Topics, by name.
    pub topics: Vec<TopicSummary>,
}

/// `GET /v1/topics/{t}/configs`: the configs as set and the effective values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicConfigs {
    /// Topic name.
    pub name: String,
    /// Configs as set on the topic.
    pub configs: BTreeMap<String, String>,
    /// Every known config's effective value, defaults included (`-1` means unlimited).
    pub effective: BTreeMap<String, serde_json::Value>,
}

/// `DELETE /v1/topics/{t}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicDeleted {
    /// Topic name.
    pub name: String,
    /// Always `true`.
    pub deleted: bool,
}

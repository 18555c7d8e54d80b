//! Wire types (DTOs) of the public v1 API.

use std::collections::BTreeMap;

use raft_store::NodeId;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::partition::ReplicaLag;

/// `POST /v1/topics`.
#[derive(Debug, Deserialize)]
pub struct CreateTopicRequest {
    /// Topic name.
    pub name: String,
    /// Partition count (default 1).
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Replication factor (default: 3, or the node count if smaller).
    #[serde(default)]
    pub replication_factor: Option<u32>,
    /// Topic configs; values may be strings or numbers.
    #[serde(default)]
    pub configs: BTreeMap<String, serde_json::Value>,
}

/// One partition in a topic description.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// Current leader, if any.
    pub leader: Option<NodeId>,
    /// Replica nodes.
    pub replicas: Vec<NodeId>,
    /// High watermark.
    pub high_watermark: u64,
    /// First readable offset.
    pub log_start_offset: u64,
    /// Each follower's replication lag, from the partition leader; `null` when no leader
    /// answered.
    #[serde(default)]
    pub replicas_lag: Option<Vec<ReplicaLag>>,
}

/// `PATCH /v1/topics/{t}/configs`: configs to set; a `null` value resets one to its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterConfigsRequest {
    /// Config name to value (string or number), or `null`.
    pub configs: BTreeMap<String, serde_json::Value>,
}

/// A topic description.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Replication factor.
    pub replication_factor: u32,
    /// Configs.
    pub configs: BTreeMap<String, String>,
    /// Partitions.
    pub partitions: Vec<PartitionDescription>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    // A present `"value": null` is a JSON null value (a tombstone), not a missing value.
    Box::<RawValue>::deserialize(d).map(Some)
}

/// One record of a produce request.
#[derive(Debug, Deserialize)]
pub struct ProduceRecord {
    /// Optional key (UTF-8).
    #[serde(default)]
    pub key: Option<String>,
    /// A JSON value, stored as its exact text.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Box<RawValue>>,
    /// A binary value, base64 (standard alphabet, padded).
    #[serde(default)]
    pub value_base64: Option<String>,
    /// Optional headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Explicit partition.
    #[serde(default)]
    pub partition: Option<i64>,
    /// CreateTime in ms since the epoch; the leader's time when absent.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
    /// Idempotent producers: this record's sequence number in its partition.
    #[serde(default)]
    pub sequence: Option<u64>,
}

/// `POST /v1/topics/{t}/records`.
#[derive(Debug, Deserialize)]
pub struct ProduceRequest {
    /// The records.
    pub records: Vec<ProduceRecord>,
    /// Idempotent producers: a stable id (e.g. a UUID); records then carry `sequence`.
    #[serde(default)]
    pub producer_id: Option<String>,
}

/// One record's placement in a produce reply.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct RecordOffset {
    /// Partition.
    pub partition: u32,
    /// Offset; absent when this record's partition failed.
    pub offset: Option<u64>,
    /// The record was already in the log (a retried idempotent request): original offset.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub duplicate: bool,
    /// Error code when this record's partition failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// Error name when this record's partition failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A fetched record.
#[derive(Debug, Serialize)]
pub struct FetchedRecordDto {
    /// Offset.
    pub offset: u64,
    /// Timestamp.
    pub timestamp_ms: i64,
    /// Key (lossy UTF-8), or null.
    pub key: Option<String>,
    /// The JSON value, or null for binary values.
    pub value: Option<Box<RawValue>>,
    /// Base64 of a binary value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
}

/// `GET …/records`.
#[derive(Debug, Serialize)]
pub struct FetchResponseDto {
    /// Records.
    pub records: Vec<FetchedRecordDto>,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start offset.
    pub log_start_offset: u64,
}

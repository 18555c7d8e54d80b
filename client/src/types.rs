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
}

impl NewRecord {
    /// A record with a JSON value.
    pub fn json(value: serde_json::Value) -> Self {
        Self {
            value: Some(value),
            ..Default::default()
        }
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
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
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

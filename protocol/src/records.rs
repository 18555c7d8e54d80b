//! Produce and fetch: `POST /v1/topics/{t}/records`, `GET …/partitions/{p}/records`,
//! `GET …/partitions/{p}/offsets`.
//!
//! A record's value is a type parameter `V`: the server keeps a JSON value as its exact text
//! (`serde_json::value::RawValue`), the client works with a parsed `serde_json::Value`. The
//! JSON on the wire is the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A present `"value": null` is a JSON null value (a tombstone), not a missing value.
fn present<'de, D: Deserializer<'de>, V: Deserialize<'de>>(d: D) -> Result<Option<V>, D::Error> {
    V::deserialize(d).map(Some)
}

/// One record of a produce request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
// The schema is the wire shape whatever `V` is (any JSON value), hence no bound on `V`.
#[cfg_attr(feature = "openapi", schema(bound = ""))]
pub struct ProduceRecord<V = serde_json::Value> {
    /// Optional key (UTF-8); records with the same key go to the same partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A JSON value, stored as its exact text. `Some(null)` is a null value.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<V>,
    /// A binary value, base64 (standard alphabet, padded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Optional headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Explicit partition. Signed on the wire so a negative one gets `partition_not_found`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i64>,
    /// CreateTime in ms since the epoch; the leader's time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Idempotent producers: this record's sequence number in its partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl ProduceRecord<serde_json::Value> {
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
}

impl<V> ProduceRecord<V> {
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
        self.partition = Some(i64::from(p));
        self
    }
}

/// `POST /v1/topics/{t}/records`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({"records": [
        {"key": "alice", "value": {"total": 42}},
        {"value_base64": "AAEC", "headers": {"source": "web"}}
    ]}))
)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
// The schema is the wire shape whatever `V` is (any JSON value), hence no bound on `V`.
#[cfg_attr(feature = "openapi", schema(bound = ""))]
pub struct ProduceRequest<V = serde_json::Value> {
    /// The records; those of one partition get consecutive offsets in this order.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Vec<ProduceRecord>, min_items = 1, max_items = 10000)
    )]
    pub records: Vec<ProduceRecord<V>>,
    /// Idempotent producers: a stable id (e.g. a UUID); records then carry `sequence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<String>,
}

/// One record's placement in a produce reply (and in the `offsets` of a partial failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProducedRecord {
    /// Partition.
    pub partition: u32,
    /// Offset; `None` when this record's partition failed.
    pub offset: Option<u64>,
    /// The record was already in the log (a retried idempotent request): original offset.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Error code when this record's partition failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// Error name when this record's partition failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The reply of a successful produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProduceReply {
    /// One entry per record, in request order.
    pub offsets: Vec<ProducedRecord>,
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordOffset {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// A fetched record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
// The schema is the wire shape whatever `V` is (any JSON value), hence no bound on `V`.
#[cfg_attr(feature = "openapi", schema(bound = ""))]
pub struct FetchedRecord<V = serde_json::Value> {
    /// Offset.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// Key (lossy UTF-8), or null.
    pub key: Option<String>,
    /// The JSON value; null for binary values.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: V,
    /// Base64 of a binary value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `GET /v1/topics/{t}/partitions/{p}/records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
// The schema is the wire shape whatever `V` is (any JSON value), hence no bound on `V`.
#[cfg_attr(feature = "openapi", schema(bound = ""))]
pub struct FetchResponse<V = serde_json::Value> {
    /// Records, ascending by offset.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<FetchedRecord>))]
    pub records: Vec<FetchedRecord<V>>,
    /// High watermark when the read was made.
    pub high_watermark: u64,
    /// Log start offset when the read was made.
    pub log_start_offset: u64,
}

/// `GET /v1/topics/{t}/partitions/{p}/offsets[?timestamp_ms=T]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// Log start offset.
    pub earliest: u64,
    /// High watermark: the offset the next record will get.
    pub latest: u64,
    /// With `timestamp_ms`: the lookup and its answer.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<TimestampLookup>,
}

/// The answer to a timestamp lookup, as Kafka's ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimestampLookup {
    /// The time asked for, ms since the epoch.
    pub timestamp_ms: i64,
    /// The first offset whose record timestamp is at or after it; `None` when no record is
    /// that recent.
    pub offset: Option<u64>,
}

/// The OpenAPI schema of [`PartitionOffsets`]. Derived on the struct itself, the flattened
/// `Option<TimestampLookup>` would become an `allOf` that no reply without a lookup matches.
#[cfg(feature = "openapi")]
mod partition_offsets_schema {
    use std::borrow::Cow;

    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;

    /// The wire shape of [`super::PartitionOffsets`].
    #[derive(utoipa::ToSchema)]
    #[allow(dead_code)] // only its schema is used
    struct Shape {
        /// Log start offset.
        earliest: u64,
        /// High watermark: the offset the next record will get.
        latest: u64,
        /// With `timestamp_ms`: the time asked for, ms since the epoch.
        #[schema(required = false, nullable = false)]
        timestamp_ms: Option<i64>,
        /// With `timestamp_ms`: the first offset whose record timestamp is at or after it;
        /// `null` when no record is that recent.
        #[schema(required = false)]
        offset: Option<u64>,
    }

    impl utoipa::PartialSchema for super::PartitionOffsets {
        fn schema() -> RefOr<Schema> {
            let mut schema = <Shape as utoipa::PartialSchema>::schema();
            if let RefOr::T(Schema::Object(o)) = &mut schema {
                o.description = Some(
                    "A partition's offsets (`GET /v1/topics/{t}/partitions/{p}/offsets`), and \
                     with `?timestamp_ms=T` the answer to that lookup."
                        .to_string(),
                );
            }
            schema
        }
    }

    impl utoipa::ToSchema for super::PartitionOffsets {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("PartitionOffsets")
        }
    }
}

//! Reading: `GET …/records` (with long polling) and `GET …/offsets`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use base64::Engine;
use raft_store::ValueKind;
use raftka_protocol::{PartitionOffsets, TimestampLookup};
use serde_json::value::RawValue;

use super::extract::{parse_partition, ApiPath, ApiQuery};
use crate::auth::Caller;
use crate::cluster::metadata::PartitionMeta;
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use crate::partition::FetchRequest;
use raftka_protocol::Operation;

/// A fetch reply as the server writes it: JSON values as their stored text, `null` for binary.
type FetchResponseDto = raftka_protocol::FetchResponse<Option<Box<RawValue>>>;
/// One record of a [`FetchResponseDto`].
type FetchedRecordDto = raftka_protocol::FetchedRecord<Option<Box<RawValue>>>;

/// Default `max_records`.
pub const DEFAULT_MAX_RECORDS: u64 = 500;
/// Largest `max_records`.
pub const MAX_MAX_RECORDS: u64 = 10_000;
/// Default `max_bytes`.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// Largest `max_bytes`.
pub const MAX_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Longest long poll.
pub const MAX_WAIT_MS: u64 = 30_000;

async fn partition_of(node: &Node, topic: &str, raw: &str) -> Result<PartitionMeta, ApiError> {
    let p = parse_partition(raw)?;
    let t = node.topic(topic).await?;
    t.partitions.get(p as usize).cloned().ok_or_else(|| {
        ApiError::new(
            ErrorCode::PartitionNotFound,
            format!(
                "topic '{topic}' has no partition {p} (it has {})",
                t.partitions.len()
            ),
        )
    })
}

fn bounded(q: &ApiQuery, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    let v = q.u64(name, ErrorCode::BadRequest)?.unwrap_or(default);
    if v == 0 || v > max {
        return Err(ApiError::bad_request(format!("'{name}' must be 1..={max}")));
    }
    Ok(v)
}

/// `GET /v1/topics/{t}/partitions/{p}/records`.
pub async fn records(
    State(node): State<Node>,
    caller: Caller,
    ApiPath((topic, partition)): ApiPath<(String, String)>,
    q: ApiQuery,
) -> Result<Json<FetchResponseDto>, ApiError> {
    caller.topic(&topic, Operation::Read)?;
    let offset = q.u64("offset", ErrorCode::InvalidOffset)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidOffset,
            "the 'offset' parameter is required",
        )
    })?;
    let req = FetchRequest {
        offset,
        max_records: bounded(&q, "max_records", DEFAULT_MAX_RECORDS, MAX_MAX_RECORDS)? as usize,
        max_bytes: bounded(&q, "max_bytes", DEFAULT_MAX_BYTES, MAX_MAX_BYTES)? as usize,
        max_wait_ms: q
            .u64("max_wait_ms", ErrorCode::BadRequest)?
            .unwrap_or(0)
            .min(MAX_WAIT_MS),
    };
    let p = partition_of(&node, &topic, &partition).await?;
    let resp = node.fetch(p.group, &p.replicas, req).await?;
    let bytes = resp
        .records
        .iter()
        .map(|(_, r)| r.approx_size() as u64)
        .sum();
    node.metrics()
        .fetched(&topic, resp.records.len() as u64, bytes);
    let records = resp
        .records
        .into_iter()
        .map(|(offset, r)| {
            let (value, value_base64) = match r.value_kind {
                ValueKind::Json => (
                    RawValue::from_string(String::from_utf8_lossy(&r.value).into_owned()).ok(),
                    None,
                ),
                ValueKind::Binary => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(&r.value)),
                ),
            };
            FetchedRecordDto {
                offset,
                timestamp_ms: r.timestamp_ms,
                key: r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                value,
                value_base64,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect::<BTreeMap<_, _>>(),
            }
        })
        .collect();
    Ok(Json(FetchResponseDto {
        records,
        high_watermark: resp.high_watermark,
        log_start_offset: resp.log_start_offset,
    }))
}

/// `GET /v1/topics/{t}/partitions/{p}/offsets[?timestamp_ms=T]`: the earliest and latest
/// offsets, and with `timestamp_ms` the first offset whose record timestamp is at or after T
/// (`null` when no record is that recent), as Kafka's ListOffsets.
pub async fn offsets(
    State(node): State<Node>,
    caller: Caller,
    ApiPath((topic, partition)): ApiPath<(String, String)>,
    q: ApiQuery,
) -> Result<Json<PartitionOffsets>, ApiError> {
    caller.topic(&topic, Operation::Describe)?;
    let timestamp = q.i64("timestamp_ms", ErrorCode::BadRequest)?;
    let p = partition_of(&node, &topic, &partition).await?;
    if let Some(t) = timestamp {
        let r = node.offset_for_timestamp(p.group, &p.replicas, t).await?;
        return Ok(Json(PartitionOffsets {
            earliest: r.log_start_offset,
            latest: r.high_watermark,
            lookup: Some(TimestampLookup {
                timestamp_ms: t,
                offset: r.offset,
            }),
        }));
    }
    let s = node.partition_status(p.group, &p.replicas).await;
    if s.leader.is_none() {
        return Err(ApiError::new(
            ErrorCode::LeaderNotAvailable,
            "the partition has no leader right now",
        ));
    }
    Ok(Json(PartitionOffsets {
        earliest: s.log_start_offset,
        latest: s.high_watermark,
        lookup: None,
    }))
}

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
use raftka_protocol::{ErrorBody, Operation};

/// A fetch reply as the server writes it: JSON values as their stored text, `null` for binary.
type FetchResponseDto = raftka_protocol::FetchResponse<Option<Box<RawValue>>>;
/// One record of a [`FetchResponseDto`].
type FetchedRecordDto = raftka_protocol::FetchedRecord<Option<Box<RawValue>>>;

/// The `{partition}` path parameter, for the OpenAPI document. Anything but a partition number
/// of the topic is `404 partition_not_found`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PartitionParam {
    /// The partition's number.
    #[param(example = 0)]
    pub partition: u32,
}

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

/// Reads a partition from an offset (`GET /v1/topics/{t}/partitions/{p}/records`); with
/// `max_wait_ms`, a read at the high watermark waits that long for a record (long poll).
#[utoipa::path(
    get,
    path = "/v1/topics/{topic}/partitions/{partition}/records",
    tag = "records",
    operation_id = "fetch",
    params(
        super::topics::TopicParam,
        PartitionParam,
        ("offset" = u64, Query, description = "The first offset to read", example = 0),
        ("max_records" = Option<u64>, Query, description = "At most this many records (default 500)", minimum = 1, maximum = 10000),
        ("max_bytes" = Option<u64>, Query, description = "About at most this many bytes of records, at least one record (default 1 MiB)", minimum = 1, maximum = 67108864),
        ("max_wait_ms" = Option<u64>, Query, description = "At the high watermark, wait up to this long for a record (default 0; larger values count as 30000)", maximum = 30000),
    ),
    responses(
        (status = 200, description = "The records, ascending by offset", body = raftka_protocol::FetchResponse),
        (status = 400, description = "`invalid_offset` (`offset` missing, negative or not a number) or `bad_request` (another parameter out of range)", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found` or `partition_not_found`", body = ErrorBody),
        (status = 416, description = "`offset_out_of_range`: outside `[log_start_offset, high_watermark]`, both given in the body", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/topics/{topic}/partitions/{partition}/offsets",
    tag = "records",
    operation_id = "partition_offsets",
    params(
        super::topics::TopicParam,
        PartitionParam,
        ("timestamp_ms" = Option<i64>, Query, description = "Also find the first offset whose record timestamp is at or after this time (ms since the epoch)"),
    ),
    responses(
        (status = 200, description = "The partition's offsets", body = PartitionOffsets),
        (status = 400, description = "`bad_request`: `timestamp_ms` is not an integer", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `describe` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found` or `partition_not_found`", body = ErrorBody),
    )
)]
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

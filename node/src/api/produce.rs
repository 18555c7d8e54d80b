//! `POST /v1/topics/{t}/records`: validate, place (partition), send to the leaders, reply with
//! offsets. Every error carries `outcome` (see [`crate::api`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use futures::future::join_all;
use raft_store::{ProducerSequence, Record, RecordBatch, ValueKind};

use raftka_protocol::partitioner::partition_for_key;
use raftka_protocol::{ProduceReply, ProducedRecord};
use serde_json::value::RawValue;
use tracing::Instrument;

use super::extract::{ApiJson, ApiPath};
use crate::auth::Caller;
use crate::cluster::metadata::TopicMeta;
use crate::cluster::topic_config::TopicConfig;
use crate::error::{ApiError, ErrorCode, Outcome};
use crate::node::Node;
use crate::partition::Appended;
use raftka_protocol::{ErrorBody, Operation};

/// A produce request as the server reads it: JSON values kept as their exact text.
type ProduceRequest = raftka_protocol::ProduceRequest<Box<RawValue>>;
/// One record of a [`ProduceRequest`].
type ProduceRecord = raftka_protocol::ProduceRecord<Box<RawValue>>;

/// Most records in one produce request.
pub const MAX_RECORDS_PER_REQUEST: usize = 10_000;
/// Longest accepted key, in bytes.
pub const MAX_KEY_BYTES: usize = 16 * 1024;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn invalid(i: usize, msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidRecord, format!("record {i}: {msg}")).for_write()
}

/// Turns one request record into a stored record, or says what is wrong with it.
fn to_record(
    i: usize,
    r: ProduceRecord,
    now: i64,
    max_record_bytes: usize,
) -> Result<Record, ApiError> {
    let (value, value_kind) = match (r.value, r.value_base64) {
        (Some(v), None) => (Bytes::from(v.get().to_owned()), ValueKind::Json),
        (None, Some(b)) => (
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| invalid(i, format!("value_base64 is not valid base64: {e}")))?,
            ),
            ValueKind::Binary,
        ),
        (None, None) => return Err(invalid(i, "missing 'value' (or 'value_base64')")),
        (Some(_), Some(_)) => {
            return Err(invalid(
                i,
                "give either 'value' or 'value_base64', not both",
            ))
        }
    };
    if let Some(k) = &r.key {
        if k.len() > MAX_KEY_BYTES {
            return Err(invalid(
                i,
                format!("key is longer than {MAX_KEY_BYTES} bytes"),
            ));
        }
    }
    let record = Record {
        timestamp_ms: r.timestamp_ms.unwrap_or(now),
        key: r.key.map(|k| Bytes::from(k.into_bytes())),
        value,
        value_kind,
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k, Bytes::from(v.into_bytes())))
            .collect(),
    };
    if record.approx_size() > max_record_bytes {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("record {i} is larger than the {max_record_bytes}-byte record limit"),
        )
        .for_write());
    }
    Ok(record)
}

/// Longest accepted producer id or idempotency key.
pub const MAX_IDEMPOTENCY_ID_BYTES: usize = 256;

/// The request's `Idempotency-Key` header, validated.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_ID_BYTES => Ok(Some(k.to_string())),
        _ => Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_ID_BYTES} visible ASCII characters"
        ))
        .for_write()),
    }
}

/// Checks an idempotent producer's sequences: every record has one, and within a partition
/// they are consecutive in request order. Returns the first sequence of each partition.
fn batch_sequences(
    producer_id: Option<&str>,
    sequences: &[(u32, Option<u64>)],
) -> Result<BTreeMap<u32, u64>, ApiError> {
    let mut first: BTreeMap<u32, u64> = BTreeMap::new();
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, (p, seq)) in sequences.iter().enumerate() {
        match (producer_id, seq) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "record {i}: 'sequence' needs a request-level 'producer_id'"
                ))
                .for_write())
            }
            (Some(_), None) => {
                return Err(ApiError::bad_request(format!(
                    "record {i}: an idempotent request needs a 'sequence' on every record"
                ))
                .for_write())
            }
            (Some(_), Some(s)) => {
                if let Some(want) = next.get(p) {
                    if s != want {
                        return Err(ApiError::new(
                            ErrorCode::OutOfOrderSequence,
                            format!("record {i}: sequence {s} for partition {p}, expected {want} (consecutive within a partition)"),
                        )
                        .for_write());
                    }
                }
                first.entry(*p).or_insert(*s);
                next.insert(*p, s + 1);
            }
        }
    }
    Ok(first)
}

/// `POST /v1/topics/{t}/records`: validate the request, place its records in partition
/// batches, send each batch to its partition's leader, and reply with every record's offset.
///
/// A failure answers in the error shape; when some partitions failed, its `offsets` gives
/// every record's placement: an offset for those written, an error for the others.
#[utoipa::path(
    post,
    path = "/v1/topics/{topic}/records",
    tag = "records",
    operation_id = "produce",
    params(
        super::topics::TopicParam,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request return the original offsets (marked `duplicate`) instead of writing again: 1-256 visible ASCII characters"),
    ),
    request_body = raftka_protocol::ProduceRequest,
    responses(
        (status = 200, description = "Every record's partition and offset, in request order", body = ProduceReply),
        (status = 400, description = "`bad_request`: malformed JSON, a bad `Idempotency-Key`, `producer_id` or `sequence`", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `write` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found` or `partition_not_found` (an explicit partition the topic lacks)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body, a record or the record count is over its limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_record`, `empty_batch` or `out_of_order_sequence`; nothing was written", body = ErrorBody),
    )
)]
pub async fn produce(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(topic_name): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ProduceRequest>,
) -> Result<Response, ApiError> {
    caller.topic(&topic_name, Operation::Write)?;
    let idempotency_key = validate(&headers, &req)?;
    let topic = node.topic(&topic_name).await?;
    let placed = place(&node, &topic, req, idempotency_key)?;
    let sizes: BTreeMap<u32, (u64, u64)> = placed
        .batches
        .iter()
        .map(|(p, b)| {
            let bytes = b.records.iter().map(|r| r.approx_size() as u64).sum();
            (*p, (b.records.len() as u64, bytes))
        })
        .collect();
    let outcome = send(&node, &topic, placed.batches).await;
    // Acknowledged records only; a retried batch the log already held counts again, as the
    // producer sent it again.
    let (records, bytes) = outcome
        .iter()
        .filter(|(_, r)| r.is_ok())
        .filter_map(|(p, _)| sizes.get(p))
        .fold((0, 0), |(r, b), (r2, b2)| (r + r2, b + b2));
    if records > 0 {
        node.metrics().produced(&topic.name, records, bytes);
    }
    Ok(reply(&placed.positions, outcome))
}

/// Request-level checks; returns the validated `Idempotency-Key`.
fn validate(headers: &HeaderMap, req: &ProduceRequest) -> Result<Option<String>, ApiError> {
    let idempotency_key = idempotency_key(headers)?;
    if let Some(p) = &req.producer_id {
        if p.is_empty() || p.len() > MAX_IDEMPOTENCY_ID_BYTES {
            return Err(ApiError::bad_request(format!(
                "producer_id must be 1-{MAX_IDEMPOTENCY_ID_BYTES} bytes"
            )));
        }
    }
    if req.records.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyBatch,
            "the request holds no records",
        ));
    }
    if req.records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_RECORDS_PER_REQUEST} records per request"),
        ));
    }
    Ok(idempotency_key)
}

/// A request's records placed in one batch per partition.
struct Placed {
    /// Per partition, the batch to append.
    batches: BTreeMap<u32, RecordBatch>,
    /// Per record in request order, its partition and its index in that partition's batch.
    positions: Vec<(u32, u64)>,
}

/// Picks each record's partition (explicit, by key, or round robin), turns it into a stored
/// record, and checks an idempotent producer's sequences. Everything is validated before
/// anything is written: a bad record fails the whole request.
fn place(
    node: &Node,
    topic: &TopicMeta,
    req: ProduceRequest,
    idempotency_key: Option<String>,
) -> Result<Placed, ApiError> {
    let n = topic.partitions.len() as u32;
    let now = now_ms();
    // The topic's `max.message.bytes` may lower the node's own record limit.
    let max_record_bytes =
        TopicConfig::from_map(&topic.configs).record_limit(node.config().max_record_bytes);
    let mut positions = Vec::with_capacity(req.records.len());
    let mut sequences = Vec::with_capacity(req.records.len());
    let mut batches: BTreeMap<u32, RecordBatch> = BTreeMap::new();
    for (i, r) in req.records.into_iter().enumerate() {
        let partition = match (r.partition, r.key.as_deref()) {
            (Some(p), _) if p < 0 || p >= i64::from(n) => {
                return Err(ApiError::new(
                    ErrorCode::PartitionNotFound,
                    format!("record {i}: partition {p} does not exist (topic has {n})"),
                ))
            }
            (Some(p), _) => p as u32,
            (None, Some(k)) => partition_for_key(k.as_bytes(), n),
            (None, None) => (node.next_round_robin() % u64::from(n)) as u32,
        };
        sequences.push((partition, r.sequence));
        let record = to_record(i, r, now, max_record_bytes)?;
        let batch = batches.entry(partition).or_default();
        positions.push((partition, batch.records.len() as u64));
        batch.records.push(record);
    }
    let first_sequences = batch_sequences(req.producer_id.as_deref(), &sequences)?;
    for (p, batch) in batches.iter_mut() {
        batch.idempotency_key = idempotency_key.clone();
        if let (Some(id), Some(seq)) = (&req.producer_id, first_sequences.get(p)) {
            batch.producer = Some(ProducerSequence {
                producer_id: id.clone(),
                sequence: *seq,
            });
        }
    }
    Ok(Placed { batches, positions })
}

/// Sends every partition's batch to its leader, concurrently, each in its `partition` span.
async fn send(
    node: &Node,
    topic: &TopicMeta,
    batches: BTreeMap<u32, RecordBatch>,
) -> BTreeMap<u32, Result<Appended, ApiError>> {
    join_all(batches.into_iter().map(|(p, batch)| {
        let meta = &topic.partitions[p as usize];
        let span = tracing::debug_span!("partition", topic = %topic.name, partition = p);
        async move { (p, node.produce(meta.group, &meta.replicas, batch).await) }.instrument(span)
    }))
    .await
    .into_iter()
    .collect()
}

/// The reply: every record's offset, or, when a partition failed, the first error with every
/// record's placement. The request is `not_applied` only if nothing was written and every
/// failure is itself `not_applied`; otherwise a blind retry could duplicate records.
fn reply(positions: &[(u32, u64)], outcome: BTreeMap<u32, Result<Appended, ApiError>>) -> Response {
    let offsets: Vec<ProducedRecord> = positions
        .iter()
        .map(|(p, i)| {
            let mut r = ProducedRecord {
                partition: *p,
                offset: None,
                duplicate: false,
                error_code: None,
                error: None,
            };
            match outcome.get(p) {
                Some(Ok(a)) => {
                    r.offset = Some(a.base_offset + i);
                    r.duplicate = a.duplicate;
                }
                Some(Err(e)) => {
                    r.error_code = Some(e.code.number());
                    r.error = Some(e.code.name().to_string());
                }
                None => {}
            }
            r
        })
        .collect();
    let failures: Vec<&ApiError> = outcome.values().filter_map(|r| r.as_ref().err()).collect();
    let Some(first) = failures.first() else {
        return Json(ProduceReply { offsets }).into_response();
    };
    let any_written = outcome.values().any(|r| r.is_ok());
    let all_not_applied = failures.iter().all(|e| e.is_not_applied());
    let mut err = (*first).clone();
    err.outcome = Some(if !any_written && all_not_applied {
        Outcome::NotApplied
    } else {
        Outcome::Unknown
    });
    if any_written {
        err.message = format!("some partitions failed: {}", err.message);
    }
    err.into_response_with_offsets(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> ProduceRecord {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn json_value_is_kept_verbatim() {
        let r = to_record(0, rec(r#"{"key":"k","value":{"a": [1, 2]}}"#), 5, 1 << 20).unwrap();
        assert_eq!(&r.value[..], br#"{"a": [1, 2]}"#);
        assert_eq!(r.value_kind, ValueKind::Json);
        assert_eq!(r.timestamp_ms, 5);
    }

    #[test]
    fn null_value_is_a_value_and_missing_value_is_an_error() {
        let r = to_record(0, rec(r#"{"value":null}"#), 0, 1 << 20).unwrap();
        assert_eq!(&r.value[..], b"null");
        let e = to_record(0, rec(r#"{"key":"k"}"#), 0, 1 << 20).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRecord);
    }

    #[test]
    fn base64_values_decode_and_bad_base64_is_rejected() {
        let r = to_record(0, rec(r#"{"value_base64":"AAEC"}"#), 0, 1 << 20).unwrap();
        assert_eq!(&r.value[..], &[0, 1, 2]);
        assert_eq!(r.value_kind, ValueKind::Binary);
        assert_eq!(
            to_record(0, rec(r#"{"value_base64":"!!"}"#), 0, 1 << 20)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRecord
        );
        assert_eq!(
            to_record(0, rec(r#"{"value":1,"value_base64":"AA=="}"#), 0, 1 << 20)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRecord
        );
    }

    #[test]
    fn oversized_record_is_413() {
        let e = to_record(
            0,
            rec(r#"{"value":"0123456789012345678901234567890123456789"}"#),
            0,
            20,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        assert_eq!(e.outcome, Some(Outcome::NotApplied));
    }
}

//! The producer against a scripted in-memory transport: batching, placement, ordering,
//! backpressure and, above all, which failures are retried, and how idempotent batches carry
//! their producer id and sequences across retries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::transport::{BoxFuture, Transport};
use super::*;
use crate::client::ProduceAck;
use crate::error::{ErrorCode, Outcome};

/// What the fake server does with the next request, instead of just applying it.
enum Fault {
    /// Answer with this error, without applying the request.
    Refuse(Error),
    /// Apply the request, then answer with this error (a reply lost after the write).
    ApplyThenFail(Error),
    /// Apply the request, then answer only after this long (longer than the client waits).
    ApplyThenHang(Duration),
}

/// A batch the fake server remembers for deduplication, as the partition state machine does.
#[derive(Clone, Copy)]
struct Remembered {
    sequence: u64,
    count: u64,
    base_offset: u64,
}

/// A log per partition in memory, with the server's idempotence rules (the last 5 batches per
/// producer id and partition; a repeat gets its original offsets, a gap is refused). Scripted
/// faults apply, in order, to the next requests; `delay` slows every produce down.
#[derive(Default)]
struct FakeServer {
    partitions: u32,
    logs: Mutex<HashMap<u32, Vec<serde_json::Value>>>,
    dedup: Mutex<HashMap<(u32, String), Vec<Remembered>>>,
    scripted: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<serde_json::Value>>,
    count_lookups: AtomicUsize,
    in_flight: Mutex<HashMap<u32, usize>>,
    max_in_flight_per_partition: AtomicUsize,
    delay: Duration,
}

impl FakeServer {
    fn new(partitions: u32) -> Arc<Self> {
        Arc::new(Self {
            partitions,
            ..Self::default()
        })
    }
    fn with_delay(partitions: u32, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            partitions,
            delay,
            ..Self::default()
        })
    }
    /// The next request is refused with `e` (not applied).
    fn script(&self, e: Error) {
        self.fault(Fault::Refuse(e));
    }
    fn fault(&self, f: Fault) {
        self.scripted.lock().unwrap().push_back(f);
    }
    fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().unwrap().clone()
    }
    fn log(&self, p: u32) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .get(&p)
            .cloned()
            .unwrap_or_default()
    }
    fn values(&self, p: u32) -> Vec<u64> {
        self.log(p)
            .iter()
            .map(|r| r["value"].as_u64().unwrap())
            .collect()
    }

    /// Applies one request to partition `p` as the server's state machine would.
    fn apply(&self, p: u32, req: &serde_json::Value) -> Result<ProduceAck, Error> {
        let records = req["records"].as_array().unwrap().clone();
        let mut logs = self.logs.lock().unwrap();
        let log = logs.entry(p).or_default();
        let n = records.len() as u64;
        let offsets = |base: u64| {
            (0..n)
                .map(|i| RecordOffset {
                    partition: p,
                    offset: base + i,
                })
                .collect()
        };
        if let Some(id) = req["producer_id"].as_str() {
            let first = records[0]["sequence"].as_u64().expect("a sequence");
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r["sequence"].as_u64(), Some(first + i as u64));
            }
            let mut dedup = self.dedup.lock().unwrap();
            let seen = dedup.entry((p, id.to_string())).or_default();
            if let Some(b) = seen.iter().find(|b| b.sequence == first && b.count == n) {
                return Ok(ProduceAck {
                    offsets: offsets(b.base_offset),
                    duplicate: true,
                });
            }
            if let Some(last) = seen.last() {
                if first != last.sequence + last.count {
                    return Err(Error::Server {
                        status: 422,
                        code: 42205,
                        name: "out_of_order_sequence".into(),
                        message: format!("expected {}", last.sequence + last.count),
                        retriable: false,
                        outcome: Some(Outcome::NotApplied),
                        body: serde_json::json!({}),
                    });
                }
            }
            seen.push(Remembered {
                sequence: first,
                count: n,
                base_offset: log.len() as u64,
            });
            if seen.len() > 5 {
                seen.remove(0);
            }
        } else {
            assert!(
                records.iter().all(|r| r.get("sequence").is_none()),
                "sequences without a producer id"
            );
        }
        let base = log.len() as u64;
        for r in records {
            assert_eq!(r["partition"].as_u64(), Some(u64::from(p)));
            log.push(r);
        }
        Ok(ProduceAck {
            offsets: offsets(base),
            duplicate: false,
        })
    }
}

impl Transport for FakeServer {
    fn partition_count<'a>(&'a self, _topic: &'a str) -> BoxFuture<'a, Result<u32, Error>> {
        self.count_lookups.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(self.partitions) })
    }

    fn produce<'a>(
        &'a self,
        _topic: &'a str,
        _partition: u32,
        body: bytes::Bytes,
    ) -> BoxFuture<'a, Result<ProduceAck, Error>> {
        Box::pin(async move {
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
            self.requests.lock().unwrap().push(req.clone());
            let p = req["records"][0]["partition"].as_u64().unwrap() as u32;
            {
                let mut f = self.in_flight.lock().unwrap();
                let n = f.entry(p).or_default();
                *n += 1;
                self.max_in_flight_per_partition
                    .fetch_max(*n, Ordering::SeqCst);
            }
            tokio::time::sleep(self.delay).await;
            *self.in_flight.lock().unwrap().get_mut(&p).unwrap() -= 1;
            let fault = self.scripted.lock().unwrap().pop_front();
            match fault {
                None => self.apply(p, &req),
                Some(Fault::Refuse(e)) => Err(e),
                Some(Fault::ApplyThenFail(e)) => {
                    self.apply(p, &req)?;
                    Err(e)
                }
                Some(Fault::ApplyThenHang(d)) => {
                    let reply = self.apply(p, &req);
                    tokio::time::sleep(d).await;
                    reply
                }
            }
        })
    }
}

/// A server error with `name`'s code from the error table.
fn server_error(name: &str, retriable: bool, outcome: Outcome) -> Error {
    let code = ErrorCode::from_name(name).expect("a known error name");
    Error::Server {
        status: code.http_status(),
        code: code.number(),
        name: name.into(),
        message: format!("scripted {name}"),
        retriable,
        outcome: Some(outcome),
        body: serde_json::json!({}),
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

fn producer(server: &Arc<FakeServer>, config: ProducerConfig) -> Producer {
    Producer::with_transport(server.clone(), config)
}

fn config() -> ProducerConfig {
    ProducerConfig {
        linger: Duration::from_millis(2),
        retry: fast_retry(),
        ..ProducerConfig::default()
    }
}

fn rec(key: &str, n: u64) -> NewRecord {
    NewRecord::json(serde_json::json!(n)).with_key(key)
}

#[tokio::test]
async fn keyed_records_go_to_the_partitioners_partition_in_send_order() {
    let server = FakeServer::new(3);
    let p = producer(&server, config());
    let keys = ["alice", "dave", "carol"];
    let mut deliveries = Vec::new();
    for n in 0..300u64 {
        let key = keys[(n % 3) as usize];
        deliveries.push((key, p.send("t", rec(key, n)).await.unwrap()));
    }
    let mut next = HashMap::new();
    for (key, d) in deliveries {
        let at = d.await.unwrap();
        assert_eq!(at.partition, partition_for_key(key.as_bytes(), 3));
        let expected = next.entry(at.partition).or_insert(0u64);
        assert_eq!(at.offset, *expected, "offsets follow send order");
        *expected += 1;
    }
    for part in 0..3 {
        let values: Vec<u64> = server
            .log(part)
            .iter()
            .map(|r| r["value"].as_u64().unwrap())
            .collect();
        assert_eq!(values.len(), 100);
        assert!(values.windows(2).all(|w| w[0] < w[1]), "per-key order kept");
    }
    assert_eq!(
        server.count_lookups.load(Ordering::SeqCst),
        1,
        "count cached"
    );
}

#[tokio::test]
async fn batches_are_cut_at_max_records_and_sent_one_at_a_time_per_partition() {
    let server = FakeServer::with_delay(1, Duration::from_millis(5));
    let p = producer(
        &server,
        ProducerConfig {
            batch_max_records: 10,
            ..config()
        },
    );
    let mut deliveries = Vec::new();
    for n in 0..95 {
        deliveries.push(p.send("t", rec("k", n)).await.unwrap());
    }
    for (n, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, n as u64);
    }
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| r["records"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
    assert_eq!(server.max_in_flight_per_partition.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn batches_are_cut_at_max_bytes() {
    let server = FakeServer::new(1);
    let p = producer(
        &server,
        ProducerConfig {
            batch_max_bytes: 200,
            ..config()
        },
    );
    let value = "x".repeat(80);
    let mut deliveries = Vec::new();
    for _ in 0..6 {
        let r = NewRecord::string(value.clone()).with_partition(0);
        deliveries.push(p.send("t", r).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    for r in server.requests() {
        let n = r["records"].as_array().unwrap().len();
        assert!(n <= 2, "a ~90-byte record twice fills 200 bytes: got {n}");
    }
}

#[tokio::test]
async fn a_lone_record_is_sent_after_the_linger_time() {
    let server = FakeServer::new(1);
    let p = producer(
        &server,
        ProducerConfig {
            linger: Duration::from_millis(30),
            ..config()
        },
    );
    let started = std::time::Instant::now();
    let at = p.send("t", rec("k", 1)).await.unwrap().await.unwrap();
    assert_eq!(at.offset, 0);
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn flush_sends_without_waiting_for_the_linger_time() {
    let server = FakeServer::new(2);
    let p = producer(
        &server,
        ProducerConfig {
            linger: Duration::from_secs(3600),
            ..config()
        },
    );
    let d1 = p.send("t", rec("a", 1).with_partition(0)).await.unwrap();
    let d2 = p.send("t", rec("b", 2).with_partition(1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), p.flush())
        .await
        .expect("flush returns")
        .unwrap();
    assert_eq!(server.requests().len(), 2);
    d1.await.unwrap();
    d2.await.unwrap();
}

#[tokio::test]
async fn keyless_records_stick_to_a_partition_until_its_batch_is_sealed() {
    let server = FakeServer::new(3);
    let p = producer(
        &server,
        ProducerConfig {
            batch_max_records: 4,
            ..config()
        },
    );
    let mut deliveries = Vec::new();
    for n in 0..12 {
        let r = NewRecord::json(serde_json::json!(n));
        deliveries.push(p.send("t", r).await.unwrap());
    }
    let mut parts = Vec::new();
    for d in deliveries {
        parts.push(d.await.unwrap().partition);
    }
    assert_eq!(parts, vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
}

#[tokio::test]
async fn a_not_applied_error_is_retried_and_then_succeeds() {
    let server = FakeServer::new(1);
    server.script(server_error(
        "leader_not_available",
        true,
        Outcome::NotApplied,
    ));
    server.script(server_error("not_leader", true, Outcome::NotApplied));
    let p = producer(&server, config());
    let at = p.send("t", rec("k", 7)).await.unwrap().await.unwrap();
    assert_eq!(at.offset, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "two failures, then success");
    assert_eq!(requests[0], requests[2], "the same batch is resent");
    assert_eq!(server.log(0).len(), 1, "stored once");
}

#[tokio::test]
async fn without_idempotence_an_unknown_outcome_is_never_retried_and_reaches_the_caller() {
    let server = FakeServer::new(1);
    server.script(server_error(
        "write_outcome_unknown",
        true,
        Outcome::Unknown,
    ));
    let p = producer(&server, config().idempotence(false));
    assert_eq!(p.producer_id(), None);
    let d1 = p.send("t", rec("k", 1)).await.unwrap();
    let d2 = p.send("t", rec("k", 2)).await.unwrap();
    for d in [d1, d2] {
        let e = d.await.unwrap_err();
        assert_eq!(e.outcome(), Outcome::Unknown);
        assert_eq!(e.error_code(), Some(ErrorCode::WriteOutcomeUnknown));
    }
    assert_eq!(server.requests().len(), 1, "no silent resend");
    // The partition keeps working for later records.
    let at = p.send("t", rec("k", 3)).await.unwrap().await.unwrap();
    assert_eq!(at.offset, 0);
}

#[tokio::test]
async fn without_idempotence_a_transport_error_after_sending_is_not_retried() {
    let server = FakeServer::new(1);
    server.script(Error::Transport("connection reset".into()));
    let p = producer(&server, config().idempotence(false));
    let e = p.send("t", rec("k", 1)).await.unwrap().await.unwrap_err();
    assert_eq!(e.outcome(), Outcome::Unknown);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn not_applied_retries_are_bounded() {
    let server = FakeServer::new(1);
    for _ in 0..10 {
        server.script(server_error(
            "leader_not_available",
            true,
            Outcome::NotApplied,
        ));
    }
    let p = producer(&server, config());
    let e = p.send("t", rec("k", 1)).await.unwrap().await.unwrap_err();
    assert_eq!(e.outcome(), Outcome::NotApplied);
    assert_eq!(server.requests().len(), 4, "max_attempts = 4");
}

#[tokio::test]
async fn a_non_retriable_error_fails_at_once() {
    let server = FakeServer::new(1);
    server.script(server_error(
        "payload_too_large",
        false,
        Outcome::NotApplied,
    ));
    let p = producer(&server, config());
    let e = p.send("t", rec("k", 1)).await.unwrap().await.unwrap_err();
    assert_eq!(e.error_code(), Some(ErrorCode::PayloadTooLarge));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn partition_not_found_refreshes_the_partition_count() {
    let server = FakeServer::new(2);
    server.script(Error::Server {
        status: 404,
        code: 40402,
        name: "partition_not_found".into(),
        message: "no partition 5".into(),
        retriable: false,
        outcome: Some(Outcome::NotApplied),
        body: serde_json::json!({}),
    });
    let p = producer(&server, config());
    let e = p
        .send("t", rec("k", 1).with_partition(5))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), Some(ErrorCode::PartitionNotFound));
    p.send("t", rec("k", 2)).await.unwrap().await.unwrap();
    assert_eq!(server.count_lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_partial_failure_gives_committed_records_their_offsets() {
    let server = FakeServer::new(1);
    server.script(Error::Server {
        status: 503,
        code: 50301,
        name: "leader_not_available".into(),
        message: "some partitions failed".into(),
        retriable: true,
        outcome: Some(Outcome::Unknown),
        body: serde_json::json!({"offsets": [
            {"partition": 0, "offset": 41},
            {"partition": 0, "offset": null, "error_code": 50301, "error": "leader_not_available"}
        ]}),
    });
    // Without idempotence: an idempotent producer would resend the batch (a batch has one
    // partition, so the real server never answers it with a partial failure anyway).
    let p = producer(
        &server,
        ProducerConfig {
            linger: Duration::from_secs(3600),
            ..config().idempotence(false)
        },
    );
    let d1 = p.send("t", rec("k", 1)).await.unwrap();
    let d2 = p.send("t", rec("k", 2)).await.unwrap();
    p.flush().await.unwrap();
    assert_eq!(d1.await.unwrap().offset, 41);
    assert_eq!(d2.await.unwrap_err().outcome(), Outcome::Unknown);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn send_waits_while_the_in_flight_byte_budget_is_used_up() {
    let server = FakeServer::with_delay(1, Duration::from_millis(300));
    let p = producer(
        &server,
        ProducerConfig {
            max_in_flight_bytes: 100,
            linger: Duration::ZERO,
            ..config()
        },
    );
    let value = "x".repeat(60);
    let first = p.send("t", NewRecord::string(value.clone())).await.unwrap();
    // The first record holds ~70 of 100 bytes until its (slow) batch is answered.
    let second = tokio::time::timeout(
        Duration::from_millis(100),
        p.send("t", NewRecord::string(value.clone())),
    )
    .await;
    assert!(second.is_err(), "send must wait for budget");
    first.await.unwrap();
    let second = p.send("t", NewRecord::string(value)).await.unwrap();
    second.await.unwrap();
}

#[tokio::test]
async fn invalid_records_are_refused_before_queueing() {
    let server = FakeServer::new(1);
    let p = producer(&server, config());
    let e = p.send("t", NewRecord::default()).await.unwrap_err();
    assert!(matches!(e, Error::Config(_)));
    assert_eq!(e.outcome(), Outcome::NotApplied);
    let long_key = NewRecord::string("v").with_key("k".repeat(MAX_KEY_BYTES + 1));
    assert!(p.send("t", long_key).await.is_err());
    // The wire's partition is signed; a negative one never reaches the server.
    let negative = NewRecord {
        partition: Some(-1),
        ..NewRecord::string("v")
    };
    let e = p.send("t", negative).await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_record_sequence_set_by_the_caller_is_replaced_by_the_batch_sequence() {
    let server = FakeServer::new(1);
    let p = producer(&server, config());
    let r = NewRecord {
        sequence: Some(99),
        ..NewRecord::string("v").with_partition(0)
    };
    p.send("t", r).await.unwrap().await.unwrap();
    let requests = server.requests();
    let record = &requests[0]["records"][0];
    assert_eq!(record["sequence"], 0, "{record}");
}

#[test]
fn encoded_batches_carry_the_partition_on_every_record() {
    let sem = Arc::new(Semaphore::new(100));
    let (reply, _rx) = oneshot::channel();
    let pending = Pending {
        json: br#"{"key":"a","value":1}"#.to_vec(),
        reply,
        permit: sem.try_acquire_many_owned(1).unwrap(),
    };
    let batch = accumulator::Batch {
        tp: accumulator::TopicPartition {
            topic: Arc::from("t"),
            partition: 4,
        },
        seq: 0,
        opened_at: std::time::Instant::now(),
        bytes: pending.json.len(),
        records: vec![pending],
    };
    let body = dispatcher::encode(&batch, None);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"records":[{"partition":4,"key":"a","value":1}]}"#
    );
    let idempotence = dispatcher::Idempotence {
        producer_id: "p-1".into(),
        sequence: 7,
    };
    let body = dispatcher::encode(&batch, Some(&idempotence));
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"producer_id":"p-1","records":[{"partition":4,"sequence":7,"key":"a","value":1}]}"#
    );
}

// ------------------------------------------------------------------------------------------
// Idempotence
// ------------------------------------------------------------------------------------------

/// `(producer_id, first sequence, record count)` of every request, in order.
fn sequences(server: &FakeServer) -> Vec<(String, u64, usize)> {
    server
        .requests()
        .iter()
        .map(|r| {
            let records = r["records"].as_array().unwrap();
            (
                r["producer_id"].as_str().unwrap_or("").to_string(),
                records[0]["sequence"].as_u64().unwrap_or(u64::MAX),
                records.len(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_producer_is_idempotent_by_default_with_a_random_uuid_like_id() {
    let a = producer(&FakeServer::new(1), ProducerConfig::default());
    let b = producer(&FakeServer::new(1), ProducerConfig::default());
    let id = a.producer_id().expect("idempotent by default");
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(&id[14..15], "4", "version 4 layout");
    assert_ne!(a.producer_id(), b.producer_id());
}

#[tokio::test]
async fn batches_carry_the_producer_id_and_per_partition_sequences_that_advance_on_success() {
    let server = FakeServer::new(2);
    let p = producer(&server, config().batch_max_records(10));
    let id = p.producer_id().unwrap().to_string();
    let mut deliveries = Vec::new();
    for n in 0..25u64 {
        let r = rec("k", n).with_partition((n % 2) as u32);
        deliveries.push(p.send("t", r).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let mut by_partition: HashMap<u32, Vec<(u64, usize)>> = HashMap::new();
    for (r, (pid, seq, n)) in server.requests().iter().zip(sequences(&server)) {
        assert_eq!(pid, id);
        let part = r["records"][0]["partition"].as_u64().unwrap() as u32;
        by_partition.entry(part).or_default().push((seq, n));
    }
    for (part, batches) in by_partition {
        let mut next = 0;
        for (seq, n) in batches {
            assert_eq!(seq, next, "partition {part}: sequences are consecutive");
            next += n as u64;
        }
        assert_eq!(next, server.log(part).len() as u64);
    }
}

#[tokio::test]
async fn plain_batches_carry_no_producer_id_or_sequence() {
    let server = FakeServer::new(1);
    let p = producer(&server, config().idempotence(false));
    p.send("t", rec("k", 1)).await.unwrap().await.unwrap();
    let req = &server.requests()[0];
    assert!(req.get("producer_id").is_none());
    assert!(req["records"][0].get("sequence").is_none());
}

#[tokio::test]
async fn a_lost_reply_is_resent_with_the_same_sequence_and_the_duplicate_is_success() {
    let server = FakeServer::new(1);
    // The first batch is stored, but its reply is lost: the outcome is unknown.
    server.fault(Fault::ApplyThenFail(server_error(
        "write_outcome_unknown",
        true,
        Outcome::Unknown,
    )));
    let p = producer(
        &server,
        ProducerConfig {
            linger: Duration::from_secs(3600),
            ..config()
        },
    );
    let d1 = p.send("t", rec("k", 1)).await.unwrap();
    let d2 = p.send("t", rec("k", 2)).await.unwrap();
    p.flush().await.unwrap();
    assert_eq!(d1.await.unwrap().offset, 0, "the original offsets");
    assert_eq!(d2.await.unwrap().offset, 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "sent, then resent once");
    assert_eq!(requests[0], requests[1], "same producer id, same sequences");
    assert_eq!(server.values(0), vec![1, 2], "stored once");
    let stats = p.stats();
    assert_eq!(stats.duplicate_batches, 1);
    assert_eq!(stats.unknown_retries, 1);
    // The next batch continues after the duplicate's sequences.
    let d3 = p.send("t", rec("k", 3)).await.unwrap();
    p.flush().await.unwrap();
    d3.await.unwrap();
    assert_eq!(sequences(&server)[2].1, 2);
    assert_eq!(server.values(0), vec![1, 2, 3]);
}

#[tokio::test]
async fn unknown_outcomes_of_every_kind_are_resent_when_idempotent() {
    let server = FakeServer::new(1);
    server.script(server_error("timeout", true, Outcome::Unknown));
    server.fault(Fault::ApplyThenFail(Error::Transport(
        "connection reset".into(),
    )));
    server.script(server_error(
        "leader_not_available",
        true,
        Outcome::NotApplied,
    ));
    let p = producer(
        &server,
        config().retry(RetryPolicy {
            max_attempts: 10,
            ..fast_retry()
        }),
    );
    let at = p.send("t", rec("k", 9)).await.unwrap().await.unwrap();
    assert_eq!(at.offset, 0);
    assert_eq!(server.values(0), vec![9]);
    let seqs = sequences(&server);
    assert_eq!(seqs.len(), 4);
    assert!(seqs.windows(2).all(|w| w[0] == w[1]), "{seqs:?}");
    assert_eq!(p.stats().duplicate_batches, 1);
}

#[tokio::test]
async fn an_attempt_that_outlives_the_attempt_timeout_is_resent() {
    let server = FakeServer::new(1);
    server.fault(Fault::ApplyThenHang(Duration::from_secs(30)));
    let p = producer(
        &server,
        config().retry(RetryPolicy {
            attempt_timeout: Duration::from_millis(100),
            ..fast_retry()
        }),
    );
    let started = std::time::Instant::now();
    let at = p.send("t", rec("k", 5)).await.unwrap().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(at.offset, 0);
    assert_eq!(server.values(0), vec![5]);
    assert_eq!(p.stats().duplicate_batches, 1);
}

#[tokio::test]
async fn a_batch_refused_for_good_leaves_its_sequence_to_the_next_batch() {
    let server = FakeServer::new(1);
    let p = producer(&server, config());
    p.send("t", rec("k", 1)).await.unwrap().await.unwrap();
    server.script(Error::Server {
        status: 413,
        code: 41301,
        name: "payload_too_large".into(),
        message: "too big".into(),
        retriable: false,
        outcome: Some(Outcome::NotApplied),
        body: serde_json::json!({}),
    });
    let e = p.send("t", rec("k", 2)).await.unwrap().await.unwrap_err();
    assert_eq!(e.outcome(), Outcome::NotApplied);
    p.send("t", rec("k", 3)).await.unwrap().await.unwrap();
    let seqs = sequences(&server);
    let id = p.producer_id().unwrap().to_string();
    assert_eq!(
        seqs,
        vec![(id.clone(), 0, 1), (id.clone(), 1, 1), (id, 1, 1)],
        "the refused batch's sequence is reused"
    );
    assert_eq!(server.values(0), vec![1, 3]);
}

#[tokio::test]
async fn a_batch_given_up_with_an_unknown_outcome_moves_the_partition_to_a_fresh_producer_id() {
    let server = FakeServer::new(1);
    let p = producer(
        &server,
        config().retry(RetryPolicy {
            max_attempts: 3,
            ..fast_retry()
        }),
    );
    let id = p.producer_id().unwrap().to_string();
    p.send("t", rec("k", 1)).await.unwrap().await.unwrap();
    // Stored, but no attempt learns it: the batch is given up with an unknown outcome.
    server.fault(Fault::ApplyThenFail(server_error(
        "write_outcome_unknown",
        true,
        Outcome::Unknown,
    )));
    for _ in 0..2 {
        server.script(server_error(
            "leader_not_available",
            true,
            Outcome::NotApplied,
        ));
    }
    let e = p.send("t", rec("k", 2)).await.unwrap().await.unwrap_err();
    assert_eq!(
        e.outcome(),
        Outcome::Unknown,
        "a last not_applied does not undo an earlier unknown: {e}"
    );
    // The server now expects sequence 2, the producer cannot know it: a fresh id from 0.
    p.send("t", rec("k", 3)).await.unwrap().await.unwrap();
    let seqs = sequences(&server);
    assert_eq!(seqs[1], (id.clone(), 1, 1));
    assert_eq!(
        seqs[3],
        (id.clone(), 1, 1),
        "the same sequence on every attempt"
    );
    assert_eq!(seqs[4], (format!("{id}.1"), 0, 1));
    assert_eq!(
        server.values(0),
        vec![1, 2, 3],
        "2 was stored once, 3 after it"
    );
    assert_eq!(p.stats().epochs_reset, 1);
}

#[tokio::test]
async fn an_idempotent_partition_has_one_batch_in_flight_while_earlier_batches_retry() {
    let server = FakeServer::with_delay(1, Duration::from_millis(2));
    for _ in 0..3 {
        server.fault(Fault::ApplyThenFail(server_error(
            "timeout",
            true,
            Outcome::Unknown,
        )));
    }
    let p = producer(
        &server,
        config().batch_max_records(5).retry(RetryPolicy {
            max_attempts: 10,
            ..fast_retry()
        }),
    );
    let mut deliveries = Vec::new();
    for n in 0..40u64 {
        deliveries.push(p.send("t", rec("k", n)).await.unwrap());
    }
    for (n, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, n as u64, "send order is log order");
    }
    assert_eq!(server.values(0), (0..40).collect::<Vec<_>>());
    assert_eq!(server.max_in_flight_per_partition.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_out_of_order_refusal_moves_the_partition_to_a_fresh_producer_id() {
    let server = FakeServer::new(1);
    let p = producer(&server, config());
    let id = p.producer_id().unwrap().to_string();
    p.send("t", rec("k", 1)).await.unwrap().await.unwrap();
    server.script(Error::Server {
        status: 422,
        code: 42205,
        name: "out_of_order_sequence".into(),
        message: "expected 7".into(),
        retriable: false,
        outcome: Some(Outcome::NotApplied),
        body: serde_json::json!({}),
    });
    let e = p.send("t", rec("k", 2)).await.unwrap().await.unwrap_err();
    assert_eq!(e.error_code(), Some(ErrorCode::OutOfOrderSequence));
    assert_eq!(e.outcome(), Outcome::NotApplied, "refused, not stored");
    p.send("t", rec("k", 3)).await.unwrap().await.unwrap();
    let seqs = sequences(&server);
    assert_eq!(seqs[1], (id.clone(), 1, 1));
    assert_eq!(seqs[2], (format!("{id}.1"), 0, 1), "not refused again");
    assert_eq!(server.values(0), vec![1, 3]);
}

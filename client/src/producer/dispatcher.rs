//! The producer's background task: it owns the [`Accumulator`], seals batches on size and
//! linger time, sends at most one batch per partition at a time, retries a batch only as
//! [`RetryPolicy::decide`] allows, and hands each record its offset or its error.
//!
//! When the producer is idempotent, the task also owns each partition's
//! [`PartitionSequence`]: a batch gets its producer id and first sequence when it is first
//! sent, keeps them across every resend, and the partition's sequence moves on only once the
//! batch is finished. Because a partition has at most one batch in flight, the batches of a
//! partition reach the server in sequence order, and a batch's resend can never overtake or be
//! overtaken by the next batch (Kafka's `max.in.flight=1` with idempotence).
//!
//! It runs until every [`Producer`](super::Producer) handle is dropped, then seals and sends
//! what is left, and stops once nothing is in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::{Id, JoinSet};

use super::accumulator::{Accumulator, Batch, BatchLimits, TopicPartition};
use super::metadata::PartitionCounts;
use super::retry::{final_error, Decision, PartitionSequence, RetryPolicy};
use super::transport::Transport;
use super::Stats;
use crate::client::ProduceAck;
use crate::error::{Error, ErrorCode, Outcome};
use crate::types::{ProducedRecord, RecordOffset};

/// What `send` hands the dispatcher for one record.
pub(crate) struct Pending {
    /// The record as a JSON object, without its partition (added when the batch is encoded).
    pub json: Vec<u8>,
    pub reply: oneshot::Sender<Result<RecordOffset, Error>>,
    /// This record's share of the in-flight byte budget, released when its batch finishes
    /// (dropped with the record). Never read: holding it is its whole job.
    #[allow(dead_code)]
    pub permit: OwnedSemaphorePermit,
}

pub(crate) enum Command {
    Send {
        topic: Arc<str>,
        /// `None`: no key and no explicit partition; the dispatcher picks one (sticky).
        partition: Option<u32>,
        partitions: u32,
        record: Pending,
    },
    /// Seal every open batch and answer once every batch opened so far has finished.
    Flush(oneshot::Sender<()>),
}

/// Keyless records stick to one partition until its batch is sealed, then move to the next
/// (Kafka's sticky partitioner): bigger batches than record-by-record round-robin.
struct Sticky {
    partition: u32,
    batch: Option<u64>,
}

pub(crate) struct Dispatcher {
    pub transport: Arc<dyn Transport>,
    pub counts: Arc<PartitionCounts>,
    pub limits: BatchLimits,
    pub retry: RetryPolicy,
    /// The producer's base id when it is idempotent.
    pub producer_id: Option<Arc<str>>,
    pub stats: Arc<Stats>,
}

/// How a batch's send ended, as the dispatcher needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Acknowledged (original or duplicate) with this many records.
    Acknowledged(u64),
    /// Given up; `sequence_unknown` when the partition's next expected sequence is no longer
    /// known: the records may be in the log, or the server refused the sequence as out of
    /// order (its expectation differs from the producer's).
    GivenUp { sequence_unknown: bool },
}

/// The producer id and first sequence an idempotent batch carries on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Idempotence {
    pub producer_id: String,
    pub sequence: u64,
}

impl Dispatcher {
    pub async fn run(self, mut commands: mpsc::Receiver<Command>) {
        let mut acc: Accumulator<Pending> = Accumulator::new(self.limits);
        let mut sticky: HashMap<Arc<str>, Sticky> = HashMap::new();
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        let mut sequences: HashMap<TopicPartition, PartitionSequence> = HashMap::new();
        let mut flying: HashMap<Id, (TopicPartition, u64)> = HashMap::new();
        let mut flushes: Vec<(u64, oneshot::Sender<()>)> = Vec::new();
        let mut closing = false;
        loop {
            let deadline = acc.next_deadline();
            tokio::select! {
                cmd = commands.recv(), if !closing => match cmd {
                    Some(Command::Send { topic, partition, partitions, record }) => {
                        let bytes = record.json.len();
                        match partition {
                            Some(p) => {
                                let tp = TopicPartition { topic, partition: p };
                                acc.append(&tp, record, bytes, Instant::now());
                            }
                            None => {
                                let s = sticky.entry(topic.clone()).or_insert(Sticky {
                                    partition: 0,
                                    batch: None,
                                });
                                let mut tp = TopicPartition { topic, partition: s.partition % partitions.max(1) };
                                if s.batch.is_some() && acc.open_seq(&tp) != s.batch {
                                    s.partition = (s.partition + 1) % partitions.max(1);
                                    tp.partition = s.partition;
                                }
                                s.batch = Some(acc.append(&tp, record, bytes, Instant::now()));
                            }
                        }
                    }
                    Some(Command::Flush(done)) => {
                        acc.seal_all();
                        flushes.push((acc.next_seq(), done));
                    }
                    None => {
                        closing = true;
                        acc.seal_all();
                    }
                },
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    let (id, finished) = match done {
                        Ok((id, finished)) => (id, finished),
                        // A panicked send task dropped its records' reply senders: their
                        // callers see `ProducerClosed` (outcome unknown).
                        Err(e) => (e.id(), Finished::GivenUp { sequence_unknown: true }),
                    };
                    if let Some((tp, seq)) = flying.remove(&id) {
                        if self.producer_id.is_some() {
                            // Before `complete`: the partition's next batch, taken below,
                            // must see the sequence this batch left.
                            let s = sequences.entry(tp.clone()).or_default();
                            match finished {
                                Finished::Acknowledged(n) => s.acknowledged(n),
                                Finished::GivenUp { sequence_unknown } => {
                                    if sequence_unknown {
                                        self.stats.add(&self.stats.epochs_reset, 1);
                                    }
                                    s.given_up(sequence_unknown);
                                }
                            }
                        }
                        acc.complete(&tp, seq, Instant::now());
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    acc.seal_expired(Instant::now());
                }
            }
            for batch in acc.take_ready() {
                let key = (batch.tp.clone(), batch.seq);
                let idempotence = self.producer_id.as_deref().map(|base| {
                    let s = sequences.entry(batch.tp.clone()).or_default();
                    Idempotence {
                        producer_id: s.producer_id(base),
                        sequence: s.next,
                    }
                });
                let task = send_batch(
                    Sender {
                        transport: self.transport.clone(),
                        counts: self.counts.clone(),
                        retry: self.retry,
                        stats: self.stats.clone(),
                    },
                    batch,
                    idempotence,
                );
                let handle = in_flight.spawn(task);
                flying.insert(handle.id(), key);
            }
            if !flushes.is_empty() {
                // A flush is done once every batch opened before it has finished.
                let oldest = acc.oldest_outstanding();
                let (done, waiting): (Vec<_>, Vec<_>) = flushes
                    .drain(..)
                    .partition(|(below, _)| oldest.is_none_or(|o| o >= *below));
                flushes = waiting;
                for (_, tx) in done {
                    let _ = tx.send(());
                }
            }
            if closing && acc.is_idle() && in_flight.is_empty() {
                break;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

/// Encodes a batch as one produce request body; every record carries the batch's partition
/// and, for an idempotent batch, its sequence (the batch's first sequence plus its position).
pub(crate) fn encode(batch: &Batch<Pending>, idempotence: Option<&Idempotence>) -> bytes::Bytes {
    let partition = batch.tp.partition;
    let mut body = Vec::with_capacity(batch.bytes + batch.records.len() * 40 + 64);
    body.push(b'{');
    if let Some(i) = idempotence {
        body.extend_from_slice(b"\"producer_id\":");
        // A JSON string (with escapes, should an id ever need them).
        body.extend_from_slice(
            serde_json::Value::from(i.producer_id.as_str())
                .to_string()
                .as_bytes(),
        );
        body.push(b',');
    }
    body.extend_from_slice(b"\"records\":[");
    for (n, r) in batch.records.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        let prefix = match idempotence {
            Some(i) => format!(
                "{{\"partition\":{partition},\"sequence\":{},",
                i.sequence + n as u64
            ),
            None => format!("{{\"partition\":{partition},"),
        };
        body.extend_from_slice(prefix.as_bytes());
        // `json` is a serialized object with at least one field (a value): `{"…":…}`.
        body.extend_from_slice(r.json.get(1..).unwrap_or_default());
    }
    body.extend_from_slice(b"]}");
    body.into()
}

/// What a send task needs besides its batch.
pub(crate) struct Sender {
    pub transport: Arc<dyn Transport>,
    pub counts: Arc<PartitionCounts>,
    pub retry: RetryPolicy,
    pub stats: Arc<Stats>,
}

/// Sends one batch, resending it (the same body: the same producer id and sequences) only
/// while the policy allows, and answers every record.
async fn send_batch(
    sender: Sender,
    batch: Batch<Pending>,
    idempotence: Option<Idempotence>,
) -> Finished {
    let Sender {
        transport,
        counts,
        retry,
        stats,
    } = sender;
    let idempotent = idempotence.is_some();
    let body = encode(&batch, idempotence.as_ref());
    let first_sent = Instant::now();
    let mut attempt = 1;
    // Whether an attempt that failed may still have been written.
    let mut maybe_written = false;
    loop {
        let budget = retry.attempt_budget(first_sent.elapsed());
        let result = match tokio::time::timeout(
            budget,
            transport.produce(&batch.tp.topic, batch.tp.partition, body.clone()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Error::Transport(format!(
                "no answer within {} ms",
                budget.as_millis()
            ))),
        };
        match result {
            Ok(reply) => {
                if reply.duplicate {
                    stats.add(&stats.duplicates, 1);
                }
                return deliver_ok(batch, reply, &stats);
            }
            Err(e) => {
                if matches!(
                    e.error_code(),
                    Some(ErrorCode::PartitionNotFound | ErrorCode::TopicNotFound)
                ) {
                    counts.forget(&batch.tp.topic);
                }
                maybe_written |= e.outcome() == Outcome::Unknown;
                match retry.decide(&e, attempt, first_sent.elapsed(), idempotent) {
                    Decision::RetryAfter(wait) => {
                        stats.add(&stats.retries, 1);
                        if e.outcome() == Outcome::Unknown {
                            stats.add(&stats.unknown_retries, 1);
                        }
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Decision::Fail => {
                        let e = final_error(&e, maybe_written);
                        return deliver_err(batch, &e);
                    }
                }
            }
        }
    }
}

fn deliver_ok(batch: Batch<Pending>, reply: ProduceAck, stats: &Stats) -> Finished {
    let offsets = reply.offsets;
    let p = batch.tp.partition;
    let consistent = offsets.len() == batch.records.len()
        && offsets.iter().all(|o| o.partition == p)
        && offsets.windows(2).all(|w| w[1].offset == w[0].offset + 1);
    if !consistent {
        // The server promises one consecutive offset per record; anything else leaves the
        // records' fate unclear, so they get an `unknown` outcome rather than a guess.
        let e = Error::Decode(format!(
            "a produce reply for partition {p} has {} offsets for {} records, or offsets that are not consecutive",
            offsets.len(),
            batch.records.len()
        ));
        return deliver_err(batch, &e);
    }
    let n = batch.records.len() as u64;
    stats.add(&stats.records_acknowledged, n);
    for (r, o) in batch.records.into_iter().zip(offsets) {
        // The caller may have dropped its DeliveryFuture; that is fine.
        let _ = r.reply.send(Ok(o));
    }
    Finished::Acknowledged(n)
}

/// Answers every record of a failed batch. A partial failure body (`offsets` with some
/// entries committed) still gives the committed records their offsets.
fn deliver_err(batch: Batch<Pending>, e: &Error) -> Finished {
    let partial = match e {
        Error::Server { body, .. } => body
            .get("offsets")
            .and_then(|o| Vec::<ProducedRecord>::deserialize(o).ok())
            .filter(|o| o.len() == batch.records.len()),
        _ => None,
    };
    for (i, r) in batch.records.into_iter().enumerate() {
        let committed = partial.as_ref().and_then(|entries| {
            let entry = &entries[i];
            Some(RecordOffset {
                partition: entry.partition,
                offset: entry.offset?,
            })
        });
        let _ = r.reply.send(match committed {
            Some(o) => Ok(o),
            None => Err(e.clone()),
        });
    }
    Finished::GivenUp {
        sequence_unknown: e.outcome() == Outcome::Unknown
            || e.error_code() == Some(ErrorCode::OutOfOrderSequence),
    }
}

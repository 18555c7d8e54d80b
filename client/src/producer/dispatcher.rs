//! The producer's background task: it owns the [`Accumulator`], seals batches on size and
//! linger time, sends at most one batch per partition at a time, retries a batch only as
//! [`RetryPolicy::decide`] allows, and hands each record its offset or its error.
//!
//! It runs until every [`Producer`](super::Producer) handle is dropped, then seals and sends
//! what is left, and stops once nothing is in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::{Id, JoinSet};

use super::accumulator::{Accumulator, Batch, BatchLimits, TopicPartition};
use super::metadata::PartitionCounts;
use super::retry::{Decision, RetryPolicy};
use super::transport::Transport;
use crate::error::Error;
use crate::types::RecordOffset;

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
}

impl Dispatcher {
    pub async fn run(self, mut commands: mpsc::Receiver<Command>) {
        let mut acc: Accumulator<Pending> = Accumulator::new(self.limits);
        let mut sticky: HashMap<Arc<str>, Sticky> = HashMap::new();
        let mut in_flight: JoinSet<()> = JoinSet::new();
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
                    let id = match &done {
                        Ok((id, ())) => *id,
                        // A panicked send task dropped its records' reply senders: their
                        // callers see `ProducerClosed` (outcome unknown).
                        Err(e) => e.id(),
                    };
                    if let Some((tp, seq)) = flying.remove(&id) {
                        acc.complete(&tp, seq, Instant::now());
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    acc.seal_expired(Instant::now());
                }
            }
            for batch in acc.take_ready() {
                let key = (batch.tp.clone(), batch.seq);
                let task = send_batch(
                    self.transport.clone(),
                    self.counts.clone(),
                    self.retry,
                    batch,
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

/// Encodes a batch as one produce request body; every record carries the batch's partition.
pub(crate) fn encode(batch: &Batch<Pending>) -> bytes::Bytes {
    let prefix = format!("{{\"partition\":{},", batch.tp.partition);
    let mut body = Vec::with_capacity(batch.bytes + batch.records.len() * prefix.len() + 16);
    body.extend_from_slice(b"{\"records\":[");
    for (i, r) in batch.records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        // `json` is a serialized object with at least one field (a value): `{"…":…}`.
        body.extend_from_slice(prefix.as_bytes());
        body.extend_from_slice(r.json.get(1..).unwrap_or_default());
    }
    body.extend_from_slice(b"]}");
    body.into()
}

/// Sends one batch, resending it only while the policy allows, and answers every record.
async fn send_batch(
    transport: Arc<dyn Transport>,
    counts: Arc<PartitionCounts>,
    retry: RetryPolicy,
    batch: Batch<Pending>,
) {
    let body = encode(&batch);
    let mut attempt = 1;
    loop {
        match transport.produce(&batch.tp.topic, body.clone()).await {
            Ok(offsets) => return deliver_ok(batch, offsets),
            Err(e) => {
                if matches!(e.name(), Some("partition_not_found" | "topic_not_found")) {
                    counts.forget(&batch.tp.topic);
                }
                match retry.decide(&e, attempt) {
                    Decision::RetryAfter(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Decision::Fail => return deliver_err(batch, &e),
                }
            }
        }
    }
}

fn deliver_ok(batch: Batch<Pending>, offsets: Vec<RecordOffset>) {
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
    for (r, o) in batch.records.into_iter().zip(offsets) {
        // The caller may have dropped its DeliveryFuture; that is fine.
        let _ = r.reply.send(Ok(o));
    }
}

/// Answers every record of a failed batch. A partial failure body (`offsets` with some
/// entries committed) still gives the committed records their offsets.
fn deliver_err(batch: Batch<Pending>, e: &Error) {
    let partial = match e {
        Error::Server { body, .. } => body
            .get("offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == batch.records.len())
            .cloned(),
        _ => None,
    };
    for (i, r) in batch.records.into_iter().enumerate() {
        let committed = partial.as_ref().and_then(|entries| {
            let entry = &entries[i];
            Some(RecordOffset {
                partition: entry.get("partition")?.as_u64()? as u32,
                offset: entry.get("offset")?.as_u64()?,
            })
        });
        let _ = r.reply.send(match committed {
            Some(o) => Ok(o),
            None => Err(e.clone()),
        });
    }
}

//! A batching producer: the Raftka counterpart of Kafka's `KafkaProducer`.
//!
//! [`Producer::send`] places a record in a partition (its explicit partition, else Kafka's
//! murmur2 partitioner on its key, else the partition keyless records currently stick to),
//! adds it to that partition's open batch, and returns a [`DeliveryFuture`] that resolves to
//! the record's partition and offset once the batch is committed, or to a typed [`Error`].
//!
//! - **Batching.** A partition's batch is sent when it holds
//!   [`batch_max_records`](ProducerConfig::batch_max_records) records or
//!   [`batch_max_bytes`](ProducerConfig::batch_max_bytes) bytes, or when its first record has
//!   waited [`linger`](ProducerConfig::linger); [`Producer::flush`] sends everything at once.
//! - **Order.** A partition has at most one batch in flight, so records sent one after the other
//!   to the same partition (same key, or same explicit partition) are stored in send order,
//!   retries included.
//! - **Backpressure.** Records waiting or in flight may hold at most
//!   [`max_in_flight_bytes`](ProducerConfig::max_in_flight_bytes); `send` waits for room.
//! - **Retries.** A batch is resent only when its error's [outcome](Error::outcome) is
//!   [`Outcome::NotApplied`](crate::Outcome::NotApplied) and the error is retriable (an
//!   election, an unreachable node), at most [`RetryPolicy::max_attempts`] times with a
//!   doubling backoff. An [`Outcome::Unknown`](crate::Outcome::Unknown) error (timeout,
//!   `write_outcome_unknown`, connection lost after sending) is never resent: it reaches the
//!   caller, because the records may already be in the log.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftka_client::Error> {
//! use raftka_client::{Client, NewRecord, Outcome, Producer, ProducerConfig};
//!
//! let client = Client::new(["127.0.0.1:19091", "127.0.0.1:19092", "127.0.0.1:19093"])?;
//! let producer = Producer::new(client, ProducerConfig::default());
//!
//! // Queue many records, then wait for their offsets.
//! let mut deliveries = Vec::new();
//! for i in 0..1000 {
//!     let record = NewRecord::json(serde_json::json!({"n": i})).with_key(format!("user-{}", i % 10));
//!     deliveries.push(producer.send("orders", record).await?);
//! }
//! for d in deliveries {
//!     match d.await {
//!         Ok(at) => println!("stored at partition {} offset {}", at.partition, at.offset),
//!         Err(e) if e.outcome() == Outcome::Unknown => eprintln!("maybe stored: {e}"),
//!         Err(e) => eprintln!("not stored: {e}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The producer's background task needs a Tokio runtime. Records still queued when the last
//! `Producer` handle is dropped are sent anyway while the runtime lives; await their
//! [`DeliveryFuture`]s, or call [`Producer::flush`], before the program exits.

mod accumulator;
mod dispatcher;
mod metadata;
mod retry;
#[cfg(test)]
mod tests;
mod transport;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::client::Client;
use crate::error::Error;
use crate::partitioner::partition_for_key;
use crate::types::{NewRecord, RecordOffset};
use accumulator::BatchLimits;
use dispatcher::{Command, Dispatcher, Pending};
use metadata::PartitionCounts;
pub use retry::RetryPolicy;
use transport::Transport;

/// The server's limit on records per produce request.
const MAX_RECORDS_PER_REQUEST: usize = 10_000;
/// The server's default limit on a key's length.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// Settings of a [`Producer`].
#[derive(Debug, Clone, Copy)]
pub struct ProducerConfig {
    /// Most records in one batch (one produce request, one Raft entry). At most 10,000, the
    /// server's limit. Default 10,000.
    pub batch_max_records: usize,
    /// A batch is sent once its records' JSON reaches this many bytes. Keep it well under the
    /// server's request limit (8 MiB by default). Default 512 KiB.
    pub batch_max_bytes: usize,
    /// How long a batch's first record may wait for more records. Default 5 ms.
    pub linger: Duration,
    /// Bytes of records queued or in flight before `send` waits. Default 64 MiB.
    pub max_in_flight_bytes: usize,
    /// When failed batches are resent.
    pub retry: RetryPolicy,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            batch_max_records: MAX_RECORDS_PER_REQUEST,
            batch_max_bytes: 512 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight_bytes: 64 * 1024 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

/// A batching, partitioning producer. Cheap to clone; clones share batches and the byte budget.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    commands: mpsc::Sender<Command>,
    budget: Arc<Semaphore>,
    max_in_flight_bytes: usize,
    counts: Arc<PartitionCounts>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("max_in_flight_bytes", &self.inner.max_in_flight_bytes)
            .finish_non_exhaustive()
    }
}

/// Resolves to where a record was stored, or to why it may not have been. Dropping it does not
/// cancel the record.
#[derive(Debug)]
#[must_use = "a DeliveryFuture tells whether the record was stored"]
pub struct DeliveryFuture {
    reply: oneshot::Receiver<Result<RecordOffset, Error>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordOffset, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::ProducerClosed)))
    }
}

impl Producer {
    /// A producer sending through `client`. Spawns its background task on the current Tokio
    /// runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(client: Client, config: ProducerConfig) -> Self {
        Self::with_transport(Arc::new(client), config)
    }

    pub(crate) fn with_transport(transport: Arc<dyn Transport>, config: ProducerConfig) -> Self {
        let counts = Arc::new(PartitionCounts::default());
        // Bounded: `send` waits here too when the dispatcher falls behind.
        let (tx, rx) = mpsc::channel(1024);
        let max_in_flight_bytes = config.max_in_flight_bytes.clamp(1, u32::MAX as usize);
        let dispatcher = Dispatcher {
            transport: transport.clone(),
            counts: counts.clone(),
            limits: BatchLimits {
                max_records: config.batch_max_records.clamp(1, MAX_RECORDS_PER_REQUEST),
                max_bytes: config.batch_max_bytes.max(1),
                linger: config.linger,
            },
            retry: config.retry,
        };
        // The task owns every in-flight send (a JoinSet) and ends by itself once all handles
        // are dropped and everything queued has been answered.
        tokio::spawn(dispatcher.run(rx));
        Self {
            inner: Arc::new(Inner {
                transport,
                commands: tx,
                budget: Arc::new(Semaphore::new(max_in_flight_bytes)),
                max_in_flight_bytes,
                counts,
            }),
        }
    }

    /// Queues a record for `topic` and returns a future of its partition and offset.
    ///
    /// Waits while the in-flight byte budget is used up, and the first time a topic is used,
    /// for its partition count. Sending one record after the other (awaiting each `send`, not
    /// each delivery) keeps their order within a partition.
    ///
    /// # Errors
    /// Before anything is queued (outcome `not_applied`): the topic does not exist
    /// (`topic_not_found`) or cannot be looked up ([`Error::Unreachable`], …); the record has
    /// no value or both value forms, or a key over 16 KiB ([`Error::Config`]). The returned
    /// future then resolves to the record's own outcome.
    pub async fn send(&self, topic: &str, record: NewRecord) -> Result<DeliveryFuture, Error> {
        validate(&record)?;
        let (topic, partitions) = self
            .inner
            .counts
            .get(self.inner.transport.as_ref(), topic)
            .await?;
        let partition = match (&record.partition, &record.key) {
            (Some(p), _) => Some(*p),
            (None, Some(k)) => Some(partition_for_key(k.as_bytes(), partitions)),
            (None, None) => None,
        };
        let json = serde_json::to_vec(&NewRecord {
            partition: None,
            ..record
        })
        .map_err(|e| Error::Config(format!("record cannot be encoded: {e}")))?;
        let share = json.len().clamp(1, self.inner.max_in_flight_bytes) as u32;
        let permit = self
            .inner
            .budget
            .clone()
            .acquire_many_owned(share)
            .await
            .map_err(|_| Error::ProducerClosed)?;
        let (reply, rx) = oneshot::channel();
        let command = Command::Send {
            topic,
            partition,
            partitions,
            record: Pending {
                json,
                reply,
                permit,
            },
        };
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| Error::ProducerClosed)?;
        Ok(DeliveryFuture { reply: rx })
    }

    /// Sends every queued record now and waits until each record queued before this call has
    /// its answer (offset or error).
    ///
    /// # Errors
    /// [`Error::ProducerClosed`] if the background task is gone.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Flush(tx))
            .await
            .map_err(|_| Error::ProducerClosed)?;
        rx.await.map_err(|_| Error::ProducerClosed)
    }

    /// The number of partitions of `topic` (cached).
    ///
    /// # Errors
    /// `topic_not_found`, or a transport error.
    pub async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        let (_, n) = self
            .inner
            .counts
            .get(self.inner.transport.as_ref(), topic)
            .await?;
        Ok(n)
    }
}

/// Refuses records the server would reject with `invalid_record`; one of them would otherwise
/// fail every other record of its batch.
fn validate(r: &NewRecord) -> Result<(), Error> {
    match (&r.value, &r.value_base64) {
        (Some(_), None) | (None, Some(_)) => {}
        (None, None) => {
            return Err(Error::Config(
                "a record needs a value (or value_base64)".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "a record has either a value or value_base64, not both".into(),
            ))
        }
    }
    if r.key.as_ref().is_some_and(|k| k.len() > MAX_KEY_BYTES) {
        return Err(Error::Config(format!(
            "a key is at most {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

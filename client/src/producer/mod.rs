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
//! - **Routing.** A batch goes straight to its partition's leader once the client knows it
//!   (learned from the topic description after a send through a bootstrap node, refreshed at
//!   most once a second), saving the forwarding hop. The leader is only a hint: a `not_leader`
//!   answer or a refused connection drops it, and any node still serves the request.
//! - **Backpressure.** Records waiting or in flight may hold at most
//!   [`max_in_flight_bytes`](ProducerConfig::max_in_flight_bytes); `send` waits for room.
//! - **Exactly-once (idempotence), on by default.** Each `Producer` draws a random producer id
//!   ([`Producer::producer_id`]). Every batch carries it and, per partition, the sequence of each
//!   record (0, 1, 2, … across batches). A batch keeps the same id and sequences on every resend,
//!   and the partition's Raft state machine answers a resend of a batch it already stored with
//!   the **original offsets** (`duplicate`) instead of storing it again. So a resend is safe even
//!   when the first attempt's outcome was unknown, and the producer resends those too.
//! - **Retries.** A batch is resent after a transient error, with a doubling backoff, until
//!   [`RetryPolicy::delivery_timeout`] (30 s by default) has passed since its first send:
//!   - idempotent: errors whose outcome is [`Outcome::NotApplied`](crate::Outcome::NotApplied)
//!     (an election, an unreachable node) **and** [`Outcome::Unknown`](crate::Outcome::Unknown)
//!     (a timeout, `write_outcome_unknown`, a connection lost after sending);
//!   - with [`idempotence(false)`](ProducerConfig::idempotence): only `not_applied` ones. An
//!     `unknown` error reaches the caller, because the records may already be in the log.
//!
//!   Errors that would fail again (a 4xx) are never resent. A record's error is
//!   [`Outcome::Unknown`](crate::Outcome::Unknown) whenever any attempt of its batch may have
//!   been written.
//! - **Sequences after a failure.** A partition's sequence advances only when a batch is
//!   acknowledged. A batch given up with an unknown outcome (its delivery timeout ran out)
//!   leaves the server's expectation unknowable (this batch's sequence, or the next), so the
//!   partition continues under a fresh producer id (`<id>.<epoch>`) from sequence 0, which the
//!   server accepts as a new producer; so does a batch refused as `out_of_order_sequence`
//!   (which should not happen: the server expects another sequence). The server remembers
//!   the last 5 batches of the 1,000 most recently active producers per partition (see
//!   `docs/api.md`); a resend is always of the latest batch, well within that.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftka_client::Error> {
//! use raftka_client::{Client, NewRecord, Outcome, Producer, ProducerConfig};
//!
//! let client = Client::new(["127.0.0.1:19091", "127.0.0.1:19092", "127.0.0.1:19093"])?;
//! // Idempotent by default; `ProducerConfig::default().idempotence(false)` opts out.
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
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Idempotent produce: batches carry a producer id and per-partition sequences, so that
    /// resends (also of writes whose outcome was unknown) never duplicate. Default `true`.
    pub idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            batch_max_records: MAX_RECORDS_PER_REQUEST,
            batch_max_bytes: 512 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight_bytes: 64 * 1024 * 1024,
            retry: RetryPolicy::default(),
            idempotence: true,
        }
    }
}

impl ProducerConfig {
    /// Turns idempotent produce on (the default) or off. Off, batches carry no producer id, and
    /// only errors whose outcome is `not_applied` are resent; an `unknown` outcome reaches the
    /// caller.
    ///
    /// ```
    /// use raftka_client::ProducerConfig;
    /// let plain = ProducerConfig::default().idempotence(false);
    /// assert!(!plain.idempotence);
    /// ```
    #[must_use]
    pub fn idempotence(mut self, on: bool) -> Self {
        self.idempotence = on;
        self
    }

    /// Sets [`linger`](Self::linger).
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets [`batch_max_records`](Self::batch_max_records).
    #[must_use]
    pub fn batch_max_records(mut self, n: usize) -> Self {
        self.batch_max_records = n;
        self
    }

    /// Sets [`batch_max_bytes`](Self::batch_max_bytes).
    #[must_use]
    pub fn batch_max_bytes(mut self, n: usize) -> Self {
        self.batch_max_bytes = n;
        self
    }

    /// Sets [`max_in_flight_bytes`](Self::max_in_flight_bytes).
    #[must_use]
    pub fn max_in_flight_bytes(mut self, n: usize) -> Self {
        self.max_in_flight_bytes = n;
        self
    }

    /// Sets the [`retry`](Self::retry) policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the retry policy's [`delivery_timeout`](RetryPolicy::delivery_timeout).
    #[must_use]
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.retry.delivery_timeout = timeout;
        self
    }
}

/// Counters of a [`Producer`] since it was created (see [`Producer::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Records acknowledged with an offset.
    pub records_acknowledged: u64,
    /// Resends of a batch, for any reason.
    pub retries: u64,
    /// Resends after an error whose outcome was unknown (idempotent producers only).
    pub unknown_retries: u64,
    /// Batches the server answered as duplicates: an earlier attempt had stored them, and the
    /// records got their original offsets.
    pub duplicate_batches: u64,
    /// Times a partition moved to a fresh producer id because a batch was given up with an
    /// unknown outcome.
    pub epochs_reset: u64,
}

/// The live counters behind [`ProducerStats`].
#[derive(Default)]
pub(crate) struct Stats {
    pub records_acknowledged: AtomicU64,
    pub retries: AtomicU64,
    pub unknown_retries: AtomicU64,
    pub duplicates: AtomicU64,
    pub epochs_reset: AtomicU64,
}

impl Stats {
    /// Adds `n` to one of the counters (relaxed: they are statistics, not synchronisation).
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ProducerStats {
        ProducerStats {
            records_acknowledged: self.records_acknowledged.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            unknown_retries: self.unknown_retries.load(Ordering::Relaxed),
            duplicate_batches: self.duplicates.load(Ordering::Relaxed),
            epochs_reset: self.epochs_reset.load(Ordering::Relaxed),
        }
    }
}

/// A fresh random producer id, shaped like a UUID (version 4): 122 random bits make two
/// producers sharing one by chance vanishingly unlikely.
fn random_producer_id() -> String {
    let r: u128 = rand::random();
    let r = (r & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A batching, partitioning producer. Cheap to clone; clones share batches and the byte budget.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    producer_id: Option<Arc<str>>,
    stats: Arc<Stats>,
    commands: mpsc::Sender<Command>,
    budget: Arc<Semaphore>,
    max_in_flight_bytes: usize,
    counts: Arc<PartitionCounts>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("producer_id", &self.inner.producer_id)
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
        let producer_id: Option<Arc<str>> =
            config.idempotence.then(|| Arc::from(random_producer_id()));
        let stats = Arc::new(Stats::default());
        let dispatcher = Dispatcher {
            transport: transport.clone(),
            counts: counts.clone(),
            limits: BatchLimits {
                max_records: config.batch_max_records.clamp(1, MAX_RECORDS_PER_REQUEST),
                max_bytes: config.batch_max_bytes.max(1),
                linger: config.linger,
            },
            retry: config.retry,
            producer_id: producer_id.clone(),
            stats: stats.clone(),
        };
        // The task owns every in-flight send (a JoinSet) and ends by itself once all handles
        // are dropped and everything queued has been answered.
        tokio::spawn(dispatcher.run(rx));
        Self {
            inner: Arc::new(Inner {
                transport,
                producer_id,
                stats,
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
    /// no value or both value forms, a key over 16 KiB, or a negative partition
    /// ([`Error::Config`]). The returned future then resolves to the record's own outcome.
    pub async fn send(&self, topic: &str, record: NewRecord) -> Result<DeliveryFuture, Error> {
        let explicit = validate(&record)?;
        let (topic, partitions) = self
            .inner
            .counts
            .get(self.inner.transport.as_ref(), topic)
            .await?;
        let partition = match (explicit, &record.key) {
            (Some(p), _) => Some(p),
            (None, Some(k)) => Some(partition_for_key(k.as_bytes(), partitions)),
            (None, None) => None,
        };
        // The batch's encoder adds the partition, and for an idempotent batch the sequence.
        let json = serde_json::to_vec(&NewRecord {
            partition: None,
            sequence: None,
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

    /// The producer id its batches carry when it is idempotent (a partition may have moved on
    /// to `<id>.<epoch>` after a batch was given up; see the [module docs](self)), or `None`
    /// with [`idempotence(false)`](ProducerConfig::idempotence).
    pub fn producer_id(&self) -> Option<&str> {
        self.inner.producer_id.as_deref()
    }

    /// Counters since the producer was created: records acknowledged, resends, duplicates.
    pub fn stats(&self) -> ProducerStats {
        self.inner.stats.snapshot()
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

/// Refuses records the server would reject with `invalid_record` or `partition_not_found`; one
/// of them would otherwise fail every other record of its batch. Returns the record's explicit
/// partition, if it has one.
fn validate(r: &NewRecord) -> Result<Option<u32>, Error> {
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
    // Signed on the wire (so the server can name a negative one); a partition is a u32.
    r.partition
        .map(|p| {
            u32::try_from(p).map_err(|_| Error::Config(format!("partition {p} does not exist")))
        })
        .transpose()
}

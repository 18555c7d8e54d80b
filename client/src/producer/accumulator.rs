//! Per-partition batching: records wait in an open batch until it is full (records or bytes)
//! or has lingered long enough, then the batch is sealed and queued for sending.
//!
//! Invariants:
//! - Each partition has at most one open batch, and at most one batch in flight. A partition's
//!   batches are sent in the order they were opened, the next only after the previous one
//!   finished (acknowledged, or failed for good after its retries). Together with FIFO appends
//!   this keeps the send order of a partition's records in the log.
//! - Every batch holds at least one record.
//! - While a partition has a batch in flight, its open batch keeps growing (up to the size
//!   limits) even after its linger time: it is sealed when the batch in flight completes.
//!   Sealing it on time would queue a train of tiny batches behind the one in flight, each
//!   paying a full round trip (Kafka's `max.in.flight=1` behaves the same way).
//!
//! The accumulator is plain data: no I/O, no clock of its own (callers pass `now`), so tests
//! drive it step by step.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: u32,
}

/// When a batch is sealed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

/// A sealed or open batch of records `R` for one partition.
#[derive(Debug)]
pub(crate) struct Batch<R> {
    pub tp: TopicPartition,
    /// Opening order across all partitions; used by `flush`.
    pub seq: u64,
    pub records: Vec<R>,
    pub bytes: usize,
    /// When its first record arrived.
    pub opened_at: Instant,
}

#[derive(Debug)]
struct PartitionQueue<R> {
    open: Option<Batch<R>>,
    sealed: VecDeque<Batch<R>>,
    in_flight: bool,
}

impl<R> Default for PartitionQueue<R> {
    fn default() -> Self {
        Self {
            open: None,
            sealed: VecDeque::new(),
            in_flight: false,
        }
    }
}

/// The batching state of a producer.
#[derive(Debug)]
pub(crate) struct Accumulator<R> {
    limits: BatchLimits,
    queues: HashMap<TopicPartition, PartitionQueue<R>>,
    /// Linger deadlines of open batches in opening order (the linger is the same for all, so
    /// this is also deadline order). Entries of batches sealed early are skipped lazily.
    deadlines: VecDeque<(Instant, TopicPartition, u64)>,
    /// Batches opened and not yet completed.
    outstanding: BTreeSet<u64>,
    next_seq: u64,
}

impl<R> Accumulator<R> {
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            queues: HashMap::new(),
            deadlines: VecDeque::new(),
            outstanding: BTreeSet::new(),
            next_seq: 0,
        }
    }

    /// Adds a record of `bytes` bytes to the partition's open batch (opening one if needed) and
    /// returns the sequence number of the batch it went into. A record that would push the open
    /// batch over a limit seals that batch first; a record larger than `max_bytes` travels alone.
    pub fn append(&mut self, tp: &TopicPartition, record: R, bytes: usize, now: Instant) -> u64 {
        let limits = self.limits;
        let queue = self.queues.entry(tp.clone()).or_default();
        if let Some(open) = &queue.open {
            let full = open.records.len() + 1 > limits.max_records
                || open.bytes + bytes > limits.max_bytes;
            if full {
                seal(queue);
            }
        }
        let open = match &mut queue.open {
            Some(open) => open,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.outstanding.insert(seq);
                self.deadlines
                    .push_back((now + limits.linger, tp.clone(), seq));
                queue.open.insert(Batch {
                    tp: tp.clone(),
                    seq,
                    records: Vec::new(),
                    bytes: 0,
                    opened_at: now,
                })
            }
        };
        open.records.push(record);
        open.bytes += bytes;
        let seq = open.seq;
        if open.records.len() >= limits.max_records || open.bytes >= limits.max_bytes {
            seal(queue);
        }
        seq
    }

    /// The sequence number of the partition's open batch, if it has one.
    pub fn open_seq(&self, tp: &TopicPartition) -> Option<u64> {
        self.queues
            .get(tp)
            .and_then(|q| q.open.as_ref())
            .map(|b| b.seq)
    }

    /// The earliest linger deadline of an open batch.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some((deadline, tp, seq)) = self.deadlines.front() {
            if self.open_seq(tp) == Some(*seq) {
                return Some(*deadline);
            }
            self.deadlines.pop_front();
        }
        None
    }

    /// Seals every open batch whose linger time has passed, except on partitions with a batch
    /// in flight ([`Self::complete`] seals those).
    pub fn seal_expired(&mut self, now: Instant) {
        while let Some((deadline, tp, seq)) = self.deadlines.front() {
            if *deadline > now {
                break;
            }
            if let Some(q) = self.queues.get_mut(tp) {
                if !q.in_flight && q.open.as_ref().map(|b| b.seq) == Some(*seq) {
                    seal(q);
                }
            }
            self.deadlines.pop_front();
        }
    }

    /// Seals every open batch (flush, close).
    pub fn seal_all(&mut self) {
        for q in self.queues.values_mut() {
            seal(q);
        }
        self.deadlines.clear();
    }

    /// The sealed batches that may be sent now: the oldest of each partition with nothing in
    /// flight. Each returned batch's partition is marked in flight until [`Self::complete`].
    pub fn take_ready(&mut self) -> Vec<Batch<R>> {
        let mut ready = Vec::new();
        for q in self.queues.values_mut() {
            if !q.in_flight {
                if let Some(b) = q.sealed.pop_front() {
                    q.in_flight = true;
                    ready.push(b);
                }
            }
        }
        ready
    }

    /// The batch `seq` of `tp` finished (acknowledged or failed for good): the partition may
    /// send its next batch. Drops the queue of a partition that has nothing left.
    pub fn complete(&mut self, tp: &TopicPartition, seq: u64, now: Instant) {
        self.outstanding.remove(&seq);
        let linger = self.limits.linger;
        if let Some(q) = self.queues.get_mut(tp) {
            q.in_flight = false;
            if q.sealed.is_empty() && q.open.as_ref().is_some_and(|b| b.opened_at + linger <= now) {
                seal(q);
            }
            if q.open.is_none() && q.sealed.is_empty() {
                self.queues.remove(tp);
            }
        }
    }

    /// The sequence number of the oldest batch not yet completed.
    pub fn oldest_outstanding(&self) -> Option<u64> {
        self.outstanding.first().copied()
    }

    /// The sequence number the next batch will get; every batch opened so far is below it.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// No record is waiting or in flight.
    pub fn is_idle(&self) -> bool {
        self.outstanding.is_empty()
    }
}

fn seal<R>(q: &mut PartitionQueue<R>) {
    if let Some(b) = q.open.take() {
        q.sealed.push_back(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: u32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        }
    }

    fn acc(max_records: usize, max_bytes: usize, linger_ms: u64) -> Accumulator<u32> {
        Accumulator::new(BatchLimits {
            max_records,
            max_bytes,
            linger: Duration::from_millis(linger_ms),
        })
    }

    fn ids(b: &Batch<u32>) -> Vec<u32> {
        b.records.clone()
    }

    #[test]
    fn a_batch_is_sealed_when_it_reaches_max_records() {
        let mut a = acc(3, 1 << 20, 1000);
        let now = Instant::now();
        for i in 0..7 {
            a.append(&tp(0), i, 10, now);
        }
        // 0,1,2 sealed; 3,4,5 sealed; 6 open. Only one batch per partition goes out at a time.
        let ready = a.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(ids(&ready[0]), vec![0, 1, 2]);
        assert!(
            a.take_ready().is_empty(),
            "second batch waits for the first"
        );
        a.complete(&tp(0), ready[0].seq, now);
        let ready = a.take_ready();
        assert_eq!(ids(&ready[0]), vec![3, 4, 5]);
        a.complete(&tp(0), ready[0].seq, now);
        assert!(a.take_ready().is_empty(), "record 6 still lingers");
        assert!(!a.is_idle());
    }

    #[test]
    fn a_batch_is_sealed_before_it_would_exceed_max_bytes() {
        let mut a = acc(1000, 100, 1000);
        let now = Instant::now();
        a.append(&tp(0), 0, 60, now);
        a.append(&tp(0), 1, 60, now); // 120 > 100: seals [0] first
        let ready = a.take_ready();
        assert_eq!(ids(&ready[0]), vec![0]);
        assert_eq!(ready[0].bytes, 60);
        // A record bigger than the limit travels alone, and seals at once.
        a.complete(&tp(0), ready[0].seq, now);
        a.append(&tp(0), 2, 500, now);
        let ready = a.take_ready();
        assert_eq!(ids(&ready[0]), vec![1]);
        a.complete(&tp(0), ready[0].seq, now);
        let ready = a.take_ready();
        assert_eq!(ids(&ready[0]), vec![2]);
    }

    #[test]
    fn a_batch_is_sealed_when_its_linger_time_passes() {
        let mut a = acc(1000, 1 << 20, 5);
        let t0 = Instant::now();
        a.append(&tp(0), 0, 10, t0);
        a.append(&tp(1), 1, 10, t0 + Duration::from_millis(2));
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_millis(5)));
        a.seal_expired(t0 + Duration::from_millis(4));
        assert!(a.take_ready().is_empty());
        a.seal_expired(t0 + Duration::from_millis(5));
        let ready = a.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].tp, tp(0));
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_millis(7)));
        a.seal_expired(t0 + Duration::from_millis(7));
        assert_eq!(a.take_ready()[0].tp, tp(1));
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn records_keep_joining_the_open_batch_while_a_batch_is_in_flight() {
        let mut a = acc(1000, 1 << 20, 0);
        let t0 = Instant::now();
        a.append(&tp(0), 0, 10, t0);
        a.seal_expired(t0);
        let first = a.take_ready();
        assert_eq!(ids(&first[0]), vec![0]);
        // Linger 0, but the partition is busy: later records wait together in one batch.
        for i in 1..5 {
            a.append(&tp(0), i, 10, t0);
            a.seal_expired(t0 + Duration::from_millis(u64::from(i)));
            assert!(a.take_ready().is_empty());
        }
        a.complete(&tp(0), first[0].seq, t0 + Duration::from_millis(10));
        let next = a.take_ready();
        assert_eq!(next.len(), 1);
        assert_eq!(ids(&next[0]), vec![1, 2, 3, 4]);
    }

    #[test]
    fn partitions_batch_independently() {
        let mut a = acc(2, 1 << 20, 1000);
        let now = Instant::now();
        for i in 0..4 {
            a.append(&tp(i % 2), i, 10, now);
        }
        let mut ready = a.take_ready();
        ready.sort_by_key(|b| b.tp.partition);
        assert_eq!(ids(&ready[0]), vec![0, 2]);
        assert_eq!(ids(&ready[1]), vec![1, 3]);
    }

    #[test]
    fn flush_bookkeeping_tracks_the_oldest_outstanding_batch() {
        let mut a = acc(1000, 1 << 20, 1000);
        let now = Instant::now();
        let s0 = a.append(&tp(0), 0, 10, now);
        let s1 = a.append(&tp(1), 1, 10, now);
        a.seal_all();
        assert_eq!(a.next_seq(), s1 + 1);
        assert_eq!(a.oldest_outstanding(), Some(s0));
        let ready = a.take_ready();
        assert_eq!(ready.len(), 2);
        a.complete(&tp(0), s0, now);
        assert_eq!(a.oldest_outstanding(), Some(s1));
        a.complete(&tp(1), s1, now);
        assert!(a.is_idle());
        assert_eq!(a.oldest_outstanding(), None);
    }
}

//! The partition state machine: assigns Kafka offsets to committed produce batches.
//!
//! Applying a `Produce` entry writes one index row `(group, base_offset) -> raft index` and the
//! small state row; the records themselves stay in the Raft log (written once). Offsets are a
//! pure function of the committed prefix, so every replica computes the same ones.
//!
//! The high watermark is `next_offset` of the applied state, published on a `watch` channel for
//! long-polling fetches. Apply writes are not fsynced: after a crash they are recomputed from
//! the (durable) log by re-applying, with the same result.

use std::collections::BTreeMap;
use std::io;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::codec::{decode, encode};
use crate::keys::{self, CF_OFFSETS, CF_SM, CF_SNAPSHOT, CF_TIME, TAG_SM_STATE};
use crate::store::Store;
use crate::types::{ApplyResult, Command, GroupId, RecordBatch, TypeConfig};

/// How many batches are remembered per idempotent producer.
pub const BATCHES_PER_PRODUCER: usize = 5;
/// How many idempotent producers a partition remembers (least recently used evicted first).
pub const MAX_PRODUCERS: usize = 1_000;
/// How many idempotency keys a partition remembers (oldest evicted first).
pub const MAX_IDEMPOTENCY_KEYS: usize = 10_000;

/// A batch remembered for deduplication.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedBatch {
    /// Sequence of its first record (producers) or 0 (idempotency keys).
    pub sequence: u64,
    /// Records in the batch.
    pub count: u32,
    /// Its first offset.
    pub base_offset: u64,
    /// The Raft index that applied it (the eviction order).
    pub index: u64,
}

/// Deduplication memory of a partition. Part of the state machine (and so of snapshots), so
/// it survives restarts and leader changes. Bounded, with deterministic eviction.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupState {
    /// The last few batches per producer id.
    pub producers: BTreeMap<String, Vec<RememberedBatch>>,
    /// Producer ids by the index of their last batch (least recently used first).
    pub producer_lru: BTreeMap<u64, String>,
    /// Idempotency keys.
    pub keys: BTreeMap<String, RememberedBatch>,
    /// Idempotency keys by index (oldest first).
    pub key_order: BTreeMap<u64, String>,
}

/// What deduplication decided for a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum DedupVerdict {
    /// A new batch: append it.
    Append,
    /// Seen before: answer with these original offsets.
    Duplicate(RememberedBatch),
    /// An idempotent producer skipped or reordered sequences.
    OutOfOrder {
        /// Expected next sequence.
        expected: u64,
    },
}

impl DedupState {
    /// Decides what to do with a batch.
    pub fn check(&self, batch: &RecordBatch) -> DedupVerdict {
        if let Some(key) = &batch.idempotency_key {
            if let Some(b) = self.keys.get(key) {
                return DedupVerdict::Duplicate(*b);
            }
        }
        if let Some(p) = &batch.producer {
            if let Some(batches) = self.producers.get(&p.producer_id) {
                let n = batch.records.len() as u32;
                if let Some(b) = batches
                    .iter()
                    .find(|b| b.sequence == p.sequence && b.count == n)
                {
                    return DedupVerdict::Duplicate(*b);
                }
                if let Some(last) = batches.last() {
                    let expected = last.sequence + u64::from(last.count);
                    if p.sequence != expected {
                        return DedupVerdict::OutOfOrder { expected };
                    }
                }
            }
        }
        DedupVerdict::Append
    }

    /// Remembers an appended batch.
    pub fn remember(&mut self, batch: &RecordBatch, base_offset: u64, index: u64) {
        let count = batch.records.len() as u32;
        if let Some(p) = &batch.producer {
            let entry = self.producers.entry(p.producer_id.clone()).or_default();
            if let Some(prev) = entry.last() {
                self.producer_lru.remove(&prev.index);
            }
            entry.push(RememberedBatch {
                sequence: p.sequence,
                count,
                base_offset,
                index,
            });
            if entry.len() > BATCHES_PER_PRODUCER {
                entry.remove(0);
            }
            self.producer_lru.insert(index, p.producer_id.clone());
            while self.producers.len() > MAX_PRODUCERS {
                let Some((_, id)) = self.producer_lru.pop_first() else {
                    break;
                };
                self.producers.remove(&id);
            }
        }
        if let Some(key) = &batch.idempotency_key {
            self.keys.insert(
                key.clone(),
                RememberedBatch {
                    sequence: 0,
                    count,
                    base_offset,
                    index,
                },
            );
            self.key_order.insert(index, key.clone());
            while self.keys.len() > MAX_IDEMPOTENCY_KEYS {
                let Some((_, k)) = self.key_order.pop_first() else {
                    break;
                };
                self.keys.remove(&k);
            }
        }
    }
}

/// The persisted state of a partition state machine. Small: no record data.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    /// Last applied log id.
    pub applied: Option<LogIdOf<TypeConfig>>,
    /// Last applied membership.
    pub membership: StoredMembershipOf<TypeConfig>,
    /// The offset the next record will take; also the high watermark.
    pub next_offset: u64,
    /// The first offset still readable on this replica.
    pub log_start_offset: u64,
    /// Idempotent-producer and idempotency-key memory.
    pub dedup: DedupState,
    /// The largest record timestamp applied so far (the time index's running maximum).
    pub max_timestamp: Option<i64>,
}

/// What readers and long-pollers need to know about a partition's applied log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogProgress {
    /// One past the last committed and applied offset. Fetches never return data at or above it.
    pub high_watermark: u64,
    /// The first readable offset.
    pub log_start_offset: u64,
    /// Raft index of the last applied entry.
    pub applied_index: u64,
}

impl PartitionState {
    fn progress(&self) -> LogProgress {
        LogProgress {
            high_watermark: self.next_offset,
            log_start_offset: self.log_start_offset,
            applied_index: self.applied.as_ref().map_or(0, |l| l.index()),
        }
    }
}

/// A stored snapshot: its meta and data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    data: Vec<u8>,
}

/// The partition state machine of one group.
pub struct PartitionStateMachine {
    store: Store,
    group: GroupId,
    state: PartitionState,
    progress: watch::Sender<LogProgress>,
}

impl PartitionStateMachine {
    /// Loads the state machine of `group` and returns it with a receiver of its progress.
    ///
    /// # Errors
    /// When the stored state cannot be read or decoded.
    pub fn open(store: Store, group: GroupId) -> io::Result<(Self, watch::Receiver<LogProgress>)> {
        let state: PartitionState = read_state(&store, group)?.unwrap_or_default();
        let (tx, rx) = watch::channel(state.progress());
        Ok((
            Self {
                store,
                group,
                state,
                progress: tx,
            },
            rx,
        ))
    }

    /// The current in-memory state.
    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    fn persist(&self, mut batch: WriteBatch) -> io::Result<()> {
        batch.put_cf(
            self.store.cf(CF_SM)?,
            keys::key(self.group, TAG_SM_STATE),
            encode(&self.state)?,
        );
        self.store.write_nosync(batch)
    }

    fn snapshot_of_state(&self) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        let data = encode(&self.state)?;
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: self.state.applied,
            last_membership: self.state.membership.clone(),
        };
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta,
            snapshot: data,
        })
    }

    fn save_snapshot(&self, snap: &SnapshotOf<TypeConfig, Vec<u8>>) -> io::Result<()> {
        let stored = StoredSnapshot {
            meta: snap.meta.clone(),
            data: snap.snapshot.clone(),
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(CF_SNAPSHOT)?,
            keys::group_key(self.group),
            encode(&stored)?,
        );
        self.store.write_nosync(batch)
    }
}

pub(crate) fn read_state<T: serde::de::DeserializeOwned>(
    store: &Store,
    group: GroupId,
) -> io::Result<Option<T>> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_SM)?, keys::key(group, TAG_SM_STATE))
        .map_err(io::Error::other)?
    {
        Some(b) => Ok(Some(decode(&b)?)),
        None => Ok(None),
    }
}

pub(crate) fn read_snapshot(
    store: &Store,
    group: GroupId,
) -> io::Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_SNAPSHOT)?, keys::group_key(group))
        .map_err(io::Error::other)?
    {
        Some(b) => {
            let s: StoredSnapshot = decode(&b)?;
            Ok(Some(SnapshotOf::<TypeConfig, Vec<u8>> {
                meta: s.meta,
                snapshot: s.data,
            }))
        }
        None => Ok(None),
    }
}

pub(crate) fn write_snapshot(
    store: &Store,
    group: GroupId,
    meta: &SnapshotMetaOf<TypeConfig>,
    data: &[u8],
    batch: &mut WriteBatch,
) -> io::Result<()> {
    let stored = StoredSnapshot {
        meta: meta.clone(),
        data: data.to_vec(),
    };
    batch.put_cf(
        store.cf(CF_SNAPSHOT)?,
        keys::group_key(group),
        encode(&stored)?,
    );
    Ok(())
}

/// Builds snapshots of a partition's state machine.
pub struct PartitionSnapshotBuilder {
    snapshot: io::Result<SnapshotOf<TypeConfig, Vec<u8>>>,
    store: Store,
    group: GroupId,
}

impl RaftSnapshotBuilder<TypeConfig> for PartitionSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let snap = std::mem::replace(&mut self.snapshot, Err(io::Error::other("built twice")))?;
        let mut batch = WriteBatch::default();
        write_snapshot(
            &self.store,
            self.group,
            &snap.meta,
            &snap.snapshot,
            &mut batch,
        )?;
        self.store.write_nosync(batch)?;
        Ok(snap)
    }
}

impl RaftStateMachine<TypeConfig> for PartitionStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.state.applied, self.state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let cf_offsets = self.store.cf(CF_OFFSETS)?;
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let result = match entry.payload {
                EntryPayload::Blank => ApplyResult::Empty,
                EntryPayload::Membership(ref m) => {
                    self.state.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(log_id), m.clone());
                    ApplyResult::Empty
                }
                EntryPayload::Normal(Command::Produce(ref records)) => {
                    match self.state.dedup.check(records) {
                        DedupVerdict::Duplicate(b) => ApplyResult::Produced {
                            base_offset: b.base_offset,
                            count: b.count,
                            duplicate: true,
                        },
                        DedupVerdict::OutOfOrder { expected } => ApplyResult::SequenceError {
                            expected,
                            got: records.producer.as_ref().map_or(0, |p| p.sequence),
                        },
                        DedupVerdict::Append => {
                            let base_offset = self.state.next_offset;
                            let count = records.records.len() as u64;
                            if count > 0 {
                                batch.put_cf(
                                    cf_offsets,
                                    keys::key(self.group, base_offset),
                                    log_id.index().to_be_bytes(),
                                );
                                self.state.next_offset = base_offset + count;
                                self.state
                                    .dedup
                                    .remember(records, base_offset, log_id.index());
                                // Time index: a row wherever the running maximum timestamp
                                // rises, so a lookup finds the first batch that can hold a
                                // record at or after a time even when timestamps go back.
                                let batch_max =
                                    records.records.iter().map(|r| r.timestamp_ms).max();
                                if let Some(m) = batch_max {
                                    if self.state.max_timestamp.is_none_or(|cur| m > cur) {
                                        batch.put_cf(
                                            self.store.cf(CF_TIME)?,
                                            keys::key(self.group, keys::timestamp_key(m)),
                                            base_offset.to_be_bytes(),
                                        );
                                        self.state.max_timestamp = Some(m);
                                    }
                                }
                            }
                            ApplyResult::Produced {
                                base_offset,
                                count: count as u32,
                                duplicate: false,
                            }
                        }
                    }
                }
                EntryPayload::Normal(Command::Blob(_)) => {
                    ApplyResult::Rejected("a partition group does not take blob commands".into())
                }
            };
            self.state.applied = Some(log_id);
            if let Some(r) = responder {
                replies.push((r, result));
            }
        }
        self.persist(batch)?;
        self.progress.send_replace(self.state.progress());
        for (r, result) in replies {
            r.send(result);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        PartitionSnapshotBuilder {
            snapshot: self.snapshot_of_state(),
            store: self.store.clone(),
            group: self.group,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let mut state: PartitionState = decode(&snapshot)?;
        state.applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        // The snapshot stands for every offset below `next_offset`; this replica does not hold
        // those records, so they are below its log start.
        state.log_start_offset = state.next_offset;
        let mut batch = WriteBatch::default();
        let (lo, hi) = keys::group_range(self.group);
        batch.delete_range_cf(self.store.cf(CF_OFFSETS)?, lo, hi);
        batch.delete_range_cf(self.store.cf(CF_TIME)?, lo, hi);
        write_snapshot(&self.store, self.group, meta, &snapshot, &mut batch)?;
        self.state = state;
        self.persist(batch)?;
        self.progress.send_replace(self.state.progress());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        read_snapshot(&self.store, self.group)
    }
}

impl PartitionStateMachine {
    /// Stores the given snapshot as current (used by tests of recovery).
    ///
    /// # Errors
    /// On storage failure.
    pub fn store_snapshot(&self, snap: &SnapshotOf<TypeConfig, Vec<u8>>) -> io::Result<()> {
        self.save_snapshot(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ProducerSequence, Record, ValueKind};

    fn batch(n: usize, producer: Option<(&str, u64)>, key: Option<&str>) -> RecordBatch {
        RecordBatch {
            records: (0..n)
                .map(|_| Record {
                    timestamp_ms: 0,
                    key: None,
                    value: bytes::Bytes::from_static(b"1"),
                    value_kind: ValueKind::Json,
                    headers: vec![],
                })
                .collect(),
            producer: producer.map(|(id, s)| ProducerSequence {
                producer_id: id.into(),
                sequence: s,
            }),
            idempotency_key: key.map(String::from),
        }
    }

    #[test]
    fn producer_sequences_dedup_and_detect_gaps() {
        let mut d = DedupState::default();
        let b0 = batch(3, Some(("p", 10)), None);
        assert_eq!(
            d.check(&b0),
            DedupVerdict::Append,
            "a new producer may start anywhere"
        );
        d.remember(&b0, 100, 1);
        assert!(matches!(d.check(&b0), DedupVerdict::Duplicate(b) if b.base_offset == 100));
        assert_eq!(
            d.check(&batch(1, Some(("p", 14)), None)),
            DedupVerdict::OutOfOrder { expected: 13 }
        );
        assert_eq!(
            d.check(&batch(1, Some(("p", 12)), None)),
            DedupVerdict::OutOfOrder { expected: 13 }
        );
        let b1 = batch(2, Some(("p", 13)), None);
        assert_eq!(d.check(&b1), DedupVerdict::Append);
        d.remember(&b1, 103, 2);
        assert!(
            matches!(d.check(&b0), DedupVerdict::Duplicate(b) if b.base_offset == 100),
            "older batches still deduplicate"
        );
    }

    #[test]
    fn idempotency_keys_return_original_offsets_and_are_bounded() {
        let mut d = DedupState::default();
        for i in 0..(MAX_IDEMPOTENCY_KEYS as u64 + 5) {
            let b = batch(1, None, Some(&format!("k{i}")));
            assert_eq!(d.check(&b), DedupVerdict::Append);
            d.remember(&b, i, i + 1);
        }
        assert_eq!(d.keys.len(), MAX_IDEMPOTENCY_KEYS);
        assert_eq!(
            d.check(&batch(1, None, Some("k0"))),
            DedupVerdict::Append,
            "oldest key evicted"
        );
        let last = format!("k{}", MAX_IDEMPOTENCY_KEYS + 4);
        assert!(matches!(
            d.check(&batch(1, None, Some(&last))),
            DedupVerdict::Duplicate(_)
        ));
    }

    #[test]
    fn producers_are_bounded_least_recently_used_first() {
        let mut d = DedupState::default();
        for i in 0..(MAX_PRODUCERS as u64 + 1) {
            d.remember(&batch(1, Some((&format!("p{i}"), 0)), None), i, i + 1);
        }
        assert_eq!(d.producers.len(), MAX_PRODUCERS);
        assert!(!d.producers.contains_key("p0"));
    }
}

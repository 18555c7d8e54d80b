//! The partition state machine: assigns Kafka offsets to committed produce batches.
//!
//! Applying a `Produce` entry writes one index row `(group, base_offset) -> raft index` and the
//! small state row; the records themselves stay in the Raft log (written once). Offsets are a
//! pure function of the committed prefix, so every replica computes the same ones.
//!
//! The high watermark is `next_offset` of the applied state, published on a `watch` channel for
//! long-polling fetches. Apply writes are not fsynced: after a crash they are recomputed from
//! the (durable) log by re-applying, with the same result.

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
use crate::keys::{self, CF_OFFSETS, CF_SM, CF_SNAPSHOT, TAG_SM_STATE};
use crate::store::Store;
use crate::types::{ApplyResult, Command, GroupId, TypeConfig};

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
                    let base_offset = self.state.next_offset;
                    let count = records.records.len() as u64;
                    if count > 0 {
                        batch.put_cf(
                            cf_offsets,
                            keys::key(self.group, base_offset),
                            log_id.index().to_be_bytes(),
                        );
                        self.state.next_offset = base_offset + count;
                    }
                    ApplyResult::Produced {
                        base_offset,
                        count: count as u32,
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

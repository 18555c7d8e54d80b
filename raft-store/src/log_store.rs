//! openraft's `RaftLogStorage` for one group, over the shared [`Store`].
//!
//! Durability: entries are written unsynced (so they are readable at once) and openraft's
//! `IOFlushed` callback fires from the group-commit syncer after the WAL fsync that covers them.
//! The vote is fsynced before `save_vote` returns. Truncation and purge are not synced on their
//! own: a later synced append or vote covers them (the WAL is ordered), and openraft tolerates
//! seeing truncated-but-uncommitted or purged entries again after a crash.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::codec::{decode, encode};
use crate::keys::{self, CF_LOG, CF_RAFT, TAG_PURGED, TAG_VOTE};
use crate::store::Store;
use crate::types::{Command, GroupId, TypeConfig};

/// Log storage of one Raft group. Cheap to clone; clones share the store.
#[derive(Clone, Debug)]
pub struct LogStore {
    store: Store,
    group: GroupId,
}

impl LogStore {
    /// The log storage of `group` in `store`.
    pub fn new(store: Store, group: GroupId) -> Self {
        Self { store, group }
    }

    /// The group this log belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    fn get_raft_row<T: serde::de::DeserializeOwned>(&self, tag: u64) -> io::Result<Option<T>> {
        let cf = self.store.cf(CF_RAFT)?;
        match self
            .store
            .db()
            .get_pinned_cf(cf, keys::key(self.group, tag))
            .map_err(io::Error::other)?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Reads the entries with indexes in `[start, end)`, stopping at the first gap.
    pub(crate) fn read_range(&self, start: u64, end: u64) -> io::Result<Vec<EntryOf<TypeConfig>>> {
        let cf = self.store.cf(CF_LOG)?;
        let from = keys::key(self.group, start);
        let mut out = Vec::new();
        for item in self
            .store
            .db()
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward))
        {
            let (k, v) = item.map_err(io::Error::other)?;
            let Some((g, idx)) = keys::parse_key(&k) else {
                break;
            };
            if g != self.group || idx >= end {
                break;
            }
            let entry: EntryOf<TypeConfig> = decode(&v)?;
            if entry.index() != idx {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("log key {idx} holds entry {}", entry.index()),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Reads one entry by raft index.
    pub(crate) fn read_one(&self, index: u64) -> io::Result<Option<EntryOf<TypeConfig>>> {
        let cf = self.store.cf(CF_LOG)?;
        match self
            .store
            .db()
            .get_pinned_cf(cf, keys::key(self.group, index))
            .map_err(io::Error::other)?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogIdOf<TypeConfig>>> {
        let cf = self.store.cf(CF_LOG)?;
        let from = keys::key(self.group, u64::MAX);
        let mut it = self
            .store
            .db()
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Reverse));
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(io::Error::other)?;
                match keys::parse_key(&k) {
                    Some((g, _)) if g == self.group => {
                        let entry: EntryOf<TypeConfig> = decode(&v)?;
                        Ok(Some(entry.log_id()))
                    }
                    _ => Ok(None),
                }
            }
        }
    }
}

fn start_of<RB: RangeBounds<u64>>(range: &RB) -> u64 {
    match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

fn end_of<RB: RangeBounds<u64>>(range: &RB) -> u64 {
    match range.end_bound() {
        Bound::Included(x) => x.saturating_add(1),
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        self.read_range(start_of(&range), end_of(&range))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_raft_row(TAG_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> = self.get_raft_row(TAG_PURGED)?;
        let last_log_id = match self.last_entry_log_id()? {
            Some(id) => Some(id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(CF_RAFT)?,
            keys::key(self.group, TAG_VOTE),
            encode(vote)?,
        );
        // The vote must be on disk before we answer a vote request: fsync now.
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write_sync(batch))
            .await
            .map_err(io::Error::other)?
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.store.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        let mut records = 0u64;
        for entry in entries {
            if let EntryPayload::Normal(Command::Produce(b)) = &entry.payload {
                records += b.records.len() as u64;
            }
            batch.put_cf(cf, keys::key(self.group, entry.index()), encode(&entry)?);
        }
        // Unsynced write: readable now; durable after the syncer's next fsync, which fires the
        // callback. The write happens-before the enqueue, so that fsync covers it.
        self.store.write_nosync(batch)?;
        self.store
            .after_next_sync(Box::new(move |res| callback.io_completed(res)), records);
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = match last_log_id {
            Some(id) => id.index().saturating_add(1),
            None => 0,
        };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.store.cf(CF_LOG)?,
            keys::key(self.group, from),
            keys::group_end(self.group),
        );
        self.store.write_nosync(batch)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        // The purge marker and the deletion go in one atomic batch.
        batch.put_cf(
            self.store.cf(CF_RAFT)?,
            keys::key(self.group, TAG_PURGED),
            encode(&log_id)?,
        );
        batch.delete_range_cf(
            self.store.cf(CF_LOG)?,
            keys::key(self.group, 0),
            keys::below(self.group, log_id.index().saturating_add(1)),
        );
        self.store.write_nosync(batch)?;
        // Retention's disk space comes back now for whole files, and with compaction for the
        // rest. A failure here only delays that.
        if let Err(e) = self.store.drop_purged_log_files(self.group, log_id.index()) {
            tracing::warn!(group = self.group, error = %e, "could not drop purged log files");
        }
        Ok(())
    }
}

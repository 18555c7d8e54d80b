//! The node's single RocksDB, shared by every Raft group, with its group-commit syncer.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DBRecoveryMode, Options, WriteBatch, DB};

use crate::keys::{self, ALL_CFS};
use crate::syncer::{ObserverSlot, SyncDone, SyncObserver, Syncer};
use crate::types::GroupId;

/// How the store uses memory and disk. The defaults suit a server; tests use small values so
/// that disk use follows retention within a few megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Memtable size per column family: writes are buffered (and logged in the WAL) until a
    /// memtable this large is flushed to an SST file.
    pub write_buffer_bytes: usize,
    /// Total WAL size past which RocksDB flushes the column families that keep old WAL files
    /// alive (quiet ones, like votes and snapshots, flush rarely on their own).
    pub max_wal_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            write_buffer_bytes: 64 << 20,
            max_wal_bytes: 256 << 20,
        }
    }
}

/// Errors of the storage layer as seen by the node (openraft itself gets `io::Error`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused to open or failed an operation.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// An fsync failed earlier; the store refuses writes until the process restarts and recovers.
    #[error("storage is poisoned after a failed fsync; restart the node")]
    Poisoned,
    /// Stored bytes did not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other I/O failure.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The store was written by a newer Raftka (see [`crate::format`]); it is left untouched.
    #[error(
        "the data directory holds store format {found}, written by a newer Raftka; this build \
         reads formats up to {supported}. Run the newer version (or restore a backup); nothing \
         was changed"
    )]
    NewerFormat {
        /// The stamped format.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// The store is older than this build can migrate.
    #[error(
        "the data directory holds store format {found}; this build migrates from format \
         {oldest} on. Upgrade through an intermediate version first; nothing was changed"
    )]
    UnsupportedFormat {
        /// The stamped format.
        found: u32,
        /// The oldest format this build migrates.
        oldest: u32,
    },
}

impl From<StoreError> for io::Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// Counters that show how well group commit is working.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct StoreStats {
    /// Appends (one per openraft `append` call) made durable.
    pub appends_synced: u64,
    /// WAL fsyncs issued by the syncer.
    pub wal_syncs: u64,
    /// Snapshots installed from a leader (by any group's state machine) since the store opened.
    pub snapshots_installed: u64,
}

/// RocksDB's disk and memory use, from its properties (summed over the column families) and
/// the WAL files in the store's directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskStats {
    /// Bytes of the SST files that hold live data (`rocksdb.live-sst-files-size`).
    pub live_sst_bytes: u64,
    /// Bytes compaction estimates it still has to rewrite
    /// (`rocksdb.estimate-pending-compaction-bytes`).
    pub pending_compaction_bytes: u64,
    /// Bytes in memtables (`rocksdb.cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
    /// Bytes of the write-ahead log files (`*.log` in the store's directory).
    pub wal_bytes: u64,
}

struct Inner {
    db: Arc<DB>,
    poisoned: Arc<AtomicBool>,
    syncer: Syncer,
    appends_synced: Arc<AtomicU64>,
    wal_syncs: Arc<AtomicU64>,
    snapshots_installed: AtomicU64,
    sync_observer: ObserverSlot,
}

/// Cheap-to-clone handle on the node's RocksDB.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store under `dir`.
    ///
    /// # Errors
    /// When RocksDB cannot open the directory (locked by another process, corrupt, no space).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the store under `dir` with the given options.
    ///
    /// # Errors
    /// [`StoreError::NewerFormat`] when a newer Raftka wrote the store (nothing is changed);
    /// when RocksDB cannot open the directory (locked by another process, corrupt, no space).
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        // Before RocksDB touches the directory: a newer format is refused untouched.
        crate::format::check_and_stamp(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Recover to the last consistent point of the WAL: a torn tail from a crash is dropped,
        // never replayed half-way. Everything acknowledged was fsynced before that point.
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(3);
        // Bound the WAL: a WAL file is deleted only once every column family with data in it
        // has flushed, and quiet families (votes, snapshots) flush rarely on their own. Past
        // this size RocksDB flushes them, so disk use follows retention instead of the WAL.
        opts.set_max_total_wal_size(options.max_wal_bytes);
        // canary: with `canary-skip-fsync` the syncer never flushes the WAL, and this keeps the
        // unflushed WAL in RocksDB's own user-space buffer instead of the page cache, so that
        // `kill -9` loses it the way a power cut loses un-fsynced data. Never in a release build.
        #[cfg(feature = "canary-skip-fsync")]
        opts.set_manual_wal_flush(true);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_write_buffer_size(options.write_buffer_bytes);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?);
        let poisoned = Arc::new(AtomicBool::new(false));
        let appends_synced = Arc::new(AtomicU64::new(0));
        let wal_syncs = Arc::new(AtomicU64::new(0));
        let sync_observer = ObserverSlot::default();
        let syncer = Syncer::start(
            db.clone(),
            poisoned.clone(),
            appends_synced.clone(),
            wal_syncs.clone(),
            sync_observer.clone(),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                poisoned,
                syncer,
                appends_synced,
                wal_syncs,
                snapshots_installed: AtomicU64::new(0),
                sync_observer,
            }),
        })
    }

    /// Sets the observer told about every WAL fsync (metrics). Only the first call takes
    /// effect; returns whether this one did.
    pub fn observe_syncs(&self, observer: Arc<dyn SyncObserver>) -> bool {
        self.inner.sync_observer.set(observer).is_ok()
    }

    /// Counts a snapshot installed from a leader.
    pub(crate) fn note_snapshot_installed(&self) {
        self.inner
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// RocksDB's sizes (see [`DiskStats`]). Reads properties and lists the store's directory;
    /// a property RocksDB does not give counts as 0.
    pub fn disk_stats(&self) -> DiskStats {
        let db = &self.inner.db;
        let mut s = DiskStats::default();
        for name in ALL_CFS {
            let Some(cf) = db.cf_handle(name) else {
                continue;
            };
            let prop = |p: &str| db.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
            s.live_sst_bytes += prop("rocksdb.live-sst-files-size");
            s.pending_compaction_bytes += prop("rocksdb.estimate-pending-compaction-bytes");
            s.memtable_bytes += prop("rocksdb.cur-size-all-mem-tables");
        }
        if let Ok(entries) = std::fs::read_dir(db.path()) {
            s.wal_bytes = entries
                .flatten()
                .filter(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == std::ffi::OsStr::new("log"))
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
        }
        s
    }

    /// The raw database, for readers in this crate.
    pub(crate) fn db(&self) -> &DB {
        &self.inner.db
    }

    /// Drops whole SST files of `group`'s purged log rows `[0, upto]` at once, instead of waiting
    /// for compaction to meet their range tombstone. Only rows openraft already purged lie in
    /// that range, so no live data goes.
    pub(crate) fn drop_purged_log_files(&self, group: GroupId, upto: u64) -> io::Result<()> {
        self.inner
            .db
            .delete_file_in_range_cf(
                self.cf(keys::CF_LOG)?,
                keys::key(group, 0),
                keys::key(group, upto),
            )
            .map_err(io::Error::other)
    }

    /// A column family handle. The families are created at open, so a miss is a bug.
    pub(crate) fn cf(&self, name: &str) -> io::Result<&ColumnFamily> {
        self.inner
            .db
            .cf_handle(name)
            .ok_or_else(|| io::Error::other(format!("column family {name} missing")))
    }

    /// Whether a failed fsync has poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    fn check_poisoned(&self) -> io::Result<()> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned.into());
        }
        Ok(())
    }

    /// Writes a batch without fsync. The data is readable at once and becomes durable with the
    /// next WAL sync (group commit) or the next synced write, whichever comes first.
    pub(crate) fn write_nosync(&self, batch: WriteBatch) -> io::Result<()> {
        self.check_poisoned()?;
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(false);
        self.inner
            .db
            .write_opt(batch, &wo)
            .map_err(io::Error::other)
    }

    /// Writes a batch and fsyncs the WAL before returning (votes must be durable at once).
    pub(crate) fn write_sync(&self, batch: WriteBatch) -> io::Result<()> {
        self.check_poisoned()?;
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        let res = self
            .inner
            .db
            .write_opt(batch, &wo)
            .map_err(io::Error::other);
        if res.is_err() {
            // A failed synced write may have failed in fsync: never retry, poison.
            self.inner.poisoned.store(true, Ordering::Release);
        }
        res
    }

    /// Queues `done` to run after the next WAL fsync, which covers every write made before this
    /// call. One fsync serves every queued append of every group. `records` is how many produced
    /// records the append holds (for the records-per-fsync metric).
    pub(crate) fn after_next_sync(&self, done: SyncDone, records: u64) {
        self.inner.syncer.enqueue(done, records);
    }

    /// Group-commit counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            appends_synced: self.inner.appends_synced.load(Ordering::Relaxed),
            wal_syncs: self.inner.wal_syncs.load(Ordering::Relaxed),
            snapshots_installed: self.inner.snapshots_installed.load(Ordering::Relaxed),
        }
    }

    /// Deletes every row of `group` in every column family (topic deletion). Synced, so that a
    /// deleted group does not come back after a crash.
    ///
    /// # Errors
    /// On RocksDB failure or a poisoned store.
    pub fn drop_group(&self, group: GroupId) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        let (lo, hi) = keys::group_range(group);
        for name in [
            keys::CF_LOG,
            keys::CF_RAFT,
            keys::CF_SM,
            keys::CF_OFFSETS,
            keys::CF_TIME,
        ] {
            batch.delete_range_cf(self.cf(name)?, lo, hi);
        }
        batch.delete_cf(self.cf(keys::CF_SNAPSHOT)?, keys::group_key(group));
        self.write_sync(batch)
    }

    /// Flushes memtables to SST files (used on graceful shutdown to shorten the next recovery).
    ///
    /// # Errors
    /// On RocksDB failure.
    pub fn flush(&self) -> io::Result<()> {
        for name in ALL_CFS {
            self.inner
                .db
                .flush_cf(self.cf(name)?)
                .map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// The ids of every group that has any Raft state on this node.
    ///
    /// # Errors
    /// On RocksDB failure.
    pub fn groups_with_state(&self) -> io::Result<Vec<GroupId>> {
        let mut out = Vec::new();
        let it = self
            .inner
            .db
            .iterator_cf(self.cf(keys::CF_RAFT)?, rocksdb::IteratorMode::Start);
        for item in it {
            let (k, _) = item.map_err(io::Error::other)?;
            if let Some((g, _)) = keys::parse_key(&k) {
                if out.last() != Some(&g) {
                    out.push(g);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(usize, u64)>>);

    impl SyncObserver for Seen {
        fn fsynced(&self, _took: Duration, appends: usize, records: u64) {
            self.0.lock().unwrap().push((appends, records));
        }
    }

    #[test]
    fn the_sync_observer_sees_every_append_and_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let seen = Arc::new(Seen::default());
        assert!(store.observe_syncs(seen.clone()));
        assert!(!store.observe_syncs(Arc::new(Seen::default())), "set once");
        let mut batch = WriteBatch::default();
        batch.put_cf(store.cf(keys::CF_RAFT).unwrap(), b"k", b"v");
        store.write_nosync(batch).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for records in [3, 0, 4] {
            let tx = tx.clone();
            store.after_next_sync(Box::new(move |r| tx.send(r.is_ok()).unwrap()), records);
        }
        for _ in 0..3 {
            assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        let seen = seen.0.lock().unwrap().clone();
        let appends: usize = seen.iter().map(|(a, _)| a).sum();
        let records: u64 = seen.iter().map(|(_, r)| r).sum();
        assert_eq!((appends, records), (3, 7), "{seen:?}");
        assert_eq!(store.stats().appends_synced, 3);
        // The write is in the WAL (RocksDB's own buffer under the canary that skips fsync).
        assert!(store.disk_stats().wal_bytes > 0 || cfg!(feature = "canary-skip-fsync"));
    }
}

//! Group commit: one thread per node fsyncs the RocksDB WAL once for every batch of queued
//! appends, across all Raft groups, then completes their callbacks.
//!
//! Ordering argument: an append writes its entries (unsynced) *before* it enqueues its callback.
//! The syncer dequeues callbacks and only then calls `flush_wal(true)`, so that fsync covers
//! every write whose callback it completes. The WAL is a single ordered stream, so syncing it
//! also makes every earlier unsynced write durable.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rocksdb::DB;

/// A completion to run once the WAL has been fsynced (or the fsync failed).
pub(crate) type SyncDone = Box<dyn FnOnce(io::Result<()>) + Send>;

/// Told about every successful WAL fsync of the group-commit syncer (for metrics). Called on
/// the syncer thread, between the fsync and the completions: it must be quick and never block.
pub trait SyncObserver: Send + Sync {
    /// One fsync took `took` and made `appends` openraft appends durable, holding `records`
    /// produced records between them.
    fn fsynced(&self, took: Duration, appends: usize, records: u64);
}

/// Where the store keeps its observer, set at most once, after the store opened.
pub(crate) type ObserverSlot = Arc<OnceLock<Arc<dyn SyncObserver>>>;

/// One queued append: its completion and how many produced records it holds.
pub(crate) struct Pending {
    done: SyncDone,
    records: u64,
}

pub(crate) struct Syncer {
    // `Option` so that drop can close the channel before joining the thread.
    tx: Option<Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    pub(crate) fn start(
        db: Arc<DB>,
        poisoned: Arc<AtomicBool>,
        appends: Arc<AtomicU64>,
        syncs: Arc<AtomicU64>,
        observer: ObserverSlot,
    ) -> io::Result<Self> {
        // Unbounded on purpose: every item is one in-flight openraft append, and openraft bounds
        // those per group; blocking the Raft core here would stall elections instead.
        let (tx, rx) = crossbeam_channel::unbounded::<Pending>();
        let thread = std::thread::Builder::new()
            .name("raftka-wal-syncer".into())
            .spawn(move || run(db, rx, poisoned, appends, syncs, observer))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `done` (an append holding `records` produced records) for the next fsync.
    pub(crate) fn enqueue(&self, done: SyncDone, records: u64) {
        let Some(tx) = &self.tx else {
            done(Err(io::Error::other("wal syncer stopped")));
            return;
        };
        if let Err(e) = tx.send(Pending { done, records }) {
            // The syncer thread is gone (store dropping). Fail the append rather than ack it.
            (e.0.done)(Err(io::Error::other("wal syncer stopped")));
        }
    }
}

impl Drop for Syncer {
    /// Stops the syncer thread and waits for it, so that its handle on the database is gone
    /// when the store finishes dropping: RocksDB then closes here, not at process exit (where
    /// an open database's background threads can abort the process).
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn run(
    db: Arc<DB>,
    rx: Receiver<Pending>,
    poisoned: Arc<AtomicBool>,
    appends: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    observer: ObserverSlot,
) {
    let mut pending: Vec<Pending> = Vec::with_capacity(256);
    // `recv` fails only when every sender is dropped: the store is closing.
    while let Ok(first) = rx.recv() {
        pending.push(first);
        pending.extend(rx.try_iter());
        let started = Instant::now();
        let result = if poisoned.load(Ordering::Acquire) {
            Err(io::Error::other(
                "storage poisoned by an earlier fsync failure",
            ))
        } else {
            sync_wal(&db)
        };
        match &result {
            Ok(()) => {
                syncs.fetch_add(1, Ordering::Relaxed);
                appends.fetch_add(pending.len() as u64, Ordering::Relaxed);
                if let Some(o) = observer.get() {
                    let records = pending.iter().map(|p| p.records).sum();
                    o.fsynced(started.elapsed(), pending.len(), records);
                }
            }
            Err(e) => {
                // Never retry a failed fsync: the kernel may have dropped the dirty pages.
                poisoned.store(true, Ordering::Release);
                tracing::error!(error = %e, "WAL fsync failed; store poisoned");
            }
        }
        for p in pending.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            (p.done)(r);
        }
    }
}

#[cfg(not(feature = "canary-skip-fsync"))]
fn sync_wal(db: &DB) -> io::Result<()> {
    db.flush_wal(true).map_err(io::Error::other)
}

/// Canary for the fault harness: acknowledges appends without making them durable.
// canary: no `flush_wal` at all; with `set_manual_wal_flush` (see `Store::open`) the WAL stays in
// process memory until its buffer fills or a vote is written with sync.
#[cfg(feature = "canary-skip-fsync")]
fn sync_wal(_db: &DB) -> io::Result<()> {
    Ok(())
}

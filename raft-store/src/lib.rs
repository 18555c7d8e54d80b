//! Raft storage for Raftka: every Raft group of a node lives in ONE RocksDB.
//!
//! The Raft log *is* the partition log. A produce batch is written once, as a Raft log entry in
//! the `log` column family; applying it only assigns Kafka offsets and writes a small index row
//! `(group, base_offset) -> (raft index, record bytes)`. Fetches read record payloads straight
//! out of the Raft log through that index. The key layout of every column family is in
//! [`keys`]; `docs/architecture.md` explains it.
//!
//! Module map:
//! - [`types`]: the openraft type configuration, commands and records;
//! - [`store`]: the shared RocksDB handle, the poisoned flag and the group-commit syncer;
//! - [`format`]: the store's format version stamp, checked before RocksDB opens;
//! - [`log_store`]: openraft's `RaftLogStorage` for one group;
//! - [`partition_state`]: a partition's log state and the pure part of applying an entry;
//! - [`dedup`]: idempotent-producer and idempotency-key memory;
//! - [`partition_sm`]: the partition state machine (offset assignment, high watermark,
//!   retention truncation, boundary snapshots);
//! - [`blob_sm`]: a small whole-state state machine, used by the metadata group;
//! - [`reader`]: reading records by offset.
//!
//! Invariants:
//! - An append is acknowledged to openraft only after a WAL fsync that covers it. One fsync
//!   completes every append queued before it, across all groups (group commit).
//! - A failed fsync poisons the store: every later write fails, nothing is retried.
//! - Offsets are a pure function of the committed log prefix, so every replica agrees on them.

pub mod blob_sm;
pub mod codec;
pub mod dedup;
pub mod format;
pub mod keys;
pub mod log_store;
mod offset_index;
pub mod partition_sm;
pub mod partition_state;
pub mod reader;
mod sm_rows;
pub mod store;
mod syncer;
pub mod types;

pub use blob_sm::{BlobState, BlobStateMachine};
pub use dedup::DedupState;
pub use log_store::LogStore;
pub use partition_sm::PartitionStateMachine;
pub use partition_state::{LogProgress, PartitionState};
pub use reader::{is_below_log_start, FetchedRecord, PartitionReader, ReadLimits};
pub use store::{DiskStats, Store, StoreError, StoreOptions};
pub use syncer::SyncObserver;
pub use types::*;

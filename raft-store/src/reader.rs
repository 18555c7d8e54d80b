//! Reads records by offset, straight out of the Raft log, through the offset index.

use std::io;

use openraft::EntryPayload;
use rocksdb::{Direction, IteratorMode};

use crate::keys::{self, CF_OFFSETS, CF_TIME};
use crate::log_store::LogStore;
use crate::offset_index;
use crate::store::Store;
use crate::types::{Command, GroupId, Record};

/// A read asked for an offset that retention has deleted (possibly while the read ran). The
/// caller answers `offset_out_of_range` with the current bounds.
#[derive(Debug, thiserror::Error)]
#[error("group {group}: offset {offset} is below the log start")]
pub struct BelowLogStart {
    /// The group read.
    pub group: GroupId,
    /// The offset that is gone.
    pub offset: u64,
}

fn below_log_start(group: GroupId, offset: u64) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, BelowLogStart { group, offset })
}

/// Whether a read failed because its offset was deleted by retention.
pub fn is_below_log_start(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<BelowLogStart>())
}

/// A record together with its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    /// The record's offset in its partition.
    pub offset: u64,
    /// The record.
    pub record: Record,
}

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// At most this many records.
    pub max_records: usize,
    /// At most about this many bytes; the first record is returned whatever its size.
    pub max_bytes: usize,
}

/// Reads one partition's committed records. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PartitionReader {
    store: Store,
    log: LogStore,
    group: GroupId,
}

impl PartitionReader {
    /// A reader of `group`.
    pub fn new(store: Store, group: GroupId) -> Self {
        Self {
            log: LogStore::new(store.clone(), group),
            store,
            group,
        }
    }

    /// The first offset in `[log_start, high_watermark)` whose record timestamp is at or after
    /// `timestamp_ms`, as Kafka's ListOffsets answers it; `None` when there is none.
    ///
    /// The time index holds a row wherever the running maximum timestamp rose, so every record
    /// before the first row at or above `timestamp_ms` is older, and the answer lies in or after
    /// that row's batch.
    ///
    /// # Errors
    /// On storage failure or a corrupt entry.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
        log_start: u64,
        high_watermark: u64,
    ) -> io::Result<Option<u64>> {
        let cf = self.store.cf(CF_TIME)?;
        let seek = keys::key(self.group, keys::timestamp_key(timestamp_ms));
        let start = match self
            .store
            .db()
            .iterator_cf(cf, IteratorMode::From(&seek, Direction::Forward))
            .next()
        {
            None => return Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(io::Error::other)?;
                match keys::parse_key(&k) {
                    Some((g, _)) if g == self.group => {
                        u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad time index row")
                        })?)
                    }
                    _ => return Ok(None),
                }
            }
        };
        let mut from = start.max(log_start);
        while from < high_watermark {
            let limits = ReadLimits {
                max_records: 1000,
                max_bytes: usize::MAX,
            };
            let chunk = self.read(from, high_watermark, limits)?;
            let Some(last) = chunk.last() else { break };
            if let Some(hit) = chunk.iter().find(|r| r.record.timestamp_ms >= timestamp_ms) {
                return Ok(Some(hit.offset));
            }
            from = last.offset + 1;
        }
        Ok(None)
    }

    /// Where `retention.bytes` wants the log to start: past the oldest batches for as long as
    /// what remains is still at least `retention_bytes`, as Kafka deletes whole segments. So
    /// the partition keeps between `retention_bytes` and that plus one batch.
    ///
    /// # Errors
    /// On storage failure or a corrupt index row.
    pub fn size_retention_start(
        &self,
        log_start: u64,
        high_watermark: u64,
        log_bytes: u64,
        retention_bytes: u64,
    ) -> io::Result<u64> {
        let mut remaining = log_bytes;
        if remaining <= retention_bytes {
            return Ok(log_start);
        }
        // Past every batch deleted so far; the high watermark once all of them are.
        let mut start = log_start;
        for row in offset_index::rows_from(&self.store, self.group, log_start)? {
            let (base, row) = row?;
            if base >= high_watermark {
                break;
            }
            // Deleting this batch (whose records start at `base`) moves the start past it.
            if remaining.saturating_sub(row.bytes) < retention_bytes {
                return Ok(base);
            }
            remaining -= row.bytes;
            start = high_watermark;
        }
        Ok(start)
    }

    /// Where `retention.ms` wants the log to start: at the first batch that holds a record
    /// with a timestamp at or after `cutoff_ms` (every batch before it is older), or at the high
    /// watermark when every record is older. Kafka's rule for segments, per batch.
    ///
    /// # Errors
    /// On storage failure or a corrupt index row.
    pub fn time_retention_start(
        &self,
        cutoff_ms: i64,
        log_start: u64,
        high_watermark: u64,
    ) -> io::Result<u64> {
        let cf = self.store.cf(CF_TIME)?;
        let seek = keys::key(self.group, keys::timestamp_key(cutoff_ms));
        let first_recent = match self
            .store
            .db()
            .iterator_cf(cf, IteratorMode::From(&seek, Direction::Forward))
            .next()
        {
            None => None,
            Some(item) => {
                let (k, v) = item.map_err(io::Error::other)?;
                match keys::parse_key(&k) {
                    Some((g, _)) if g == self.group => {
                        Some(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad time index row")
                        })?))
                    }
                    _ => None,
                }
            }
        };
        Ok(first_recent
            .unwrap_or(high_watermark)
            .clamp(log_start, high_watermark.max(log_start)))
    }

    /// Returns records with offsets in `[from, high_watermark)`, within `limits`.
    ///
    /// The caller passes the high watermark it read from the state machine's progress, so the
    /// read never returns uncommitted data even while apply moves on concurrently.
    ///
    /// # Errors
    /// [`is_below_log_start`] when `from` is (or becomes, during the read) deleted by retention;
    /// otherwise on storage failure or a corrupt entry.
    pub fn read(
        &self,
        from: u64,
        high_watermark: u64,
        limits: ReadLimits,
    ) -> io::Result<Vec<FetchedRecord>> {
        let mut out = Vec::new();
        if from >= high_watermark || limits.max_records == 0 {
            return Ok(out);
        }
        let cf = self.store.cf(CF_OFFSETS)?;
        let db = self.store.db();
        // The batch holding `from` starts at the greatest base offset <= from.
        let first_base = match db
            .iterator_cf(
                cf,
                IteratorMode::From(&keys::key(self.group, from), Direction::Reverse),
            )
            .next()
        {
            Some(item) => {
                let (k, _) = item.map_err(io::Error::other)?;
                match keys::parse_key(&k) {
                    Some((g, base)) if g == self.group => base,
                    _ => return Err(below_log_start(self.group, from)),
                }
            }
            // Every offset in [log start, high watermark) lies in a batch with a row; none at
            // or below `from` means retention deleted it since the caller looked.
            None => return Err(below_log_start(self.group, from)),
        };
        let mut bytes = 0usize;
        for row in offset_index::rows_from(&self.store, self.group, first_base)? {
            let (base, row) = row?;
            if base >= high_watermark {
                break;
            }
            let index = row.raft_index;
            // A row whose entry is gone was deleted by retention while this read ran.
            let entry = self
                .log
                .read_one(index)?
                .ok_or_else(|| below_log_start(self.group, base))?;
            let EntryPayload::Normal(Command::Produce(batch)) = entry.payload else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("raft entry {index} is not a produce batch"),
                ));
            };
            for (i, record) in batch.records.into_iter().enumerate() {
                let offset = base + i as u64;
                if offset < from {
                    continue;
                }
                if offset >= high_watermark || out.len() >= limits.max_records {
                    return Ok(out);
                }
                let size = record.approx_size();
                if !out.is_empty() && bytes + size > limits.max_bytes {
                    return Ok(out);
                }
                bytes += size;
                out.push(FetchedRecord { offset, record });
            }
        }
        Ok(out)
    }
}

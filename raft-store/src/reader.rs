//! Reads records by offset, straight out of the Raft log, through the offset index.

use std::io;

use openraft::EntryPayload;
use rocksdb::{Direction, IteratorMode};

use crate::keys::{self, CF_OFFSETS, CF_TIME};
use crate::log_store::LogStore;
use crate::store::Store;
use crate::types::{Command, GroupId, Record};

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

    /// Returns records with offsets in `[from, high_watermark)`, within `limits`.
    ///
    /// The caller passes the high watermark it read from the state machine's progress, so the
    /// read never returns uncommitted data even while apply moves on concurrently.
    ///
    /// # Errors
    /// On storage failure or a corrupt entry.
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
        let start_key = match db
            .iterator_cf(
                cf,
                IteratorMode::From(&keys::key(self.group, from), Direction::Reverse),
            )
            .next()
        {
            Some(item) => {
                let (k, _) = item.map_err(io::Error::other)?;
                match keys::parse_key(&k) {
                    Some((g, base)) if g == self.group => keys::key(self.group, base),
                    _ => keys::key(self.group, from),
                }
            }
            None => keys::key(self.group, from),
        };
        let mut bytes = 0usize;
        for item in db.iterator_cf(cf, IteratorMode::From(&start_key, Direction::Forward)) {
            let (k, v) = item.map_err(io::Error::other)?;
            let Some((g, base)) = keys::parse_key(&k) else {
                break;
            };
            if g != self.group || base >= high_watermark {
                break;
            }
            let index =
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad offset index row")
                })?);
            let entry = self.log.read_one(index)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "group {} offset {base}: raft entry {index} missing",
                        self.group
                    ),
                )
            })?;
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

//! The state of a partition's log, and the pure part of applying an entry to it.
//!
//! [`PartitionState::apply_payload`] is a function of the state and the entry only: it assigns
//! offsets, runs deduplication and tracks the time maximum, and tells the caller which index
//! rows to write. The state machine calls it when applying, and the boundary snapshot builder
//! calls it to replay the log up to the retention boundary, so both compute the same state.
//!
//! Retention keeps two facts here:
//! - `log_start_offset` only rises, and only through a `Truncate` entry, so every replica agrees
//!   on it;
//! - `first_retained_index` is the Raft index of the batch holding `log_start_offset`. Every
//!   entry before it holds only deleted offsets, so the log may be purged up to it (exclusive)
//!   once a snapshot stands for that prefix ([`PartitionState::snapshot_point`]).

use openraft::type_config::alias::{EntryPayloadOf, LogIdOf, StoredMembershipOf};
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};

use crate::dedup::{DedupState, DedupVerdict};
use crate::types::{ApplyResult, Command, TypeConfig};

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
    /// Record bytes ([`crate::types::Record::approx_size`]) in `[log_start_offset,
    /// next_offset)`: what `retention.bytes` limits.
    pub log_bytes: u64,
    /// Raft index of the batch holding `log_start_offset`; `None` while no record is retained.
    pub first_retained_index: Option<u64>,
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
    /// Record bytes retained in `[log_start_offset, high_watermark)`.
    pub log_bytes: u64,
    /// The Raft index up to which (inclusive) a snapshot may stand for the log; see
    /// [`PartitionState::snapshot_point`].
    pub snapshot_point: Option<u64>,
}

/// A side effect of applying a batch that the state machine must persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing to write beyond the state row.
    None,
    /// A batch took `[base_offset, base_offset + count)`: write its offset-index row, and a
    /// time-index row if it raised the running maximum timestamp.
    Appended {
        /// The batch's first offset.
        base_offset: u64,
        /// Its record bytes.
        bytes: u64,
        /// The new running maximum timestamp, when the batch raised it.
        raised_max_timestamp: Option<i64>,
    },
    /// A `Truncate` entry: the state machine moves the log start (it needs the offset index).
    Truncate {
        /// The requested first offset to keep.
        before_offset: u64,
    },
}

impl PartitionState {
    /// The progress published to readers.
    pub fn progress(&self) -> LogProgress {
        LogProgress {
            high_watermark: self.next_offset,
            log_start_offset: self.log_start_offset,
            applied_index: self.applied.as_ref().map_or(0, |l| l.index()),
            log_bytes: self.log_bytes,
            snapshot_point: self.snapshot_point(),
        }
    }

    /// The last Raft index whose entries (and all before it) hold only offsets below
    /// `log_start_offset`: a snapshot there stands for everything deleted and nothing retained,
    /// so the log may be purged up to it. `None` when nothing has been applied.
    pub fn snapshot_point(&self) -> Option<u64> {
        match self.first_retained_index {
            Some(first) => first.checked_sub(1),
            None => self.applied.as_ref().map(|l| l.index()),
        }
    }

    /// Applies the bookkeeping of one entry at `index` and says what the caller must persist.
    /// Does not touch `applied`, which the caller sets after it has handled the effect.
    pub fn apply_payload(
        &mut self,
        log_id: &LogIdOf<TypeConfig>,
        payload: &EntryPayloadOf<TypeConfig>,
    ) -> (ApplyResult, Effect) {
        match payload {
            EntryPayload::Blank => (ApplyResult::Empty, Effect::None),
            EntryPayload::Membership(m) => {
                self.membership = StoredMembershipOf::<TypeConfig>::new(Some(*log_id), m.clone());
                (ApplyResult::Empty, Effect::None)
            }
            EntryPayload::Normal(Command::Truncate { before_offset }) => (
                ApplyResult::Truncated {
                    log_start_offset: self.log_start_offset,
                },
                Effect::Truncate {
                    before_offset: *before_offset,
                },
            ),
            EntryPayload::Normal(Command::Blob(_)) => (
                ApplyResult::Rejected("a partition group does not take blob commands".into()),
                Effect::None,
            ),
            EntryPayload::Normal(Command::Produce(records)) => match self.dedup.check(records) {
                DedupVerdict::Duplicate(b) => (
                    ApplyResult::Produced {
                        base_offset: b.base_offset,
                        count: b.count,
                        duplicate: true,
                    },
                    Effect::None,
                ),
                DedupVerdict::OutOfOrder { expected } => (
                    ApplyResult::SequenceError {
                        expected,
                        got: records.producer.as_ref().map_or(0, |p| p.sequence),
                    },
                    Effect::None,
                ),
                DedupVerdict::Append => {
                    let base_offset = self.next_offset;
                    let count = records.records.len() as u64;
                    let result = ApplyResult::Produced {
                        base_offset,
                        count: count as u32,
                        duplicate: false,
                    };
                    if count == 0 {
                        return (result, Effect::None);
                    }
                    let index = log_id.index();
                    if self.first_retained_index.is_none() {
                        self.first_retained_index = Some(index);
                    }
                    self.next_offset = base_offset + count;
                    let bytes: u64 = records.records.iter().map(|r| r.approx_size() as u64).sum();
                    self.log_bytes += bytes;
                    self.dedup.remember(records, base_offset, index);
                    // Time index: a row wherever the running maximum timestamp rises, so a
                    // lookup finds the first batch that can hold a record at or after a time
                    // even when timestamps go back.
                    let batch_max = records.records.iter().map(|r| r.timestamp_ms).max();
                    let raised = batch_max.filter(|m| self.max_timestamp.is_none_or(|c| *m > c));
                    if raised.is_some() {
                        self.max_timestamp = raised;
                    }
                    (
                        result,
                        Effect::Appended {
                            base_offset,
                            bytes,
                            raised_max_timestamp: raised,
                        },
                    )
                }
            },
        }
    }

    /// Moves the log start to `new_start` (already aligned to a batch boundary by the caller),
    /// forgetting `removed_bytes`, with `first_retained_index` the batch now holding the start.
    pub fn truncate_to(
        &mut self,
        new_start: u64,
        removed_bytes: u64,
        first_retained_index: Option<u64>,
    ) {
        debug_assert!(new_start >= self.log_start_offset && new_start <= self.next_offset);
        self.log_start_offset = new_start;
        self.log_bytes = self.log_bytes.saturating_sub(removed_bytes);
        self.first_retained_index = first_retained_index;
    }

    /// Turns the replayed state at a snapshot point into the snapshot's state: every offset
    /// below `next_offset` is deleted, so nothing is retained.
    pub fn into_boundary(mut self) -> Self {
        self.log_start_offset = self.next_offset;
        self.log_bytes = 0;
        self.first_retained_index = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Record, RecordBatch, ValueKind};

    fn log_id(index: u64) -> LogIdOf<TypeConfig> {
        openraft::testing::log_id::<TypeConfig>(1, 1, index)
    }

    fn produce(timestamps: &[i64]) -> EntryPayloadOf<TypeConfig> {
        EntryPayload::Normal(Command::Produce(RecordBatch {
            records: timestamps
                .iter()
                .map(|t| Record {
                    timestamp_ms: *t,
                    key: None,
                    value: bytes::Bytes::from_static(b"1234"),
                    value_kind: ValueKind::Json,
                    headers: vec![],
                })
                .collect(),
            ..Default::default()
        }))
    }

    #[test]
    fn batches_take_dense_offsets_and_count_bytes() {
        let mut s = PartitionState::default();
        let (r, e) = s.apply_payload(&log_id(1), &produce(&[5, 3]));
        assert_eq!(
            r,
            ApplyResult::Produced {
                base_offset: 0,
                count: 2,
                duplicate: false
            }
        );
        assert_eq!(
            e,
            Effect::Appended {
                base_offset: 0,
                bytes: 40,
                raised_max_timestamp: Some(5)
            }
        );
        let (_, e) = s.apply_payload(&log_id(2), &produce(&[4]));
        assert!(matches!(
            e,
            Effect::Appended {
                base_offset: 2,
                raised_max_timestamp: None,
                ..
            }
        ));
        assert_eq!((s.next_offset, s.log_bytes), (3, 60));
        assert_eq!(s.first_retained_index, Some(1));
    }

    #[test]
    fn snapshot_point_stops_before_the_first_retained_batch() {
        let mut s = PartitionState::default();
        assert_eq!(s.snapshot_point(), None, "nothing applied");
        s.apply_payload(&log_id(0), &EntryPayload::Blank);
        s.applied = Some(log_id(0));
        assert_eq!(s.snapshot_point(), Some(0), "no records: all of it");
        s.apply_payload(&log_id(1), &produce(&[1]));
        s.apply_payload(&log_id(2), &produce(&[2]));
        s.applied = Some(log_id(2));
        assert_eq!(s.snapshot_point(), Some(0), "records retained from index 1");
        s.truncate_to(1, 20, Some(2));
        assert_eq!(s.snapshot_point(), Some(1));
        s.truncate_to(2, 20, None);
        assert_eq!(s.snapshot_point(), Some(2), "all deleted: up to applied");
        assert_eq!(s.log_bytes, 0);
    }

    #[test]
    fn truncate_entries_are_left_to_the_state_machine() {
        let mut s = PartitionState::default();
        let (_, e) = s.apply_payload(
            &log_id(1),
            &EntryPayload::Normal(Command::Truncate { before_offset: 9 }),
        );
        assert_eq!(e, Effect::Truncate { before_offset: 9 });
        assert_eq!(s.log_start_offset, 0, "the state machine moves the start");
    }
}

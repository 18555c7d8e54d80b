//! Deduplication memory of a partition: the last few batches of each idempotent producer and
//! the recent idempotency keys, so that a retried batch gets its original offsets back.
//!
//! It is part of the partition state (and so of every snapshot), bounded, and evicts
//! deterministically (by Raft index), so every replica remembers exactly the same batches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::RecordBatch;

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

//! Key layout. Every key starts with the big-endian group id, so one group's rows are one
//! contiguous, ordered range and a group can be dropped with a single range delete.
//!
//! | column family | key                         | value                              |
//! |---------------|-----------------------------|------------------------------------|
//! | `log`         | group ++ raft index         | postcard(openraft Entry)           |
//! | `raft`        | group ++ tag                | vote / last purged log id          |
//! | `sm`          | group ++ tag                | state machine state                |
//! | `offsets`     | group ++ base offset        | raft index ++ record bytes of batch|
//! | `snapshot`    | group                       | postcard(snapshot meta, data)      |
//! | `time`        | group ++ max timestamp      | base offset where the max rose     |

use crate::types::GroupId;

/// Column family holding the Raft log entries (the partition data).
pub const CF_LOG: &str = "log";
/// Column family holding the Raft vote and purge marker.
pub const CF_RAFT: &str = "raft";
/// Column family holding state machine state.
pub const CF_SM: &str = "sm";
/// Column family holding the offset index.
pub const CF_OFFSETS: &str = "offsets";
/// Column family holding the current snapshot of each group.
pub const CF_SNAPSHOT: &str = "snapshot";
/// Column family holding the time index: `(group, running max timestamp) -> base offset`.
pub const CF_TIME: &str = "time";
/// All column families.
pub const ALL_CFS: [&str; 6] = [CF_LOG, CF_RAFT, CF_SM, CF_OFFSETS, CF_SNAPSHOT, CF_TIME];

/// Maps a signed timestamp to an unsigned key part that sorts the same way.
pub fn timestamp_key(ts: i64) -> u64 {
    (ts as u64) ^ (1 << 63)
}

/// Tag of the vote row in [`CF_RAFT`].
pub const TAG_VOTE: u64 = 1;
/// Tag of the last-purged row in [`CF_RAFT`].
pub const TAG_PURGED: u64 = 2;
/// Tag of the state row in [`CF_SM`].
pub const TAG_SM_STATE: u64 = 1;

/// An offset-index row's value: where a batch lives in the Raft log and how many record bytes
/// it holds (what `retention.bytes` counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRow {
    /// Raft index of the entry holding the batch.
    pub raft_index: u64,
    /// Sum of the batch's records' [`crate::types::Record::approx_size`].
    pub bytes: u64,
}

impl OffsetRow {
    /// The stored form: both fields big-endian.
    pub fn encode(&self) -> [u8; 16] {
        key(self.raft_index, self.bytes)
    }

    /// Parses a stored row; `None` when it has another shape (corruption).
    pub fn decode(v: &[u8]) -> Option<Self> {
        let (raft_index, bytes) = parse_key(v)?;
        (v.len() == 16).then_some(Self { raft_index, bytes })
    }
}

/// `group ++ n`, both big-endian, so keys sort by group, then by `n`.
pub fn key(group: GroupId, n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The key of a group's single row (snapshot).
pub fn group_key(group: GroupId) -> [u8; 8] {
    group.to_be_bytes()
}

/// Splits a 16-byte key back into `(group, n)`; `None` for a key of another shape.
pub fn parse_key(k: &[u8]) -> Option<(GroupId, u64)> {
    let g: [u8; 8] = k.get(..8)?.try_into().ok()?;
    let n: [u8; 8] = k.get(8..16)?.try_into().ok()?;
    Some((u64::from_be_bytes(g), u64::from_be_bytes(n)))
}

/// The half-open key range that holds all of `group`'s rows in a 16-byte-keyed family.
pub fn group_range(group: GroupId) -> ([u8; 16], [u8; 16]) {
    (key(group, 0), end_of_group(group))
}

fn end_of_group(group: GroupId) -> [u8; 16] {
    match group.checked_add(1) {
        Some(next) => key(next, 0),
        None => [0xff; 16],
    }
}

/// Exclusive upper bound for `group`'s rows with `n` strictly below `upto`.
pub fn below(group: GroupId, upto: u64) -> [u8; 16] {
    key(group, upto)
}

/// Exclusive end key for all of `group`'s rows.
pub fn group_end(group: GroupId) -> [u8; 16] {
    end_of_group(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_order_is_group_then_index(a in any::<(u64, u64)>(), b in any::<(u64, u64)>()) {
            prop_assert_eq!(key(a.0, a.1).cmp(&key(b.0, b.1)), a.cmp(&b));
        }

        #[test]
        fn key_round_trips(g in any::<u64>(), n in any::<u64>()) {
            prop_assert_eq!(parse_key(&key(g, n)), Some((g, n)));
        }
    }

    proptest! {
        #[test]
        fn timestamp_keys_keep_order(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(timestamp_key(a).cmp(&timestamp_key(b)), a.cmp(&b));
        }
    }

    proptest! {
        #[test]
        fn offset_rows_round_trip(i in any::<u64>(), b in any::<u64>()) {
            let row = OffsetRow { raft_index: i, bytes: b };
            prop_assert_eq!(OffsetRow::decode(&row.encode()), Some(row));
        }
    }

    #[test]
    fn offset_rows_of_another_shape_are_refused() {
        assert_eq!(OffsetRow::decode(&7u64.to_be_bytes()), None);
        assert_eq!(OffsetRow::decode(&[0u8; 17]), None);
    }

    #[test]
    fn group_range_contains_only_that_group() {
        let (lo, hi) = group_range(7);
        assert!(key(7, 0) >= lo && key(7, u64::MAX) < hi);
        assert!(key(8, 0) >= hi);
        assert!(key(6, u64::MAX) < lo);
        assert_eq!(group_range(u64::MAX).1, [0xff; 16]);
    }
}

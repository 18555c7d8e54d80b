//! The offset index: one row per produce batch, `(group, base offset) -> (raft index, bytes)`,
//! written by apply and deleted below the log start by retention.

use std::io;

use rocksdb::{Direction, IteratorMode};

use crate::keys::{self, OffsetRow, CF_OFFSETS};
use crate::store::Store;
use crate::types::GroupId;

/// The rows of `group`'s batches with base offsets at or above `from`, ascending.
pub(crate) fn rows_from(
    store: &Store,
    group: GroupId,
    from: u64,
) -> io::Result<impl Iterator<Item = io::Result<(u64, OffsetRow)>> + '_> {
    let cf = store.cf(CF_OFFSETS)?;
    let start = keys::key(group, from);
    Ok(store
        .db()
        .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        .map_while(move |item| {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return Some(Err(io::Error::other(e))),
            };
            match keys::parse_key(&k) {
                Some((g, base)) if g == group => {
                    Some(OffsetRow::decode(&v).map(|row| (base, row)).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad offset index row")
                    }))
                }
                _ => None,
            }
        }))
}

//! The rows every state machine keeps: its state row and its current snapshot.
//!
//! Neither is fsynced on its own: both are recomputed or re-sent after a crash (the state by
//! re-applying the durable log, the snapshot by being rebuilt or re-installed), and the WAL is
//! ordered, so a later synced write covers them.

use std::io;

use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::keys::{self, CF_SM, CF_SNAPSHOT, TAG_SM_STATE};
use crate::store::Store;
use crate::types::{GroupId, TypeConfig};

/// A stored snapshot: its meta and data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    data: Vec<u8>,
}

/// Reads the state row of `group`.
pub(crate) fn read_state<T: serde::de::DeserializeOwned>(
    store: &Store,
    group: GroupId,
) -> io::Result<Option<T>> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_SM)?, keys::key(group, TAG_SM_STATE))
        .map_err(io::Error::other)?
    {
        Some(b) => Ok(Some(decode(&b)?)),
        None => Ok(None),
    }
}

/// Reads the current snapshot of `group`.
pub(crate) fn read_snapshot(
    store: &Store,
    group: GroupId,
) -> io::Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_SNAPSHOT)?, keys::group_key(group))
        .map_err(io::Error::other)?
    {
        Some(b) => {
            let s: StoredSnapshot = decode(&b)?;
            Ok(Some(SnapshotOf::<TypeConfig, Vec<u8>> {
                meta: s.meta,
                snapshot: s.data,
            }))
        }
        None => Ok(None),
    }
}

/// Adds the write of `group`'s current snapshot to `batch`.
pub(crate) fn write_snapshot(
    store: &Store,
    group: GroupId,
    meta: &SnapshotMetaOf<TypeConfig>,
    data: &[u8],
    batch: &mut WriteBatch,
) -> io::Result<()> {
    let stored = StoredSnapshot {
        meta: meta.clone(),
        data: data.to_vec(),
    };
    batch.put_cf(
        store.cf(CF_SNAPSHOT)?,
        keys::group_key(group),
        encode(&stored)?,
    );
    Ok(())
}

/// Stores `snap` as `group`'s current snapshot, on its own (unsynced, as every snapshot write).
pub(crate) fn save_snapshot(
    store: &Store,
    group: GroupId,
    snap: &SnapshotOf<TypeConfig, Vec<u8>>,
) -> io::Result<()> {
    let mut batch = WriteBatch::default();
    write_snapshot(store, group, &snap.meta, &snap.snapshot, &mut batch)?;
    store.write_nosync(batch)
}

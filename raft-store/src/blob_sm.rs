//! A state machine whose whole state is one small serialized value, rewritten on every applied
//! batch. The metadata group uses it: topics, placement and nodes change rarely and stay small.

use std::io;
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::WriteBatch;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::codec::{decode, encode};
use crate::keys::{self, CF_SM, TAG_SM_STATE};
use crate::sm_rows::{read_snapshot, read_state, save_snapshot, write_snapshot};
use crate::store::Store;
use crate::types::{ApplyResult, Command, GroupId, TypeConfig};

/// Application state kept by a [`BlobStateMachine`].
pub trait BlobState:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Applies one command at Raft index `index` and returns the encoded response.
    /// Must be deterministic: every replica applies the same commands in the same order.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct Persisted<S> {
    applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    state: S,
}

/// A state machine over a [`BlobState`]. The state is shared for reading through
/// [`BlobStateMachine::shared`]; the applied index is published on a watch channel.
pub struct BlobStateMachine<S: BlobState> {
    store: Store,
    group: GroupId,
    applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    state: Arc<RwLock<S>>,
    applied_tx: watch::Sender<u64>,
}

impl<S: BlobState> BlobStateMachine<S> {
    /// Loads the state machine of `group`.
    ///
    /// # Errors
    /// When the stored state cannot be read or decoded.
    pub fn open(store: Store, group: GroupId) -> io::Result<Self> {
        let p: Persisted<S> = read_state(&store, group)?.unwrap_or_default();
        let (applied_tx, _) = watch::channel(p.applied.as_ref().map_or(0, |l| l.index()));
        Ok(Self {
            store,
            group,
            applied: p.applied,
            membership: p.membership,
            state: Arc::new(RwLock::new(p.state)),
            applied_tx,
        })
    }

    /// The shared state. Readers take the read lock briefly and never across an await.
    pub fn shared(&self) -> Arc<RwLock<S>> {
        self.state.clone()
    }

    /// A receiver of the last applied Raft index.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn snapshot_now(&self) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        let state = self.read_state()?;
        let data = encode(&state)?;
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta: SnapshotMetaOf::<TypeConfig> {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            snapshot: data,
        })
    }

    fn read_state(&self) -> io::Result<S> {
        self.state
            .read()
            .map(|g| g.clone())
            .map_err(|_| io::Error::other("state lock poisoned"))
    }

    fn persist(&self, mut batch: WriteBatch) -> io::Result<()> {
        let p = Persisted {
            applied: self.applied,
            membership: self.membership.clone(),
            state: self.read_state()?,
        };
        batch.put_cf(
            self.store.cf(CF_SM)?,
            keys::key(self.group, TAG_SM_STATE),
            encode(&p)?,
        );
        self.store.write_nosync(batch)
    }
}

/// Builds snapshots of a [`BlobStateMachine`].
pub struct BlobSnapshotBuilder {
    snapshot: io::Result<SnapshotOf<TypeConfig, Vec<u8>>>,
    store: Store,
    group: GroupId,
}

impl RaftSnapshotBuilder<TypeConfig> for BlobSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let snap = std::mem::replace(&mut self.snapshot, Err(io::Error::other("built twice")))?;
        save_snapshot(&self.store, self.group, &snap)?;
        Ok(snap)
    }
}

impl<S: BlobState> RaftStateMachine<TypeConfig> for BlobStateMachine<S> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = BlobSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let result = match entry.payload {
                EntryPayload::Blank => ApplyResult::Empty,
                EntryPayload::Membership(ref m) => {
                    self.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(log_id), m.clone());
                    ApplyResult::Empty
                }
                EntryPayload::Normal(Command::Blob(ref cmd)) => {
                    let mut st = self
                        .state
                        .write()
                        .map_err(|_| io::Error::other("state lock poisoned"))?;
                    ApplyResult::Blob(st.apply(log_id.index(), cmd))
                }
                EntryPayload::Normal(Command::Produce(_) | Command::Truncate { .. }) => {
                    ApplyResult::Rejected("the metadata group does not take records".into())
                }
            };
            self.applied = Some(log_id);
            if let Some(r) = responder {
                replies.push((r, result));
            }
        }
        self.persist(WriteBatch::default())?;
        self.applied_tx
            .send_replace(self.applied.as_ref().map_or(0, |l| l.index()));
        for (r, result) in replies {
            r.send(result);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        BlobSnapshotBuilder {
            snapshot: self.snapshot_now(),
            store: self.store.clone(),
            group: self.group,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let state: S = decode(&snapshot)?;
        {
            let mut st = self
                .state
                .write()
                .map_err(|_| io::Error::other("state lock poisoned"))?;
            *st = state;
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let mut batch = WriteBatch::default();
        write_snapshot(&self.store, self.group, meta, &snapshot, &mut batch)?;
        self.persist(batch)?;
        self.applied_tx
            .send_replace(self.applied.as_ref().map_or(0, |l| l.index()));
        self.store.note_snapshot_installed();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        read_snapshot(&self.store, self.group)
    }
}

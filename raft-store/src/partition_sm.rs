//! The partition state machine: assigns Kafka offsets to committed produce batches, and moves
//! the log start when retention says so.
//!
//! Applying a `Produce` entry writes one offset-index row `(group, base_offset) -> (raft index,
//! bytes)` and the small state row; the records themselves stay in the Raft log (written once).
//! Offsets are a pure function of the committed prefix, so every replica computes the same ones.
//!
//! Applying a `Truncate` entry raises `log_start_offset` (to a batch boundary, never past the
//! high watermark) and deletes the index rows below it. The log entries themselves go when
//! openraft purges up to the *boundary snapshot*: the state as it was just before the first
//! retained batch ([`PartitionState::snapshot_point`]). That snapshot is tiny (no record data),
//! and a replica that installs it then receives exactly the retained entries. The builder
//! computes it exactly by replaying the log from the previous snapshot up to the boundary (see
//! [`PartitionSnapshotBuilder`]), so deduplication memory and membership are those at the
//! boundary, not later ones.
//!
//! The high watermark is `next_offset` of the applied state, published on a `watch` channel for
//! long-polling fetches. Apply writes are not fsynced: after a crash they are recomputed from
//! the (durable) log by re-applying, with the same result.

use std::io;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::OptionalSend;
use rocksdb::{Direction, IteratorMode, WriteBatch};
use tokio::sync::watch;

use crate::codec::{decode, encode};
use crate::keys::{self, OffsetRow, CF_OFFSETS, CF_SM, CF_TIME, TAG_SM_STATE};
use crate::log_store::LogStore;
use crate::offset_index;
use crate::partition_state::{Effect, LogProgress, PartitionState};
use crate::sm_rows::{read_snapshot, read_state, save_snapshot, write_snapshot};
use crate::store::Store;
use crate::types::{ApplyResult, GroupId, TypeConfig};

/// How many entries the boundary snapshot builder reads from the log at a time.
const REPLAY_CHUNK: u64 = 256;

/// The partition state machine of one group.
pub struct PartitionStateMachine {
    store: Store,
    group: GroupId,
    state: PartitionState,
    progress: watch::Sender<LogProgress>,
}

impl PartitionStateMachine {
    /// Loads the state machine of `group` and returns it with a receiver of its progress.
    ///
    /// # Errors
    /// When the stored state cannot be read or decoded.
    pub fn open(store: Store, group: GroupId) -> io::Result<(Self, watch::Receiver<LogProgress>)> {
        let state: PartitionState = read_state(&store, group)?.unwrap_or_default();
        let (tx, rx) = watch::channel(state.progress());
        Ok((
            Self {
                store,
                group,
                state,
                progress: tx,
            },
            rx,
        ))
    }

    /// The current in-memory state.
    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    fn persist(&self, mut batch: WriteBatch) -> io::Result<()> {
        batch.put_cf(
            self.store.cf(CF_SM)?,
            keys::key(self.group, TAG_SM_STATE),
            encode(&self.state)?,
        );
        self.store.write_nosync(batch)
    }

    /// Applies a `Truncate` to the state and adds its index deletions to `batch`. Reads the
    /// offset index, so every earlier apply must already be written.
    fn truncate(&mut self, before_offset: u64, batch: &mut WriteBatch) -> io::Result<()> {
        let target = before_offset.min(self.state.next_offset);
        if target <= self.state.log_start_offset {
            return Ok(());
        }
        // Rows of the batches in [log_start, target], ascending.
        let mut rows: Vec<(u64, OffsetRow)> = Vec::new();
        for row in offset_index::rows_from(&self.store, self.group, self.state.log_start_offset)? {
            let (base, row) = row?;
            if base > target {
                break;
            }
            rows.push((base, row));
        }
        // The new start is the base of the batch holding `target` (rounding a mid-batch
        // request down), or the high watermark when everything goes.
        let (new_start, first_retained) = match rows.last() {
            Some((base, row)) if *base == target => (target, Some(row.raft_index)),
            _ if target == self.state.next_offset => (target, None),
            Some((base, row)) => (*base, Some(row.raft_index)),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "group {}: no offset row at or below {target} above the log start",
                        self.group
                    ),
                ))
            }
        };
        if new_start <= self.state.log_start_offset {
            return Ok(());
        }
        let removed: u64 = rows
            .iter()
            .filter(|(base, _)| *base < new_start)
            .map(|(_, r)| r.bytes)
            .sum();
        batch.delete_range_cf(
            self.store.cf(CF_OFFSETS)?,
            keys::key(self.group, 0),
            keys::key(self.group, new_start),
        );
        self.truncate_time_index(new_start, batch)?;
        self.state.truncate_to(new_start, removed, first_retained);
        Ok(())
    }

    /// Drops the time-index rows of deleted batches. The last one becomes `(its maximum,
    /// new_start)`: records from `new_start` on may still be as old as that maximum, so a lookup
    /// for an older time must start there.
    fn truncate_time_index(&self, new_start: u64, batch: &mut WriteBatch) -> io::Result<()> {
        let cf = self.store.cf(CF_TIME)?;
        let (lo, _) = keys::group_range(self.group);
        let mut last_deleted = None;
        for item in self
            .store
            .db()
            .iterator_cf(cf, IteratorMode::From(&lo, Direction::Forward))
        {
            let (k, v) = item.map_err(io::Error::other)?;
            match keys::parse_key(&k) {
                Some((g, _)) if g == self.group => {}
                _ => break,
            }
            let offset =
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "bad time index row")
                })?);
            if offset >= new_start {
                break;
            }
            batch.delete_cf(cf, &k);
            last_deleted = Some(k);
        }
        if let Some(k) = last_deleted {
            batch.put_cf(cf, &k, new_start.to_be_bytes());
        }
        Ok(())
    }

    fn builder(&self) -> PartitionSnapshotBuilder {
        let plan = match self.state.snapshot_point() {
            None => SnapshotPlan::Current(Box::new(self.state.clone())),
            Some(point) if Some(point) == self.state.applied.as_ref().map(|l| l.index()) => {
                SnapshotPlan::Current(Box::new(self.state.clone()))
            }
            Some(point) => SnapshotPlan::Replay {
                upto: point,
                log_start: self.state.log_start_offset,
            },
        };
        PartitionSnapshotBuilder {
            store: self.store.clone(),
            group: self.group,
            plan,
        }
    }
}

/// What a snapshot build will do, decided when the state machine hands out the builder.
#[derive(Clone)]
enum SnapshotPlan {
    /// Nothing is retained: the current state is the boundary state.
    Current(Box<PartitionState>),
    /// Replay the log from the stored snapshot up to `upto` (inclusive), where the state's
    /// `next_offset` must come out as `log_start`.
    Replay { upto: u64, log_start: u64 },
}

/// Builds a partition's boundary snapshot (see the module docs). Never a snapshot past the
/// first retained batch: that would let openraft purge retained records.
#[derive(Clone)]
pub struct PartitionSnapshotBuilder {
    store: Store,
    group: GroupId,
    plan: SnapshotPlan,
}

impl PartitionSnapshotBuilder {
    fn save(&self, state: &PartitionState) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: state.applied,
            last_membership: state.membership.clone(),
        };
        let snap = SnapshotOf::<TypeConfig, Vec<u8>> {
            meta,
            snapshot: encode(state)?,
        };
        save_snapshot(&self.store, self.group, &snap)?;
        Ok(snap)
    }

    /// The stored snapshot, for when there is nothing newer to build.
    fn stored(&self) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        read_snapshot(&self.store, self.group)?.ok_or_else(|| {
            io::Error::other(format!(
                "group {}: no snapshot stored and none to build",
                self.group
            ))
        })
    }

    /// The state at index `upto`, replayed from the stored snapshot (or from the log's start).
    /// `None` when the log no longer holds those entries (a newer snapshot was installed while
    /// this one was being built).
    fn replay(&self, upto: u64) -> io::Result<Option<PartitionState>> {
        let (mut state, mut next) = match read_snapshot(&self.store, self.group)? {
            Some(s) => {
                let Some(last) = s.meta.last_log_id else {
                    return Ok(None);
                };
                if last.index() >= upto {
                    return Ok(None);
                }
                let mut st: PartitionState = decode(&s.snapshot)?;
                st.applied = Some(last);
                st.membership = s.meta.last_membership.clone();
                (st, last.index() + 1)
            }
            None => (PartitionState::default(), 0),
        };
        let log = LogStore::new(self.store.clone(), self.group);
        while next <= upto {
            let end = (next + REPLAY_CHUNK).min(upto + 1);
            let entries = log.read_range(next, end)?;
            if entries.len() as u64 != end - next {
                return Ok(None);
            }
            for entry in entries {
                if entry.index() != next {
                    return Ok(None);
                }
                let log_id = entry.log_id();
                // Effects are rows, which the snapshot does not carry; truncations are summed
                // up by `into_boundary`.
                let _ = state.apply_payload(&log_id, &entry.payload);
                state.applied = Some(log_id);
                next += 1;
            }
        }
        Ok(Some(state))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for PartitionSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        match &self.plan {
            SnapshotPlan::Current(state) => self.save(state),
            SnapshotPlan::Replay { upto, log_start } => {
                let (upto, log_start) = (*upto, *log_start);
                let me = self.clone();
                // Reads up to the boundary's entries: off the async runtime.
                tokio::task::spawn_blocking(move || {
                    let Some(state) = me.replay(upto)? else {
                        return me.stored();
                    };
                    if state.next_offset != log_start {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "group {}: replay to index {upto} ends at offset {}, \
                                 but the log starts at {log_start}",
                                me.group, state.next_offset
                            ),
                        ));
                    }
                    me.save(&state.into_boundary())
                })
                .await
                .map_err(io::Error::other)?
            }
        }
    }
}

impl RaftStateMachine<TypeConfig> for PartitionStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.state.applied, self.state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // A handle of our own, so the column families stay borrowed across `truncate(&mut self)`.
        let store = self.store.clone();
        let cf_offsets = store.cf(CF_OFFSETS)?;
        let cf_time = store.cf(CF_TIME)?;
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let (mut result, effect) = self.state.apply_payload(&log_id, &entry.payload);
            match effect {
                Effect::None => {}
                Effect::Appended {
                    base_offset,
                    bytes,
                    raised_max_timestamp,
                } => {
                    let row = OffsetRow {
                        raft_index: log_id.index(),
                        bytes,
                    };
                    batch.put_cf(cf_offsets, keys::key(self.group, base_offset), row.encode());
                    if let Some(m) = raised_max_timestamp {
                        batch.put_cf(
                            cf_time,
                            keys::key(self.group, keys::timestamp_key(m)),
                            base_offset.to_be_bytes(),
                        );
                    }
                }
                Effect::Truncate { before_offset } => {
                    // Truncation reads the index: write what this call applied so far first.
                    self.persist(std::mem::take(&mut batch))?;
                    self.truncate(before_offset, &mut batch)?;
                    result = ApplyResult::Truncated {
                        log_start_offset: self.state.log_start_offset,
                    };
                }
            }
            self.state.applied = Some(log_id);
            if let Some(r) = responder {
                replies.push((r, result));
            }
        }
        self.persist(batch)?;
        self.progress.send_replace(self.state.progress());
        for (r, result) in replies {
            r.send(result);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder()
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.builder())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let mut state: PartitionState = decode(&snapshot)?;
        state.applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        // The snapshot stands for every offset below `next_offset`; this replica does not hold
        // those records, so they are below its log start.
        let state = state.into_boundary();
        let mut batch = WriteBatch::default();
        let (lo, hi) = keys::group_range(self.group);
        let cf_time = self.store.cf(CF_TIME)?;
        batch.delete_range_cf(self.store.cf(CF_OFFSETS)?, lo, hi);
        batch.delete_range_cf(cf_time, lo, hi);
        // Records from the log start on may be as old as the maximum so far (see
        // `truncate_time_index`).
        if let Some(m) = state.max_timestamp {
            batch.put_cf(
                cf_time,
                keys::key(self.group, keys::timestamp_key(m)),
                state.next_offset.to_be_bytes(),
            );
        }
        write_snapshot(&self.store, self.group, meta, &snapshot, &mut batch)?;
        self.state = state;
        self.persist(batch)?;
        self.progress.send_replace(self.state.progress());
        self.store.note_snapshot_installed();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        read_snapshot(&self.store, self.group)
    }
}

impl PartitionStateMachine {
    /// Stores the given snapshot as current (used by tests of recovery).
    ///
    /// # Errors
    /// On storage failure.
    pub fn store_snapshot(&self, snap: &SnapshotOf<TypeConfig, Vec<u8>>) -> io::Result<()> {
        save_snapshot(&self.store, self.group, snap)
    }
}

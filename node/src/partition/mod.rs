//! Partitions hosted on this node: the registry of open Raft groups and the leader-local
//! produce, fetch and status operations; [`retention`] deletes old records.

mod canary;
pub mod retention;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::ReadPolicy;
use raft_store::{
    ApplyResult, Command, FetchedRecord, GroupId, LogProgress, NodeId, PartitionReader,
    PartitionStateMachine, ReadLimits, RecordBatch,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{ApiError, ErrorCode};

/// A Raft handle on a partition group.
pub type PartitionRaft = raft_store::Raft<PartitionStateMachine>;

/// An open partition replica on this node. Cheap to clone.
#[derive(Clone)]
pub struct PartitionHandle {
    /// The Raft group id.
    pub group: GroupId,
    /// The Raft handle.
    pub raft: PartitionRaft,
    /// Applied progress (high watermark, log start).
    pub progress: watch::Receiver<LogProgress>,
    /// Reads records.
    pub reader: PartitionReader,
    /// This replica was added to a running group (by a move) rather than named at its
    /// creation: it never initializes the group, and refuses votes while its log is empty.
    pub joined: bool,
    /// Whether the replica is quiesced ([`crate::raft::quiesce`]).
    pub quiet: Arc<crate::raft::quiesce::Quiet>,
}

/// A batch's place in the log.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// The batch was a retry of one already in the log; these are its original offsets.
    pub duplicate: bool,
}

/// A fetch as it travels between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    /// First offset wanted.
    pub offset: u64,
    /// At most this many records.
    pub max_records: usize,
    /// At most about this many bytes.
    pub max_bytes: usize,
    /// Long-poll for up to this long when no record is available.
    pub max_wait_ms: u64,
}

/// A fetch result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchResponse {
    /// `(offset, record)` pairs, ascending.
    pub records: Vec<(u64, raft_store::Record)>,
    /// The high watermark when the read was made.
    pub high_watermark: u64,
    /// The log start offset when the read was made.
    pub log_start_offset: u64,
}

/// The answer to a timestamp lookup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The first offset at or after the time; `None` when no record is that recent.
    pub offset: Option<u64>,
    /// High watermark at the lookup.
    pub high_watermark: u64,
    /// Log start at the lookup.
    pub log_start_offset: u64,
}

/// One replica's view of a partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The leader, as this replica knows it.
    pub leader: Option<NodeId>,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start offset.
    pub log_start_offset: u64,
    /// How far each other replica is behind the leader. Only the leader knows it: `None`
    /// from any other replica.
    pub replicas_lag: Option<Vec<ReplicaLag>>,
}

/// A follower's replication progress, as its leader sees it (the wire type, also carried in
/// [`PartitionStatus`] between nodes).
pub use raftka_protocol::ReplicaLag;

/// The partitions open on this node.
#[derive(Default)]
pub struct Registry {
    // std RwLock: held only to clone a handle out or insert one; never across an await.
    groups: RwLock<HashMap<GroupId, PartitionHandle>>,
}

impl Registry {
    /// The handle of `group`, if open here.
    pub fn get(&self, group: GroupId) -> Option<PartitionHandle> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    /// Registers an opened group.
    pub fn insert(&self, handle: PartitionHandle) {
        if let Ok(mut g) = self.groups.write() {
            g.insert(handle.group, handle);
        }
    }

    /// Unregisters a group, returning its handle for shutdown.
    pub fn remove(&self, group: GroupId) -> Option<PartitionHandle> {
        self.groups.write().ok()?.remove(&group)
    }

    /// Ids of the open groups.
    pub fn ids(&self) -> Vec<GroupId> {
        self.groups
            .read()
            .map(|g| g.keys().copied().collect())
            .unwrap_or_default()
    }

    /// All handles.
    pub fn all(&self) -> Vec<PartitionHandle> {
        self.groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Every follower's lag from a leader's metrics; `None` unless the metrics are a leader's.
pub(crate) fn replicas_lag(
    m: &openraft::RaftMetrics<raft_store::TypeConfig>,
) -> Option<Vec<ReplicaLag>> {
    use openraft::Instant as _;
    if m.current_leader != Some(m.id) {
        return None;
    }
    let replication = m.replication.as_ref()?;
    let last = m.last_log_index;
    Some(
        replication
            .iter()
            .filter(|(node, _)| **node != m.id)
            .map(|(node, matched)| {
                let matched_index = matched.as_ref().map(|l| l.index());
                let lag = match (last, matched_index) {
                    (Some(last), Some(at)) => last.saturating_sub(at),
                    (Some(last), None) => last + 1,
                    (None, _) => 0,
                };
                let last_ack_ms = m
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(node))
                    .and_then(|t| t.as_ref())
                    .map(|t| t.elapsed().as_millis() as u64);
                ReplicaLag {
                    node: *node,
                    matched_index,
                    lag,
                    last_ack_ms,
                }
            })
            .collect(),
    )
}

impl PartitionHandle {
    /// Whether this replica holds no log at all (never received an entry or a snapshot).
    pub fn is_empty(&self) -> bool {
        use openraft::async_runtime::WatchReceiver;
        let m = self.raft.metrics().borrow_watched().clone();
        m.last_log_index.is_none() && m.snapshot.is_none()
    }

    /// The leader this replica believes in. Reads the metrics without holding the borrow.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// This replica's status, with every follower's lag when this replica leads.
    pub fn status(&self) -> PartitionStatus {
        let p = *self.progress.borrow();
        // Copy what is needed out of the metrics; the borrow ends with this statement.
        let (leader, mut replicas_lag) = {
            let m = self.raft.metrics().borrow_watched().clone();
            (m.current_leader, replicas_lag(&m))
        };
        // A quiet leader sends no heartbeats: its followers' last confirmation that they hold
        // its whole log is their last agreement to stay quiet.
        if let (Some(ago), Some(lags)) = (self.quiet.followers_confirmed_ago(), &mut replicas_lag) {
            let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
            for l in lags.iter_mut().filter(|l| l.lag == 0) {
                l.last_ack_ms = Some(l.last_ack_ms.map_or(ago, |ms| ms.min(ago)));
            }
        }
        PartitionStatus {
            leader,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            replicas_lag,
        }
    }

    /// Appends `batch` if this replica leads; returns the base offset once committed and applied.
    ///
    /// # Errors
    /// `not_leader` (not applied) when another node leads, `write_outcome_unknown` when the
    /// entry was proposed but discarded by a leader change, `timeout` when it did not commit in
    /// time (outcome unknown).
    pub async fn produce(
        &self,
        me: NodeId,
        batch: RecordBatch,
        timeout: Duration,
    ) -> Result<Appended, ApiError> {
        let leader = self.current_leader();
        if leader != Some(me) {
            return Err(ApiError::new(
                ErrorCode::NotLeader,
                format!("node {me} does not lead this partition"),
            )
            .with_leader(leader)
            .for_write());
        }
        self.quiet.ready_for_leader_op(&self.raft, timeout).await;
        if let Some(acked) = canary::ack_before_commit(self, &batch).await {
            return acked;
        }
        let tail = canary::track_proposed(self, &batch);
        let res =
            tokio::time::timeout(timeout, self.raft.client_write(Command::Produce(batch))).await;
        tail.completed();
        match res {
            Err(_) => Err(ApiError::new(
                ErrorCode::Timeout,
                "the write did not commit in time; it may still commit",
            )
            .for_write()),
            Ok(Ok(resp)) => match resp.data {
                ApplyResult::Produced { base_offset, duplicate, .. } => Ok(Appended { base_offset, duplicate }),
                ApplyResult::SequenceError { expected, got } => Err(ApiError::new(
                    ErrorCode::OutOfOrderSequence,
                    format!("producer sequence {got} does not follow the partition's last batch (expected {expected})"),
                )
                .for_write()),
                other => Err(
                    ApiError::internal(format!("unexpected apply result {other:?}")).for_write(),
                ),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ApiError::new(
                    ErrorCode::NotLeader,
                    format!("leadership moved before the write was proposed: {f}"),
                )
                .with_leader(f.leader_id)
                .for_write())
            }
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)))) => {
                Err(ApiError::new(
                    ErrorCode::WriteOutcomeUnknown,
                    format!("the leader changed after the write was proposed: {f}"),
                )
                .with_leader(f.leader_id)
                .for_write())
            }
            Ok(Err(RaftError::APIError(e))) => Err(ApiError::internal(e.to_string()).for_write()),
            Ok(Err(RaftError::Fatal(f))) => {
                Err(ApiError::new(ErrorCode::StorageFailed, f.to_string()).for_write())
            }
        }
    }

    /// Confirms, before a read, that this replica leads and holds a valid lease, and has
    /// applied everything committed before the read.
    async fn ensure_leader_read(&self, me: NodeId) -> Result<(), ApiError> {
        let leader = self.current_leader();
        if leader != Some(me) {
            return Err(ApiError::new(
                ErrorCode::NotLeader,
                format!("node {me} does not lead this partition"),
            )
            .with_leader(leader));
        }
        let wake_within = Duration::from_millis(5_000);
        self.quiet
            .ready_for_leader_op(&self.raft, wake_within)
            .await;
        match self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(ApiError::new(ErrorCode::NotLeader, f.to_string()).with_leader(f.leader_id))
            }
            Err(e) => Err(ApiError::new(ErrorCode::LeaderNotAvailable, e.to_string())),
        }
    }

    /// A failed read as the client sees it: retention deleting the offset during the read is
    /// `offset_out_of_range` with the current bounds, anything else a storage failure.
    fn read_error(&self, offset: u64, e: &std::io::Error) -> ApiError {
        if raft_store::is_below_log_start(e) {
            out_of_range(offset, &self.progress.borrow())
        } else {
            ApiError::new(ErrorCode::StorageFailed, e.to_string())
        }
    }

    /// The first offset whose record timestamp is at or after `timestamp_ms` (leader read).
    ///
    /// # Errors
    /// `not_leader`, `leader_not_available`, storage errors.
    pub async fn offset_for_timestamp(
        &self,
        me: NodeId,
        timestamp_ms: i64,
    ) -> Result<TimestampOffset, ApiError> {
        self.ensure_leader_read(me).await?;
        // Retention may delete the scan's start while it runs; then the answer lies at or
        // after the new log start, so look again from there.
        let mut attempts = 0;
        loop {
            let p = *self.progress.borrow();
            let reader = self.reader.clone();
            let found = tokio::task::spawn_blocking(move || {
                reader.offset_for_timestamp(timestamp_ms, p.log_start_offset, p.high_watermark)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
            match found {
                Ok(offset) => {
                    return Ok(TimestampOffset {
                        offset,
                        high_watermark: p.high_watermark,
                        log_start_offset: p.log_start_offset,
                    })
                }
                Err(e) if raft_store::is_below_log_start(&e) && attempts < 3 => attempts += 1,
                Err(e) => return Err(self.read_error(p.log_start_offset, &e)),
            }
        }
    }

    /// Serves a fetch if this replica leads. Linearizable: the leader confirms its lease and
    /// applies everything committed before reading, so the high watermark never goes back.
    ///
    /// # Errors
    /// `not_leader`, `leader_not_available`, or `offset_out_of_range` with the bounds.
    pub async fn fetch(&self, me: NodeId, req: &FetchRequest) -> Result<FetchResponse, ApiError> {
        self.ensure_leader_read(me).await?;
        let mut progress = self.progress.clone();
        let mut p = *progress.borrow_and_update();
        if req.offset < p.log_start_offset || req.offset > p.high_watermark {
            return Err(out_of_range(req.offset, &p));
        }
        if req.offset == p.high_watermark && req.max_wait_ms > 0 {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms);
            while p.high_watermark <= req.offset {
                match tokio::time::timeout_at(deadline, progress.changed()).await {
                    Ok(Ok(())) => p = *progress.borrow_and_update(),
                    _ => break,
                }
            }
        }
        let limits = ReadLimits {
            max_records: req.max_records,
            max_bytes: req.max_bytes,
        };
        let reader = self.reader.clone();
        let (offset, hw) = (req.offset, p.high_watermark);
        let records = tokio::task::spawn_blocking(move || reader.read(offset, hw, limits))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| self.read_error(offset, &e))?;
        let response = FetchResponse {
            records: records
                .into_iter()
                .map(|FetchedRecord { offset, record }| (offset, record))
                .collect(),
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
        };
        Ok(canary::serve_above_hw(self, req, response))
    }
}

/// `offset_out_of_range` for `offset`, carrying the partition's bounds so clients can reset.
fn out_of_range(offset: u64, p: &LogProgress) -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::OffsetOutOfRange,
        format!(
            "offset {offset} is outside [{}, {}]",
            p.log_start_offset, p.high_watermark
        ),
    );
    e.bounds = Some((p.log_start_offset, p.high_watermark));
    e
}

/// Shared registry handle.
pub type SharedRegistry = Arc<Registry>;

//! Any node accepts any request: this module finds the leader of a partition (or of the
//! metadata group) and runs the operation there, locally or forwarded over the transport.
//!
//! Retries happen only on errors whose outcome is `not_applied` (not leader, no leader yet,
//! connection refused before sending). Anything that may have been applied is returned to the
//! caller as `unknown`, never retried here.

use std::future::Future;
use std::time::Duration;

use openraft::raft::ReadPolicy;
use raft_store::{codec, ApplyResult, Command, GroupId, NodeId, RecordBatch};
use tokio::time::Instant;

use crate::cluster::coordinator::HeartbeatReply;
use crate::cluster::metadata::{MetaCommand, MetaResponse, TopicMeta};
use crate::error::{ApiError, ErrorCode};
use crate::internal::{InternalRequest, InternalResponse, INTERNAL_RPC_PATH};
use crate::node::Node;
use crate::partition::{Appended, FetchRequest, FetchResponse, PartitionStatus, TimestampOffset};
use crate::raft::transport::SendError;

/// Key of the metadata group in the leader cache.
const META_KEY: u64 = u64::MAX;

impl Node {
    fn cached_leader(&self, key: u64) -> Option<NodeId> {
        self.inner.leader_cache.read().ok()?.get(&key).copied()
    }

    fn cache_leader(&self, key: u64, leader: NodeId) {
        if let Ok(mut c) = self.inner.leader_cache.write() {
            c.insert(key, leader);
        }
    }

    /// Sends an internal request to `peer`.
    pub(crate) async fn send_internal(
        &self,
        peer: NodeId,
        req: &InternalRequest,
        timeout: Duration,
        is_write: bool,
    ) -> Result<InternalResponse, ApiError> {
        let body = codec::encode(req).map_err(|e| ApiError::internal(e.to_string()))?;
        match self
            .inner
            .transport
            .post(peer, INTERNAL_RPC_PATH, body, timeout)
            .await
        {
            Ok(bytes) => codec::decode::<Result<InternalResponse, ApiError>>(&bytes)
                .map_err(|e| ApiError::internal(format!("bad reply from node {peer}: {e}")))?,
            Err(SendError::NotSent { reason, .. }) => Err(ApiError::new(
                ErrorCode::LeaderNotAvailable,
                format!("node {peer} unreachable: {reason}"),
            )),
            Err(SendError::MaybeSent {
                reason, timed_out, ..
            }) => {
                // For a write, the peer may have proposed it: the outcome is unknown.
                let code = match (is_write, timed_out) {
                    (false, _) => ErrorCode::LeaderNotAvailable,
                    (true, true) => ErrorCode::Timeout,
                    (true, false) => ErrorCode::WriteOutcomeUnknown,
                };
                Err(ApiError::new(code, format!("node {peer}: {reason}")))
            }
            Err(e @ SendError::Status { .. }) => {
                let code = if is_write {
                    ErrorCode::Internal
                } else {
                    ErrorCode::LeaderNotAvailable
                };
                Err(ApiError::new(code, e.to_string()))
            }
        }
    }

    /// Runs an operation on the leader among `candidates`, retrying only `not_applied` errors
    /// until `deadline`.
    async fn on_leader<T, L, LF, R, RF>(
        &self,
        cache_key: u64,
        candidates: &[NodeId],
        local_leader: Option<NodeId>,
        deadline: Instant,
        local: L,
        remote: R,
    ) -> Result<T, ApiError>
    where
        L: Fn(Duration) -> LF,
        LF: Future<Output = Result<T, ApiError>>,
        R: Fn(NodeId, Duration) -> RF,
        RF: Future<Output = Result<T, ApiError>>,
    {
        if candidates.is_empty() {
            return Err(ApiError::new(ErrorCode::LeaderNotAvailable, "no replicas"));
        }
        let mut hint = local_leader.or_else(|| self.cached_leader(cache_key));
        let mut next = (self.next_round_robin() as usize) % candidates.len();
        let mut backoff = Duration::from_millis(20);
        loop {
            let target = match hint.take().filter(|h| candidates.contains(h)) {
                Some(t) => t,
                None => {
                    let t = candidates[next % candidates.len()];
                    next += 1;
                    t
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = if target == self.id() {
                local(remaining).await
            } else {
                remote(target, remaining).await
            };
            match result {
                Ok(v) => {
                    self.cache_leader(cache_key, target);
                    return Ok(v);
                }
                Err(e) if e.code.retriable() && e.is_not_applied() => {
                    hint = e.leader_hint.filter(|h| *h != target);
                    if Instant::now() + backoff >= deadline {
                        let mut e = e;
                        if e.code == ErrorCode::NotLeader && e.leader_hint.is_none() {
                            e.code = ErrorCode::LeaderNotAvailable;
                        }
                        return Err(e);
                    }
                    // Retry at once when we learnt the leader; back off when there is none.
                    if hint.is_none() {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(250));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends `batch` to the partition `group` (replicas `replicas`) on its leader.
    ///
    /// # Errors
    /// See [`crate::partition::PartitionHandle::produce`]; every error carries its outcome.
    pub async fn produce(
        &self,
        group: GroupId,
        replicas: &[NodeId],
        batch: RecordBatch,
    ) -> Result<Appended, ApiError> {
        let deadline = Instant::now() + self.config().request_timeout();
        let local_leader = self
            .partitions()
            .get(group)
            .and_then(|h| h.current_leader());
        let me = self.id();
        self.on_leader(
            group,
            replicas,
            local_leader,
            deadline,
            |remaining| {
                let batch = batch.clone();
                async move {
                    let h = self.partitions().get(group).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::LeaderNotAvailable,
                            "partition not open on this node yet",
                        )
                    })?;
                    h.produce(me, batch, remaining).await
                }
            },
            |peer, remaining| {
                let req = InternalRequest::Produce {
                    group,
                    batch: batch.clone(),
                    timeout_ms: remaining.as_millis() as u64,
                };
                async move {
                    // Give the leader its whole budget plus slack for the reply to travel back.
                    match self
                        .send_internal(peer, &req, remaining + Duration::from_millis(500), true)
                        .await?
                    {
                        InternalResponse::Produced(appended) => Ok(appended),
                        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                    }
                }
            },
        )
        .await
        .map_err(ApiError::for_write)
    }

    /// Fetches from the partition leader.
    ///
    /// # Errors
    /// `offset_out_of_range`, `leader_not_available`, storage errors.
    pub async fn fetch(
        &self,
        group: GroupId,
        replicas: &[NodeId],
        req: FetchRequest,
    ) -> Result<FetchResponse, ApiError> {
        let deadline = Instant::now()
            + self.config().request_timeout()
            + Duration::from_millis(req.max_wait_ms);
        let local_leader = self
            .partitions()
            .get(group)
            .and_then(|h| h.current_leader());
        let me = self.id();
        self.on_leader(
            group,
            replicas,
            local_leader,
            deadline,
            |_| {
                let req = req.clone();
                async move {
                    let h = self.partitions().get(group).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::LeaderNotAvailable,
                            "partition not open on this node yet",
                        )
                    })?;
                    h.fetch(me, &req).await
                }
            },
            |peer, _| {
                let ireq = InternalRequest::Fetch {
                    group,
                    req: req.clone(),
                };
                let wait = Duration::from_millis(req.max_wait_ms) + self.config().request_timeout();
                async move {
                    match self.send_internal(peer, &ireq, wait, false).await? {
                        InternalResponse::Fetched(r) => Ok(r),
                        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                    }
                }
            },
        )
        .await
    }

    /// The first offset at or after `timestamp_ms` in a partition, asked of its leader.
    ///
    /// # Errors
    /// Routing and storage errors.
    pub async fn offset_for_timestamp(
        &self,
        group: GroupId,
        replicas: &[NodeId],
        timestamp_ms: i64,
    ) -> Result<TimestampOffset, ApiError> {
        let deadline = Instant::now() + self.config().request_timeout();
        let local_leader = self
            .partitions()
            .get(group)
            .and_then(|h| h.current_leader());
        let me = self.id();
        self.on_leader(
            group,
            replicas,
            local_leader,
            deadline,
            |_| async move {
                let h = self.partitions().get(group).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::LeaderNotAvailable,
                        "partition not open on this node yet",
                    )
                })?;
                h.offset_for_timestamp(me, timestamp_ms).await
            },
            |peer, remaining| async move {
                let req = InternalRequest::OffsetForTimestamp {
                    group,
                    timestamp_ms,
                };
                match self.send_internal(peer, &req, remaining, false).await? {
                    InternalResponse::TimestampOffset(t) => Ok(t),
                    other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                }
            },
        )
        .await
    }

    /// The partition's status from its leader, or from any replica when there is no leader.
    pub async fn partition_status(&self, group: GroupId, replicas: &[NodeId]) -> PartitionStatus {
        let deadline = Instant::now() + Duration::from_millis(1500);
        let me = self.id();
        let local_leader = self
            .partitions()
            .get(group)
            .and_then(|h| h.current_leader());
        let from_leader = self
            .on_leader(
                group,
                replicas,
                local_leader,
                deadline,
                |_| async move {
                    let h = self.partitions().get(group).ok_or_else(|| {
                        ApiError::new(ErrorCode::LeaderNotAvailable, "partition not open here")
                    })?;
                    let s = h.status();
                    if s.leader == Some(me) {
                        Ok(s)
                    } else {
                        Err(ApiError::new(ErrorCode::NotLeader, "not leader").with_leader(s.leader))
                    }
                },
                |peer, remaining| async move {
                    let req = InternalRequest::Status {
                        group,
                        require_leader: true,
                    };
                    match self
                        .send_internal(peer, &req, remaining.max(Duration::from_millis(100)), false)
                        .await?
                    {
                        InternalResponse::Status(s) => Ok(s),
                        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                    }
                },
            )
            .await;
        if let Ok(s) = from_leader {
            return s;
        }
        // No leader answered: report what any replica knows, with no leader.
        for r in replicas {
            let s = if *r == me {
                self.partitions().get(group).map(|h| h.status())
            } else {
                let req = InternalRequest::Status {
                    group,
                    require_leader: false,
                };
                match self
                    .send_internal(*r, &req, Duration::from_millis(300), false)
                    .await
                {
                    Ok(InternalResponse::Status(s)) => Some(s),
                    _ => None,
                }
            };
            if let Some(mut s) = s {
                s.leader = None;
                s.replicas_lag = None;
                return s;
            }
        }
        PartitionStatus {
            leader: None,
            high_watermark: 0,
            log_start_offset: 0,
            replicas_lag: None,
        }
    }

    /// Applies a metadata command on the metadata leader.
    ///
    /// # Errors
    /// Routing errors, with their write outcome.
    pub async fn meta_write(&self, cmd: MetaCommand) -> Result<MetaResponse, ApiError> {
        let deadline = Instant::now() + self.config().request_timeout();
        let peers: Vec<NodeId> = self.inner.transport.peers().keys().copied().collect();
        self.on_leader(
            META_KEY,
            &peers,
            self.meta_leader(),
            deadline,
            |remaining| {
                let cmd = cmd.clone();
                async move { self.local_meta_write(cmd, remaining).await }
            },
            |peer, remaining| {
                let req = InternalRequest::MetaWrite {
                    cmd: cmd.clone(),
                    timeout_ms: remaining.as_millis() as u64,
                };
                async move {
                    match self
                        .send_internal(peer, &req, remaining + Duration::from_millis(500), true)
                        .await?
                    {
                        InternalResponse::Meta(r) => Ok(r),
                        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                    }
                }
            },
        )
        .await
        .map_err(ApiError::for_write)
    }

    /// Applies a metadata command if this node leads the metadata group.
    pub(crate) async fn local_meta_write(
        &self,
        cmd: MetaCommand,
        timeout: Duration,
    ) -> Result<MetaResponse, ApiError> {
        use openraft::errors::{ClientWriteError, RaftError};
        let leader = self.meta_leader();
        if leader != Some(self.id()) {
            return Err(
                ApiError::new(ErrorCode::NotLeader, "not the metadata leader").with_leader(leader),
            );
        }
        let bytes = codec::encode(&cmd).map_err(|e| ApiError::internal(e.to_string()))?;
        match tokio::time::timeout(timeout, self.meta_raft().client_write(Command::Blob(bytes)))
            .await
        {
            Err(_) => Err(ApiError::new(
                ErrorCode::Timeout,
                "metadata change did not commit in time",
            )),
            Ok(Ok(resp)) => match resp.data {
                ApplyResult::Blob(b) => {
                    codec::decode(&b).map_err(|e| ApiError::internal(e.to_string()))
                }
                other => Err(ApiError::internal(format!(
                    "unexpected apply result {other:?}"
                ))),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ApiError::new(ErrorCode::NotLeader, f.to_string()).with_leader(f.leader_id))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)))) => {
                Err(ApiError::new(ErrorCode::WriteOutcomeUnknown, f.to_string())
                    .with_leader(f.leader_id))
            }
            Ok(Err(e)) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// The metadata leader's linearizable read index, if this node leads.
    pub(crate) async fn local_meta_read_index(&self) -> Result<u64, ApiError> {
        let leader = self.meta_leader();
        if leader != Some(self.id()) {
            return Err(
                ApiError::new(ErrorCode::NotLeader, "not the metadata leader").with_leader(leader),
            );
        }
        self.meta_raft()
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|l| l.index())
            .map_err(|e| ApiError::new(ErrorCode::LeaderNotAvailable, e.to_string()))
    }

    /// Waits until this node's metadata has caught up with the metadata leader's commit.
    ///
    /// # Errors
    /// When no metadata leader answers in time.
    pub async fn catch_up_metadata(&self) -> Result<(), ApiError> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let peers: Vec<NodeId> = self.inner.transport.peers().keys().copied().collect();
        let index = self
            .on_leader(
                META_KEY,
                &peers,
                self.meta_leader(),
                deadline,
                |_| async move { self.local_meta_read_index().await },
                |peer, remaining| async move {
                    match self
                        .send_internal(peer, &InternalRequest::MetaReadIndex, remaining, false)
                        .await?
                    {
                        InternalResponse::ReadIndex(i) => Ok(i),
                        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                    }
                },
            )
            .await?;
        let mut applied = self.inner.meta_applied.clone();
        let caught_up = tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= index))
            .await
            .map(|r| r.is_ok());
        match caught_up {
            Ok(true) => Ok(()),
            _ => Err(ApiError::new(
                ErrorCode::LeaderNotAvailable,
                "metadata did not catch up in time",
            )),
        }
    }

    /// Sends a consumer-group heartbeat to the coordinator (the metadata leader).
    ///
    /// # Errors
    /// `unknown_member`, `group_not_found`, or routing errors.
    pub async fn group_heartbeat(
        &self,
        group: &str,
        member_id: &str,
    ) -> Result<HeartbeatReply, ApiError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let peers: Vec<NodeId> = self.inner.transport.peers().keys().copied().collect();
        self.on_leader(
            META_KEY,
            &peers,
            self.meta_leader(),
            deadline,
            |_| async move { self.local_heartbeat(group, member_id) },
            |peer, remaining| async move {
                let req = InternalRequest::GroupHeartbeat {
                    group: group.to_string(),
                    member_id: member_id.to_string(),
                };
                match self.send_internal(peer, &req, remaining, false).await? {
                    InternalResponse::Heartbeat(r) => Ok(r),
                    other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
                }
            },
        )
        .await
    }

    /// Looks a topic up, catching up with the metadata leader first when it is not known here.
    ///
    /// # Errors
    /// `topic_not_found`, or a routing error when the metadata leader cannot be reached.
    pub async fn topic(&self, name: &str) -> Result<TopicMeta, ApiError> {
        if let Some(t) = self.local_topic(name) {
            return Ok(t);
        }
        self.catch_up_metadata().await?;
        self.local_topic(name)
            .ok_or_else(|| ApiError::topic_not_found(name))
    }
}

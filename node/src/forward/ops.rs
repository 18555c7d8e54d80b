//! The typed leader operations: each builds its [`InternalRequest`], picks its deadline and
//! calls [`Node::call_leader`]. Their behaviour on the leader is in [`super::serve`].

use std::time::Duration;

use raft_store::{GroupId, NodeId, RecordBatch};
use tokio::time::Instant;

use super::{InternalRequest, Leader};
use crate::cluster::coordinator::HeartbeatReply;
use crate::cluster::metadata::{MetaCommand, MetaResponse, TopicMeta};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use crate::partition::{Appended, FetchRequest, FetchResponse, PartitionStatus, TimestampOffset};

/// How long a status probe may look for a partition's leader.
const STATUS_DEADLINE: Duration = Duration::from_millis(1500);
/// How long a status probe waits for each replica once no leader answered.
const REPLICA_STATUS_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a read waits for the metadata leader's read index and for this node to apply it.
const METADATA_CATCH_UP: Duration = Duration::from_secs(3);
/// How long a heartbeat looks for the coordinator.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(5);

impl Node {
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
        let req = InternalRequest::Produce {
            group,
            batch,
            timeout_ms: 0, // set from the deadline on each attempt
        };
        let deadline = Instant::now() + self.config().request_timeout();
        self.call_leader(Leader::Partition { group, replicas }, req, deadline)
            .await
    }

    /// Fetches from the partition leader; a long poll may wait `req.max_wait_ms` on top of
    /// the request timeout.
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
        let req = InternalRequest::Fetch { group, req };
        self.call_leader(Leader::Partition { group, replicas }, req, deadline)
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
        let req = InternalRequest::OffsetForTimestamp {
            group,
            timestamp_ms,
        };
        let deadline = Instant::now() + self.config().request_timeout();
        self.call_leader(Leader::Partition { group, replicas }, req, deadline)
            .await
    }

    /// The partition's status from its leader, or from any replica (with no leader and no
    /// lag) when no leader answers.
    pub async fn partition_status(&self, group: GroupId, replicas: &[NodeId]) -> PartitionStatus {
        let req = InternalRequest::Status {
            group,
            require_leader: true,
        };
        let deadline = Instant::now() + STATUS_DEADLINE;
        let from_leader: Result<PartitionStatus, ApiError> = self
            .call_leader(Leader::Partition { group, replicas }, req, deadline)
            .await;
        if let Ok(s) = from_leader {
            return s;
        }
        for r in replicas {
            let req = InternalRequest::Status {
                group,
                require_leader: false,
            };
            let reply = self.call_node(*r, req, REPLICA_STATUS_TIMEOUT).await;
            if let Ok(mut s) = reply.and_then(PartitionStatus::try_from) {
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
        let req = InternalRequest::MetaWrite { cmd, timeout_ms: 0 };
        let deadline = Instant::now() + self.config().request_timeout();
        self.call_leader(Leader::Metadata, req, deadline).await
    }

    /// Waits until this node's metadata has caught up with the metadata leader's commit, so a
    /// read of local metadata after it is linearizable.
    ///
    /// # Errors
    /// When no metadata leader answers in time.
    pub async fn catch_up_metadata(&self) -> Result<(), ApiError> {
        let deadline = Instant::now() + METADATA_CATCH_UP;
        let index: u64 = self
            .call_leader(Leader::Metadata, InternalRequest::MetaReadIndex, deadline)
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
        let req = InternalRequest::GroupHeartbeat {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        let deadline = Instant::now() + HEARTBEAT_DEADLINE;
        self.call_leader(Leader::Metadata, req, deadline).await
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

//! The node-to-node requests other than Raft RPCs, and their replies. Sent as postcard to
//! `POST /internal/rpc`, answered with `Result<InternalResponse, ApiError>` (an [`ApiError`]'s
//! code travels by its stable number).

use std::time::Duration;

use raft_store::{GroupId, NodeId, RecordBatch};
use raftka_protocol::LeaderMoveOutcome;
use serde::{Deserialize, Serialize};

use crate::cluster::coordinator::HeartbeatReply;
use crate::cluster::metadata::{MetaCommand, MetaResponse};
use crate::error::ApiError;
use crate::partition::{Appended, FetchRequest, FetchResponse, PartitionStatus, TimestampOffset};
use crate::raft::membership::MoveProgress;

/// The path of the internal RPC endpoint.
pub const INTERNAL_RPC_PATH: &str = "/internal/rpc";

/// A request run on the leader of a partition or of the metadata group (or, for
/// `Status { require_leader: false }`, on any replica).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InternalRequest {
    /// Append a batch on the partition leader.
    Produce {
        /// Partition group.
        group: GroupId,
        /// Records.
        batch: RecordBatch,
        /// How long the leader may wait for commit (at most the node's request timeout).
        timeout_ms: u64,
    },
    /// Read on the partition leader.
    Fetch {
        /// Partition group.
        group: GroupId,
        /// What to read.
        req: FetchRequest,
    },
    /// A replica's status; `require_leader` asks only the leader to answer.
    Status {
        /// Partition group.
        group: GroupId,
        /// Only answer if leading.
        require_leader: bool,
    },
    /// Apply a metadata command on the metadata leader.
    MetaWrite {
        /// The command.
        cmd: MetaCommand,
        /// How long the leader may wait for commit (at most the node's request timeout).
        timeout_ms: u64,
    },
    /// The metadata leader's linearizable read index.
    MetaReadIndex,
    /// The first offset at or after a timestamp, on the partition leader.
    OffsetForTimestamp {
        /// Partition group.
        group: GroupId,
        /// The time.
        timestamp_ms: i64,
    },
    /// Hand the partition's leadership to `to` (its preferred replica), on the partition leader.
    MoveLeadership {
        /// Partition group.
        group: GroupId,
        /// The node to lead.
        to: NodeId,
    },
    /// A consumer group heartbeat, handled by the metadata leader (the coordinator).
    GroupHeartbeat {
        /// Group.
        group: String,
        /// Member.
        member_id: String,
    },
    /// A node started with `--join` registers (any node takes it to the metadata leader).
    Join {
        /// The id it was started with (or keeps from its data directory).
        id: Option<NodeId>,
        /// Its advertised address.
        addr: String,
    },
    /// One step of moving a partition group's Raft membership to `target`, on its leader.
    MoveStep {
        /// Partition group.
        group: GroupId,
        /// The target voters, preferred leader first.
        target: Vec<NodeId>,
        /// Addresses of the target nodes.
        addrs: std::collections::BTreeMap<NodeId, String>,
    },
}

impl InternalRequest {
    /// Whether the request may change state: a failure after sending it has an unknown
    /// outcome, and it is never resent after that.
    pub fn is_write(&self) -> bool {
        matches!(self, Self::Produce { .. } | Self::MetaWrite { .. })
    }

    /// The operation's name, a bounded metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Produce { .. } => "produce",
            Self::Fetch { .. } => "fetch",
            Self::Status { .. } => "status",
            Self::MetaWrite { .. } => "meta_write",
            Self::MetaReadIndex => "meta_read_index",
            Self::OffsetForTimestamp { .. } => "offset_for_timestamp",
            Self::MoveLeadership { .. } => "move_leadership",
            Self::GroupHeartbeat { .. } => "group_heartbeat",
            Self::Join { .. } => "join",
            Self::MoveStep { .. } => "move_step",
        }
    }

    /// Gives a write the time left of the caller's deadline to commit in.
    pub fn set_budget(&mut self, remaining: Duration) {
        if let Self::Produce { timeout_ms, .. } | Self::MetaWrite { timeout_ms, .. } = self {
            *timeout_ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
        }
    }

    /// How long to wait for the reply of a forwarded request with `remaining` left: a write
    /// gets slack for its reply to travel back after the leader used its whole budget.
    pub fn reply_timeout(&self, remaining: Duration) -> Duration {
        if self.is_write() {
            remaining + Duration::from_millis(500)
        } else {
            remaining.max(Duration::from_millis(100))
        }
    }
}

/// Declares [`InternalResponse`] and a `TryFrom<InternalResponse>` for each reply type, so
/// each typed operation names its reply once.
macro_rules! responses {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )*) => {
        /// The answer to an [`InternalRequest`].
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub enum InternalResponse { $( $(#[$doc])* $variant($ty), )* }

        $(
            impl TryFrom<InternalResponse> for $ty {
                type Error = ApiError;
                fn try_from(r: InternalResponse) -> Result<Self, ApiError> {
                    match r {
                        InternalResponse::$variant(v) => Ok(v),
                        other => Err(ApiError::internal(format!(
                            "unexpected internal reply {other:?}, wanted {}",
                            stringify!($variant)
                        ))),
                    }
                }
            }
        )*
    };
}

responses! {
    /// Where the batch is in the log.
    Produced(Appended),
    /// Fetched records.
    Fetched(FetchResponse),
    /// Replica status.
    Status(PartitionStatus),
    /// Metadata command result.
    Meta(MetaResponse),
    /// Read index of the metadata group.
    ReadIndex(u64),
    /// Heartbeat reply.
    Heartbeat(HeartbeatReply),
    /// Timestamp lookup reply.
    TimestampOffset(TimestampOffset),
    /// What a leadership move did.
    Moved(LeaderMoveOutcome),
    /// A registered node: its id and every member's address.
    Joined(JoinReply),
    /// Where a membership change stands.
    MoveProgress(MoveProgress),
}

/// The answer to [`InternalRequest::Join`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReply {
    /// The node's id.
    pub id: NodeId,
    /// The address of every node of the cluster.
    pub nodes: std::collections::BTreeMap<NodeId, String>,
}

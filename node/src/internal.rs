//! Node-to-node requests other than Raft RPCs: forwarding of writes and reads to leaders.
//! Sent as postcard to `POST /internal/rpc`, answered with `Result<InternalResponse, ApiError>`.

use raft_store::{GroupId, RecordBatch};
use serde::{Deserialize, Serialize};

use crate::cluster::coordinator::HeartbeatReply;
use crate::cluster::metadata::{MetaCommand, MetaResponse};
use crate::partition::{Appended, FetchRequest, FetchResponse, PartitionStatus, TimestampOffset};

/// The path of the internal RPC endpoint.
pub const INTERNAL_RPC_PATH: &str = "/internal/rpc";

/// A request forwarded to another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InternalRequest {
    /// Append a batch on the partition leader.
    Produce {
        /// Partition group.
        group: GroupId,
        /// Records.
        batch: RecordBatch,
        /// How long the leader may wait for commit.
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
        /// How long the leader may wait for commit.
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
    /// A consumer group heartbeat, handled by the metadata leader (the coordinator).
    GroupHeartbeat {
        /// Group.
        group: String,
        /// Member.
        member_id: String,
    },
}

/// The answer to an [`InternalRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InternalResponse {
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
}

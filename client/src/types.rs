//! Request and reply types of the v1 API, as the client names them. They are the protocol's
//! types ([`raftka_protocol`]), the same the server encodes, so a field renamed on one side
//! cannot silently decode as a default on the other.

pub use raftka_protocol::{
    AclBinding, CreateUserRequest, Operation, PatternType, Permission, ResourceType, TokenCreated,
    TokenInfo, UserInfo, WhoAmI,
};
pub use raftka_protocol::{
    AlterConfigsRequest, AlterTopicRequest, ClusterPartition, ClusterState, CommitReply,
    CommitRequest, CommittedOffset, CreateTopicRequest, FetchResponse, FetchedRecord, GroupDeleted,
    GroupDescription, GroupList, GroupMember, GroupOffsets, GroupPartition, GroupStateName,
    GroupSummary, Health, HeartbeatReply, JoinReply, JoinRequest, LeaderMove, LeaderMoveOutcome,
    LeaderRebalance, LeaveReply, MetadataRole, MovePlan, NodeId, NodeInfo, NodeState,
    PartitionDescription, PartitionOffsets, ProduceReply, ProduceRequest, ProducedRecord,
    ReassignRequest, Reassignment, Reassignments, RebalanceRequest, RecordOffset, ReleaseRequest,
    ReplicaLag, ResetReply, ResetRequest, StorageStats, TimestampLookup, TopicConfigs,
    TopicDeleted, TopicDescription, TopicList, TopicPartitionRef, TopicSummary,
};

/// A record to produce: its constructors ([`json`](NewRecord::json),
/// [`string`](NewRecord::string), [`binary`](NewRecord::binary)) and builders
/// ([`with_key`](NewRecord::with_key), [`with_header`](NewRecord::with_header),
/// [`with_partition`](NewRecord::with_partition)) live in the protocol crate.
pub type NewRecord = raftka_protocol::ProduceRecord<serde_json::Value>;

/// One partition of a topic description.
pub type PartitionInfo = raftka_protocol::PartitionDescription;

//! Consumer groups: `/v1/groups…` (join, heartbeat, release, leave, commit, read and reset
//! offsets, list, describe, delete). A committed offset is the *next* offset to read, as in
//! Kafka.

use serde::{Deserialize, Serialize};

/// A topic partition as the group API names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicPartitionRef {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

/// `POST /v1/groups/{g}/members`: join (or rejoin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinRequest {
    /// Topics to consume (at least one).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, example = json!(["orders"])))]
    pub topics: Vec<String>,
    /// Session timeout, 1000-300000 ms (default 10 s).
    #[cfg_attr(feature = "openapi", schema(minimum = 1000, maximum = 300000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
    /// Client name, used in the member id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Rejoin as this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
}

/// The reply to a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinReply {
    /// The member's id; heartbeat, commit and leave with it.
    pub member_id: String,
    /// The group's generation.
    pub generation: u64,
    /// Partitions the member owns now.
    pub assignment: Vec<TopicPartitionRef>,
    /// The session timeout in force.
    pub session_timeout_ms: u64,
}

/// `POST /v1/groups/{g}/members/{m}/heartbeat` (and the reply of release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatReply {
    /// The group's generation.
    pub generation: u64,
    /// Partitions the member owns now (may consume and commit).
    pub assignment: Vec<TopicPartitionRef>,
    /// Owned partitions the member must give up: stop, commit, then call release.
    pub revoking: Vec<TopicPartitionRef>,
}

/// `POST /v1/groups/{g}/members/{m}/release`: give up revoked partitions (after committing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseRequest {
    /// The generation the member acts in.
    pub generation: u64,
}

/// `DELETE /v1/groups/{g}/members/{m}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaveReply {
    /// Group.
    pub group: String,
    /// The member that left.
    pub member_id: String,
    /// Always `true`.
    pub left: bool,
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to read.
    pub offset: u64,
}

/// `POST /v1/groups/{g}/offsets`: commit, fenced by member and generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitRequest {
    /// Member.
    pub member_id: String,
    /// Generation.
    pub generation: u64,
    /// Offsets (the next offset to read, as in Kafka); at least one.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub offsets: Vec<CommittedOffset>,
}

/// The reply to a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitReply {
    /// How many offsets were committed.
    pub committed: usize,
}

/// `GET /v1/groups/{g}/offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupOffsets {
    /// Group.
    pub group: String,
    /// The group's generation.
    pub generation: u64,
    /// Committed offsets.
    pub offsets: Vec<CommittedOffset>,
}

/// `POST /v1/groups/{g}/offsets/reset`: only while the group has no members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetRequest {
    /// Topic whose partitions to reset.
    pub topic: String,
    /// `earliest`, `latest`, `offset` or `timestamp`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(earliest|latest|offset|timestamp)$", example = "earliest")
    )]
    pub to: String,
    /// With `to: offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// With `to: timestamp`: the first offset at or after this time (the end when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Partitions (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<u32>>,
}

/// The reply to a reset: the offsets now committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetReply {
    /// Group.
    pub group: String,
    /// The offsets set.
    pub offsets: Vec<CommittedOffset>,
}

/// A group's state: `empty`, `stable` or `rebalancing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GroupStateName {
    /// No members.
    Empty,
    /// Every partition is owned by its target member.
    Stable,
    /// Some partition is moving between members.
    Rebalancing,
}

/// One entry of `GET /v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupSummary {
    /// Group.
    pub group: String,
    /// Member count.
    pub members: usize,
    /// Generation.
    pub generation: u64,
    /// `empty` or `stable` (the list does not compute rebalancing).
    pub state: GroupStateName,
}

/// `GET /v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupList {
    /// Groups, by name.
    pub groups: Vec<GroupSummary>,
}

/// A member in a group description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Client name given at join.
    pub client_id: String,
    /// Topics it consumes.
    pub topics: Vec<String>,
    /// Its session timeout.
    pub session_timeout_ms: u64,
    /// Partitions it owns.
    pub assignment: Vec<TopicPartitionRef>,
}

/// A partition in a group description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The member that owns it now.
    pub owner: Option<String>,
    /// The member it is assigned to (differs from `owner` while rebalancing).
    pub target: Option<String>,
    /// The committed offset (next to read).
    pub committed_offset: Option<u64>,
    /// The partition's high watermark, when its leader answered.
    pub end_offset: Option<u64>,
    /// `end_offset - committed_offset`.
    pub lag: Option<u64>,
}

/// `GET /v1/groups/{g}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupDescription {
    /// Group.
    pub group: String,
    /// Generation.
    pub generation: u64,
    /// State.
    pub state: GroupStateName,
    /// Members.
    pub members: Vec<GroupMember>,
    /// Every partition with an owner, a target or a committed offset.
    pub partitions: Vec<GroupPartition>,
}

/// `DELETE /v1/groups/{g}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupDeleted {
    /// Group.
    pub group: String,
    /// Always `true`.
    pub deleted: bool,
}

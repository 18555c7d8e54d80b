//! Consumer groups over HTTP: join, heartbeat, release, leave, commit, read and reset offsets,
//! list, describe, delete. Any node serves any of these: group state lives in Raft.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use futures::future::join_all;
use raftka_protocol::{
    CommitReply, CommitRequest, CommittedOffset, GroupDeleted, GroupDescription, GroupList,
    GroupMember, GroupOffsets, GroupPartition, GroupStateName, GroupSummary, HeartbeatReply,
    JoinReply, JoinRequest, LeaveReply, ReleaseRequest, ResetReply, ResetRequest,
    TopicPartitionRef,
};

use super::extract::{ApiJson, ApiPath};
use super::topics::validate_topic_name;
use crate::auth::Caller;
use crate::cluster::groups::{GroupError, GroupState, TopicPartition};
use crate::cluster::metadata::{MetaCommand, MetaResponse};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use raftka_protocol::{ErrorBody, Operation, ResourceType};

/// A partition's Raft group and replicas.
type PartitionLocation = (u64, Vec<u64>);

/// The `{group}` path parameter, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupParam {
    /// The consumer group's name (1-249 characters of `[a-zA-Z0-9._-]`).
    #[param(example = "billing", pattern = "^[a-zA-Z0-9._-]{1,249}$")]
    pub group: String,
}

/// The `{group}` and `{member}` path parameters, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberParams {
    /// The consumer group's name.
    #[param(example = "billing")]
    pub group: String,
    /// The member's id, as its join returned it.
    #[param(example = "consumer-1a2b3c")]
    pub member: String,
}

/// Default session timeout.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 10_000;
/// Accepted session timeouts.
pub const SESSION_TIMEOUT_RANGE_MS: (u64, u64) = (1_000, 300_000);

fn validate_group(name: &str) -> Result<(), ApiError> {
    validate_topic_name(name).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid group name '{name}': use 1-249 characters of [a-zA-Z0-9._-]"
        ))
    })
}

fn refused(e: GroupError, group: &str) -> ApiError {
    let err = match e {
        GroupError::GroupNotFound => ApiError::new(ErrorCode::GroupNotFound, format!("group '{group}' does not exist")),
        GroupError::UnknownMember => ApiError::new(
            ErrorCode::UnknownMember,
            format!("member is not in group '{group}' (it left or its session expired); join again"),
        ),
        GroupError::Fenced { current } => ApiError::new(
            ErrorCode::Fenced,
            format!("stale generation: group '{group}' is at generation {current}; heartbeat to get the new assignment"),
        ),
        GroupError::NotAssigned((t, p)) => ApiError::new(
            ErrorCode::PartitionNotAssigned,
            format!("partition {t}/{p} is not owned by this member in group '{group}'"),
        ),
        GroupError::NotEmpty => ApiError::new(ErrorCode::GroupNotEmpty, format!("group '{group}' has active members")),
    };
    err.for_write()
}

fn unexpected(r: MetaResponse) -> ApiError {
    ApiError::internal(format!("unexpected metadata reply {r:?}")).for_write()
}

fn tp_refs(tps: &[TopicPartition]) -> Vec<TopicPartitionRef> {
    tps.iter()
        .map(|(topic, partition)| TopicPartitionRef {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

fn committed_offsets<'a>(
    offsets: impl IntoIterator<Item = (&'a TopicPartition, &'a u64)>,
) -> Vec<CommittedOffset> {
    offsets
        .into_iter()
        .map(|((topic, partition), offset)| CommittedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect()
}

async fn group_write(node: &Node, group: &str, cmd: MetaCommand) -> Result<MetaResponse, ApiError> {
    match node.meta_write(cmd).await? {
        MetaResponse::GroupRefused(e) => Err(refused(e, group)),
        other => Ok(other),
    }
}

/// `POST /v1/groups/{g}/members`: join (or rejoin); the group is made on its first join.
#[utoipa::path(
    post,
    path = "/v1/groups/{group}/members",
    tag = "groups",
    operation_id = "join_group",
    params(GroupParam),
    request_body = JoinRequest,
    responses(
        (status = 200, description = "Joined: the member id, generation and assignment", body = JoinReply),
        (status = 400, description = "`bad_request` (malformed JSON, no topic, bad session timeout or group name) or `invalid_topic` (a topic name)", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the group or no `describe` on a topic", body = ErrorBody),
        (status = 404, description = "`unknown_member`: rejoining as a member the group does not know", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
    )
)]
pub async fn join(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<Json<JoinReply>, ApiError> {
    caller.group(&group, Operation::Read)?;
    for t in &req.topics {
        caller.topic(t, Operation::Describe)?;
    }
    validate_group(&group)?;
    if req.topics.is_empty() {
        return Err(ApiError::bad_request(
            "'topics' must name at least one topic",
        ));
    }
    for t in &req.topics {
        validate_topic_name(t)?;
    }
    let timeout = req.session_timeout_ms.unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    if !(SESSION_TIMEOUT_RANGE_MS.0..=SESSION_TIMEOUT_RANGE_MS.1).contains(&timeout) {
        return Err(ApiError::bad_request(format!(
            "session_timeout_ms must be {}..={}",
            SESSION_TIMEOUT_RANGE_MS.0, SESSION_TIMEOUT_RANGE_MS.1
        )));
    }
    let client_id: String = req
        .client_id
        .unwrap_or_else(|| "consumer".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .take(64)
        .collect();
    let cmd = MetaCommand::JoinGroup {
        group: group.clone(),
        member_id: req.member_id,
        client_id: if client_id.is_empty() {
            "consumer".into()
        } else {
            client_id
        },
        topics: req.topics,
        session_timeout_ms: timeout,
    };
    match group_write(&node, &group, cmd).await? {
        MetaResponse::Joined {
            member_id,
            generation,
            assignment,
        } => Ok(Json(JoinReply {
            member_id,
            generation,
            assignment: tp_refs(&assignment),
            session_timeout_ms: timeout,
        })),
        other => Err(unexpected(other)),
    }
}

/// Keeps a member's session alive and tells it its assignment and the partitions to give up
/// (`POST /v1/groups/{g}/members/{m}/heartbeat`).
#[utoipa::path(
    post,
    path = "/v1/groups/{group}/members/{member}/heartbeat",
    tag = "groups",
    operation_id = "heartbeat",
    params(MemberParams),
    responses(
        (status = 200, description = "The member's generation, assignment and revocations", body = HeartbeatReply),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the group", body = ErrorBody),
        (status = 404, description = "`group_not_found` or `unknown_member` (left or expired: join again)", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    State(node): State<Node>,
    caller: Caller,
    ApiPath((group, member)): ApiPath<(String, String)>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    caller.group(&group, Operation::Read)?;
    let r = node.group_heartbeat(&group, &member).await?;
    Ok(Json(HeartbeatReply {
        generation: r.generation,
        assignment: tp_refs(&r.assignment),
        revoking: tp_refs(&r.revoking),
    }))
}

/// `POST /v1/groups/{g}/members/{m}/release`: give up revoked partitions (after committing).
#[utoipa::path(
    post,
    path = "/v1/groups/{group}/members/{member}/release",
    tag = "groups",
    operation_id = "release",
    params(MemberParams),
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "Released: the member's new state, as a heartbeat answers", body = HeartbeatReply),
        (status = 400, description = "`bad_request`: malformed JSON", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the group", body = ErrorBody),
        (status = 404, description = "`group_not_found` or `unknown_member`", body = ErrorBody),
        (status = 409, description = "`fenced`: an old generation", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
    )
)]
pub async fn release(
    State(node): State<Node>,
    caller: Caller,
    ApiPath((group, member)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReleaseRequest>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    caller.group(&group, Operation::Read)?;
    let cmd = MetaCommand::Release {
        group: group.clone(),
        member_id: member.clone(),
        generation: body.generation,
    };
    group_write(&node, &group, cmd).await?;
    heartbeat(State(node), caller, ApiPath((group, member))).await
}

/// `DELETE /v1/groups/{g}/members/{m}`: leave the group.
#[utoipa::path(
    delete,
    path = "/v1/groups/{group}/members/{member}",
    tag = "groups",
    operation_id = "leave_group",
    params(MemberParams),
    responses(
        (status = 200, description = "Left", body = LeaveReply),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the group", body = ErrorBody),
        (status = 404, description = "`group_not_found` or `unknown_member`", body = ErrorBody),
    )
)]
pub async fn leave(
    State(node): State<Node>,
    caller: Caller,
    ApiPath((group, member)): ApiPath<(String, String)>,
) -> Result<Json<LeaveReply>, ApiError> {
    caller.group(&group, Operation::Read)?;
    let cmd = MetaCommand::RemoveMembers {
        group: group.clone(),
        members: vec![member.clone()],
    };
    group_write(&node, &group, cmd).await?;
    Ok(Json(LeaveReply {
        group,
        member_id: member,
        left: true,
    }))
}

/// Checks that each offset is at most the high watermark of an existing partition. An offset
/// below the log start is accepted, as Kafka accepts it: retention may overtake a slow
/// consumer, and its commit must not fail for that; whoever resumes from it is reset by
/// `auto.offset.reset` when its fetch gets `offset_out_of_range`.
async fn validate_offsets(
    node: &Node,
    offsets: &[CommittedOffset],
) -> Result<Vec<(TopicPartition, u64)>, ApiError> {
    let mut out = Vec::with_capacity(offsets.len());
    for o in offsets {
        let topic = node.topic(&o.topic).await.map_err(ApiError::for_write)?;
        let p = topic.partitions.get(o.partition as usize).ok_or_else(|| {
            ApiError::new(
                ErrorCode::PartitionNotFound,
                format!("topic '{}' has no partition {}", o.topic, o.partition),
            )
            .for_write()
        })?;
        let s = node.partition_status(p.group, &p.replicas).await;
        if s.leader.is_none() {
            return Err(ApiError::new(
                ErrorCode::LeaderNotAvailable,
                "partition has no leader to check the offset against",
            )
            .for_write());
        }
        if o.offset > s.high_watermark {
            return Err(ApiError::new(
                ErrorCode::InvalidCommitOffset,
                format!(
                    "offset {} of {}/{} is past the log end {}",
                    o.offset, o.topic, o.partition, s.high_watermark
                ),
            )
            .for_write());
        }
        out.push(((o.topic.clone(), o.partition), o.offset));
    }
    Ok(out)
}

/// `POST /v1/groups/{g}/offsets`: commit, fenced by member and generation.
#[utoipa::path(
    post,
    path = "/v1/groups/{group}/offsets",
    tag = "groups",
    operation_id = "commit_offsets",
    params(GroupParam),
    request_body = CommitRequest,
    responses(
        (status = 200, description = "Committed", body = CommitReply),
        (status = 400, description = "`bad_request`: malformed JSON or no offsets", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the group or on a topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found`, `partition_not_found`, `group_not_found` or `unknown_member`", body = ErrorBody),
        (status = 409, description = "`fenced` (an old generation) or `partition_not_assigned` (a partition the member does not own)", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_commit_offset`: past the partition's high watermark", body = ErrorBody),
    )
)]
pub async fn commit(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
    ApiJson(req): ApiJson<CommitRequest>,
) -> Result<Json<CommitReply>, ApiError> {
    caller.group(&group, Operation::Read)?;
    for o in &req.offsets {
        caller.topic(&o.topic, Operation::Read)?;
    }
    if req.offsets.is_empty() {
        return Err(ApiError::bad_request("'offsets' is empty").for_write());
    }
    let offsets = validate_offsets(&node, &req.offsets).await?;
    let n = offsets.len();
    let cmd = MetaCommand::Commit {
        group: group.clone(),
        member_id: req.member_id,
        generation: req.generation,
        offsets,
    };
    group_write(&node, &group, cmd).await?;
    Ok(Json(CommitReply { committed: n }))
}

async fn fresh_group(node: &Node, group: &str) -> Result<GroupState, ApiError> {
    // Linearizable read: catch up with the metadata leader's commit first.
    node.catch_up_metadata().await?;
    node.with_metadata(|m| m.groups.get(group).cloned())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::GroupNotFound,
                format!("group '{group}' does not exist"),
            )
        })
}

/// `GET /v1/groups/{g}/offsets`: committed offsets (the next offsets to read).
#[utoipa::path(
    get,
    path = "/v1/groups/{group}/offsets",
    tag = "groups",
    operation_id = "committed_offsets",
    params(GroupParam),
    responses(
        (status = 200, description = "The committed offsets", body = GroupOffsets),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `describe` on the group", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    )
)]
pub async fn committed(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupOffsets>, ApiError> {
    caller.group(&group, Operation::Describe)?;
    let g = fresh_group(&node, &group).await?;
    Ok(Json(GroupOffsets {
        group,
        generation: g.generation,
        offsets: committed_offsets(&g.offsets),
    }))
}

/// `POST /v1/groups/{g}/offsets/reset`: only while the group has no members.
#[utoipa::path(
    post,
    path = "/v1/groups/{group}/offsets/reset",
    tag = "groups",
    operation_id = "reset_offsets",
    params(GroupParam),
    request_body = ResetRequest,
    responses(
        (status = 200, description = "The offsets now committed", body = ResetReply),
        (status = 400, description = "`bad_request`: malformed JSON, a bad group name or `to`, or `to` without its `offset`/`timestamp_ms`", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `read` on the group or the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found` or `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`group_not_empty`: the group has members", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_commit_offset`: an offset outside the partition's range", body = ErrorBody),
    )
)]
pub async fn reset(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<Json<ResetReply>, ApiError> {
    caller.group(&group, Operation::Read)?;
    caller.topic(&req.topic, Operation::Read)?;
    validate_group(&group)?;
    let topic = node.topic(&req.topic).await?;
    let parts: Vec<u32> = req
        .partitions
        .unwrap_or_else(|| (0..topic.partitions.len() as u32).collect());
    let mut offsets = Vec::new();
    for p in parts {
        let meta = topic.partitions.get(p as usize).ok_or_else(|| {
            ApiError::new(
                ErrorCode::PartitionNotFound,
                format!("topic '{}' has no partition {p}", req.topic),
            )
        })?;
        let s = node.partition_status(meta.group, &meta.replicas).await;
        let o = match (req.to.as_str(), req.offset) {
            ("earliest", _) => s.log_start_offset,
            ("latest", _) => s.high_watermark,
            ("offset", Some(o)) if o >= s.log_start_offset && o <= s.high_watermark => o,
            ("offset", Some(o)) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidCommitOffset,
                    format!(
                        "offset {o} is outside [{}, {}] for partition {p}",
                        s.log_start_offset, s.high_watermark
                    ),
                ))
            }
            ("offset", None) => {
                return Err(ApiError::bad_request("'to': 'offset' needs an 'offset'"))
            }
            ("timestamp", _) => {
                let t = req.timestamp_ms.ok_or_else(|| {
                    ApiError::bad_request("'to': 'timestamp' needs a 'timestamp_ms'")
                })?;
                let r = node
                    .offset_for_timestamp(meta.group, &meta.replicas, t)
                    .await?;
                r.offset.unwrap_or(r.high_watermark)
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "'to' must be earliest, latest, offset or timestamp, got '{other}'"
                )))
            }
        };
        offsets.push(((req.topic.clone(), p), o));
    }
    let reply = committed_offsets(offsets.iter().map(|(tp, o)| (tp, o)));
    group_write(
        &node,
        &group,
        MetaCommand::SetOffsets {
            group: group.clone(),
            offsets,
        },
    )
    .await?;
    Ok(Json(ResetReply {
        group,
        offsets: reply,
    }))
}

/// Lists the consumer groups the caller may describe (`GET /v1/groups`).
#[utoipa::path(
    get,
    path = "/v1/groups",
    tag = "groups",
    operation_id = "list_groups",
    responses((status = 200, description = "The groups, by name", body = GroupList))
)]
pub async fn list(State(node): State<Node>, caller: Caller) -> Result<Json<GroupList>, ApiError> {
    if node.catch_up_metadata().await.is_err() {
        tracing::debug!("listing groups from possibly stale local metadata");
    }
    let groups = node.with_metadata(|m| {
        m.groups
            .iter()
            .filter(|(name, _)| caller.may(ResourceType::Group, name, Operation::Describe))
            .map(|(name, g)| GroupSummary {
                group: name.clone(),
                members: g.members.len(),
                generation: g.generation,
                state: if g.members.is_empty() {
                    GroupStateName::Empty
                } else {
                    GroupStateName::Stable
                },
            })
            .collect()
    });
    Ok(Json(GroupList { groups }))
}

/// `GET /v1/groups/{g}`: members, assignment, and per partition committed offset, end offset, lag.
#[utoipa::path(
    get,
    path = "/v1/groups/{group}",
    tag = "groups",
    operation_id = "describe_group",
    params(GroupParam),
    responses(
        (status = 200, description = "The group", body = GroupDescription),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `describe` on the group", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    )
)]
pub async fn describe(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupDescription>, ApiError> {
    caller.group(&group, Operation::Describe)?;
    let g = fresh_group(&node, &group).await?;
    let mut partitions: BTreeMap<TopicPartition, ()> = BTreeMap::new();
    for tp in g
        .offsets
        .keys()
        .chain(g.owners.keys())
        .chain(g.target.keys())
    {
        partitions.insert(tp.clone(), ());
    }
    let metas: Vec<(TopicPartition, Option<PartitionLocation>)> = partitions
        .keys()
        .map(|tp| {
            let m = node.local_topic(&tp.0).and_then(|t| {
                t.partitions
                    .get(tp.1 as usize)
                    .map(|p| (p.group, p.replicas.clone()))
            });
            (tp.clone(), m)
        })
        .collect();
    let ends = join_all(metas.iter().map(|(_, m)| {
        let node = node.clone();
        let m = m.clone();
        async move {
            match m {
                Some((group, replicas)) => {
                    Some(node.partition_status(group, &replicas).await.high_watermark)
                }
                None => None,
            }
        }
    }))
    .await;
    let rows: Vec<GroupPartition> = metas
        .iter()
        .zip(ends)
        .map(|((tp, _), end)| {
            let committed = g.offsets.get(tp).copied();
            let lag = match (end, committed) {
                (Some(e), Some(c)) => Some(e.saturating_sub(c)),
                _ => None,
            };
            GroupPartition {
                topic: tp.0.clone(),
                partition: tp.1,
                owner: g.owners.get(tp).cloned(),
                target: g.target.get(tp).cloned(),
                committed_offset: committed,
                end_offset: end,
                lag,
            }
        })
        .collect();
    let members: Vec<GroupMember> = g
        .members
        .iter()
        .map(|(id, m)| GroupMember {
            member_id: id.clone(),
            client_id: m.client_id.clone(),
            topics: m.topics.iter().cloned().collect(),
            session_timeout_ms: m.session_timeout_ms,
            assignment: tp_refs(&g.owned_by(id)),
        })
        .collect();
    let state = if g.members.is_empty() {
        GroupStateName::Empty
    } else if g.owners == g.target {
        GroupStateName::Stable
    } else {
        GroupStateName::Rebalancing
    };
    Ok(Json(GroupDescription {
        group,
        generation: g.generation,
        state,
        members,
        partitions: rows,
    }))
}

/// `DELETE /v1/groups/{g}`: only an empty group.
#[utoipa::path(
    delete,
    path = "/v1/groups/{group}",
    tag = "groups",
    operation_id = "delete_group",
    params(("group" = String, Path, description = "The consumer group's name", example = "retired-billing")),
    responses(
        (status = 200, description = "Deleted", body = GroupDeleted),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `delete` on the group", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
        (status = 409, description = "`group_not_empty`: the group has members", body = ErrorBody),
    )
)]
pub async fn delete(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupDeleted>, ApiError> {
    caller.group(&group, Operation::Delete)?;
    group_write(
        &node,
        &group,
        MetaCommand::DeleteGroup {
            group: group.clone(),
        },
    )
    .await?;
    Ok(Json(GroupDeleted {
        group,
        deleted: true,
    }))
}

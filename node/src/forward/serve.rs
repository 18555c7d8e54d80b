//! The receiving side: [`serve_local`] runs an [`InternalRequest`] on this node. It is the only
//! place each leader operation's local behaviour is written: `/internal/rpc` calls it for
//! requests from other nodes, and [`super`]'s `call_leader` calls it directly when this node
//! is the leader, so both paths behave the same (same errors, same timeout clamp).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use raft_store::{codec, GroupId};

use super::message::{InternalRequest, InternalResponse};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use crate::partition::PartitionHandle;

/// Runs `req` on this node.
///
/// # Errors
/// `not_leader` (with a hint) when this node does not lead the group the request needs;
/// `leader_not_available` when the partition is not open here; the operation's own errors.
pub async fn serve_local(node: &Node, req: InternalRequest) -> Result<InternalResponse, ApiError> {
    let me = node.id();
    // A forwarded write's budget never exceeds this node's own request timeout.
    let clamp = |ms: u64| Duration::from_millis(ms).min(node.config().request_timeout());
    match req {
        InternalRequest::Produce {
            group,
            batch,
            timeout_ms,
        } => {
            let h = open_partition(node, group)?;
            h.produce(me, batch, clamp(timeout_ms))
                .await
                .map(InternalResponse::Produced)
        }
        InternalRequest::Fetch { group, req } => {
            let h = open_partition(node, group)?;
            h.fetch(me, &req).await.map(InternalResponse::Fetched)
        }
        InternalRequest::Status {
            group,
            require_leader,
        } => {
            let s = open_partition(node, group)?.status();
            if require_leader && s.leader != Some(me) {
                return Err(ApiError::new(ErrorCode::NotLeader, "not leader").with_leader(s.leader));
            }
            Ok(InternalResponse::Status(s))
        }
        InternalRequest::OffsetForTimestamp {
            group,
            timestamp_ms,
        } => {
            let h = open_partition(node, group)?;
            h.offset_for_timestamp(me, timestamp_ms)
                .await
                .map(InternalResponse::TimestampOffset)
        }
        InternalRequest::MoveLeadership { group, to } => {
            let h = open_partition(node, group)?;
            node.local_move_leadership(&h, to)
                .await
                .map(InternalResponse::Moved)
        }
        InternalRequest::MetaWrite { cmd, timeout_ms } => node
            .local_meta_write(cmd, clamp(timeout_ms))
            .await
            .map(InternalResponse::Meta),
        InternalRequest::MetaReadIndex => node
            .local_meta_read_index()
            .await
            .map(InternalResponse::ReadIndex),
        InternalRequest::GroupHeartbeat { group, member_id } => node
            .local_heartbeat(&group, &member_id)
            .map(InternalResponse::Heartbeat),
        InternalRequest::Join { id, addr } => {
            if node.meta_leader() == Some(me) {
                node.local_join(id, addr)
                    .await
                    .map(InternalResponse::Joined)
            } else {
                // A seed that does not lead the metadata takes the joiner to the leader.
                let deadline = tokio::time::Instant::now() + node.config().request_timeout();
                let req = InternalRequest::Join { id, addr };
                Box::pin(node.call_leader::<super::message::JoinReply>(
                    super::Leader::Metadata,
                    req,
                    deadline,
                ))
                .await
                .map(InternalResponse::Joined)
            }
        }
        InternalRequest::MoveStep {
            group,
            target,
            addrs,
        } => {
            let h = open_partition(node, group)?;
            h.quiet
                .ready_for_leader_op(&h.raft, node.config().request_timeout())
                .await;
            crate::raft::membership::step(
                &h.raft,
                &target,
                &addrs,
                crate::cluster::leader_balance::MAX_TAKEOVER_LAG,
                false,
            )
            .await
            .map(InternalResponse::MoveProgress)
        }
    }
}

/// The partition's handle, or `leader_not_available` (not applied: nothing was proposed)
/// while the group is not open on this node yet.
fn open_partition(node: &Node, group: GroupId) -> Result<PartitionHandle, ApiError> {
    node.partitions().get(group).ok_or_else(|| {
        ApiError::new(
            ErrorCode::LeaderNotAvailable,
            "partition not open on this node yet",
        )
    })
}

/// `POST /internal/rpc`: a postcard [`InternalRequest`] in, a postcard
/// `Result<InternalResponse, ApiError>` out.
pub async fn internal_rpc(State(node): State<Node>, body: Bytes) -> Response {
    let result = match codec::decode::<InternalRequest>(&body) {
        Err(e) => Err(ApiError::bad_request(format!("bad internal request: {e}"))),
        Ok(req) => serve_local(&node, req).await,
    };
    match codec::encode(&result) {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

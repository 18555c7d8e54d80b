//! Internal HTTP routes: Raft RPCs (`/raft/{group}/{rpc}`), and the forwarded requests of
//! [`crate::forward`] (`/internal/rpc`, served by [`crate::forward::serve`]). Every request must
//! carry the cluster secret; one without it gets 401 and never reaches Raft.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::storage::RaftStateMachine;
use openraft::Snapshot;
use raft_store::{codec, GroupId, TypeConfig, METADATA_GROUP};
use serde::Serialize;

use super::transport::{
    OLDEST_WIRE_VERSION, SECRET_HEADER, SENDER_HEADER, WIRE_VERSION, WIRE_VERSION_HEADER,
};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;

/// The internal router, guarded by the cluster secret.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/raft/{group}/{rpc}", post(raft_rpc))
        .route(super::heartbeats::BATCH_PATH, post(raft_batch))
        .route(super::quiesce::BEAT_PATH, post(beat))
        .route(
            crate::forward::INTERNAL_RPC_PATH,
            post(crate::forward::serve::internal_rpc),
        )
        .layer(middleware::from_fn_with_state(node.clone(), require_secret))
        // Raft appends carry up to 256 entries of whole produce batches.
        .layer(axum::extract::DefaultBodyLimit::max(512 * 1024 * 1024))
        .with_state(node)
}

/// Constant-time comparison, so the secret cannot be guessed byte by byte from timings.
fn secret_matches(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

async fn require_secret(State(node): State<Node>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(SECRET_HEADER)
        .is_some_and(|v| secret_matches(v.as_bytes(), node.config().cluster_secret().as_bytes()));
    if !ok {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "internal endpoint: cluster secret required",
        )
        .into_response();
    }
    if let Err(e) = check_wire_version(req.headers().get(WIRE_VERSION_HEADER)) {
        return e.into_response();
    }
    // A node removed from the cluster is fenced: whatever it still believes (an old
    // configuration, a stale term), its votes, appends and forwarded requests go nowhere.
    let sender = sender_of(req.headers());
    if let Some(id) = sender.filter(|id| node.is_removed(*id)) {
        return ApiError::new(
            ErrorCode::InvalidNodeState,
            format!("node {id} was removed from the cluster: its requests are refused"),
        )
        .into_response();
    }
    if let Some(id) = sender.filter(|id| *id != 0) {
        node.liveness().heard(id);
    }
    next.run(req).await
}

/// The sending node's id from `x-raftka-from`, if the header is there and well formed.
fn sender_of(headers: &axum::http::HeaderMap) -> Option<raft_store::NodeId> {
    headers
        .get(SENDER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Accepts a peer's internal wire version in `OLDEST_WIRE_VERSION..=WIRE_VERSION` (no header:
/// version 1, from a build before the header); anything else is refused with a clear error
/// instead of being misdecoded.
fn check_wire_version(header: Option<&axum::http::HeaderValue>) -> Result<(), ApiError> {
    let version = match header {
        None => 1,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| ApiError::bad_request("malformed internal wire version header"))?,
    };
    if (OLDEST_WIRE_VERSION..=WIRE_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the peer speaks internal wire version {version}; this node reads versions \
             {OLDEST_WIRE_VERSION} to {WIRE_VERSION}: upgrade the nodes one at a time, each to \
             a version that reads its predecessor's messages"
        )))
    }
}

fn binary<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn unavailable(msg: impl ToString) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, msg.to_string()).into_response()
}

async fn dispatch<SM>(raft: &raft_store::Raft<SM>, rpc: &str, body: &[u8]) -> Response
where
    SM: RaftStateMachine<TypeConfig, SnapshotData = Vec<u8>>,
{
    match rpc {
        "append" => match codec::decode(body) {
            Ok(req) => match raft.append_entries(req).await {
                Ok(resp) => binary(&resp),
                Err(e) => unavailable(e),
            },
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        "vote" => match codec::decode(body) {
            Ok(req) => match raft.vote(req).await {
                Ok(resp) => binary(&resp),
                Err(e) => unavailable(e),
            },
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        "pre_vote" => match codec::decode(body) {
            Ok(req) => match raft.pre_vote(req).await {
                Ok(resp) => binary(&resp),
                Err(e) => unavailable(e),
            },
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        "transfer_leader" => match codec::decode(body) {
            Ok(req) => match raft.handle_transfer_leader(req).await {
                Ok(resp) => binary(&resp),
                Err(e) => unavailable(e),
            },
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        "snapshot" => {
            type Req = (
                openraft::type_config::alias::VoteOf<TypeConfig>,
                openraft::type_config::alias::SnapshotMetaOf<TypeConfig>,
                Vec<u8>,
            );
            match codec::decode::<Req>(body) {
                Ok((vote, meta, data)) => {
                    let snap = Snapshot {
                        meta,
                        snapshot: data,
                    };
                    match raft.install_full_snapshot(vote, snap).await {
                        Ok(resp) => binary(&resp),
                        Err(e) => unavailable(e),
                    }
                }
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "unknown raft rpc").into_response(),
    }
}

async fn raft_rpc(
    State(node): State<Node>,
    Path((group, rpc)): Path<(GroupId, String)>,
    body: Bytes,
) -> Response {
    group_rpc(&node, group, &rpc, &body).await
}

/// `POST /raft-batch/append`: the heartbeats of many groups ([`super::heartbeats`]), each run
/// as `POST /raft/{group}/append` would run it, concurrently and bounded by the sender's
/// budget; the reply holds one item per request, in order.
async fn raft_batch(State(node): State<Node>, body: Bytes) -> Response {
    use super::heartbeats::{BatchReply, BatchRequest, ItemReply};
    let batch: BatchRequest = match codec::decode(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let budget = std::time::Duration::from_millis(batch.budget_ms);
    let runs = batch.items.iter().map(|(group, req)| {
        let node = &node;
        async move {
            let run = group_rpc(node, *group, "append", req);
            let Ok(resp) = tokio::time::timeout(budget, run).await else {
                return ItemReply::Status {
                    status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
                    body: format!("group {group}: no answer within {} ms", batch.budget_ms),
                };
            };
            let status = resp.status();
            match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
                Ok(b) if status.is_success() => ItemReply::Ok(b.to_vec()),
                Ok(b) => ItemReply::Status {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned(),
                },
                Err(e) => ItemReply::Status {
                    status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
                    body: e.to_string(),
                },
            }
        }
    });
    let replies: BatchReply = futures::future::join_all(runs).await;
    binary(&replies)
}

/// `POST /raft-node/beat`: a peer's beat ([`super::quiesce`]); the sender is the
/// `x-raftka-from` header, without which nothing is quiesced.
async fn beat(State(node): State<Node>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    let beat: super::quiesce::Beat = match codec::decode(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let sender = sender_of(&headers).filter(|id| *id != 0);
    let reply: super::quiesce::BeatReply = match sender {
        Some(id) => super::quiesce::serve_beat(&node, id, &beat),
        None => vec![false; beat.quiesce.len()],
    };
    binary(&reply)
}

/// Runs Raft RPC `rpc` of `group` on this node.
async fn group_rpc(node: &Node, group: GroupId, rpc: &str, body: &[u8]) -> Response {
    if group == METADATA_GROUP {
        return dispatch(node.meta_raft(), rpc, body).await;
    }
    match node.partitions().get(group) {
        Some(h) if h.joined && (rpc == "vote" || rpc == "pre_vote") && h.is_empty() => {
            // A replica added by a move votes only once the leader has given it a log: an
            // empty replica could otherwise elect a stale candidate that lacks committed
            // entries (a removed-and-re-added id, or a member behind a membership change).
            unavailable("this replica is joining the group and has no log yet: no vote")
        }
        Some(h) => {
            if h.quiet.is_quiesced() && super::quiesce::rpc_wakes(rpc, body) {
                h.quiet.wake(&h.raft);
            }
            dispatch(&h.raft, rpc, body).await
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("group {group} is not open on this node"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_wire_version, secret_matches, WIRE_VERSION};

    #[test]
    fn wire_versions_in_range_are_accepted() {
        use axum::http::HeaderValue;
        assert!(check_wire_version(None).is_ok());
        assert!(check_wire_version(Some(&HeaderValue::from_static("1"))).is_ok());
        let newer = HeaderValue::from_str(&(WIRE_VERSION + 1).to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("0"));
        let e = check_wire_version(Some(&newer)).err();
        assert!(e.is_some_and(|e| e.message.contains("wire version")));
        assert!(check_wire_version(Some(&HeaderValue::from_static("x"))).is_err());
    }

    #[test]
    fn secret_comparison() {
        assert!(secret_matches(b"abcdefgh", b"abcdefgh"));
        assert!(!secret_matches(b"abcdefgx", b"abcdefgh"));
        assert!(!secret_matches(b"abc", b"abcdefgh"));
        assert!(!secret_matches(b"", b"abcdefgh"));
    }
}

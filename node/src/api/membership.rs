//! Growing, shrinking and healing the cluster: partition reassignment, rebalancing,
//! decommissioning and dead-node removal.
//!
//! Each handler only records its plan in the metadata group (one Raft write, so it is either
//! recorded whole or not at all); the controller on the metadata leader carries the moves out
//! in the background ([`crate::cluster::controller`]). `GET /v1/cluster/reassignments` shows
//! what is still in flight.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use raft_store::NodeId;
use raftka_protocol::{MovePlan, ReassignRequest, Reassignment, Reassignments, RebalanceRequest};

use super::extract::{ApiJson, ApiJsonOrDefault, ApiPath, ApiQuery};
use crate::auth::Caller;
use crate::cluster::controller::cluster_error;
use crate::cluster::metadata::{MetaCommand, MetaResponse};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use raftka_protocol::{ErrorBody, Operation};

/// The most replicas one partition may be given.
const MAX_REPLICAS: usize = 7;

/// `POST /v1/cluster/reassignments`: moves one partition to the given replicas (the first is
/// the preferred leader). `202` with the recorded move; `200` with `from == to` when the
/// partition already has exactly those replicas.
#[utoipa::path(
    post,
    path = "/v1/cluster/reassignments",
    tag = "cluster",
    operation_id = "reassign_partition",
    request_body = ReassignRequest,
    responses(
        (status = 200, description = "Nothing to do: the partition has exactly those replicas", body = Reassignment),
        (status = 202, description = "The move is recorded and runs in the background", body = Reassignment),
        (status = 400, description = "`bad_request`: malformed JSON", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`topic_not_found`, `partition_not_found` or `node_not_found`", body = ErrorBody),
        (status = 409, description = "`reassignment_in_progress` or `invalid_node_state` (a target node that is not active)", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_replicas`: empty, a node twice, more than 7, or fewer than a majority of the current replicas", body = ErrorBody),
    )
)]
pub async fn reassign(
    State(node): State<Node>,
    caller: Caller,
    ApiJson(req): ApiJson<ReassignRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    if req.replicas.len() > MAX_REPLICAS {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicas,
            format!("at most {MAX_REPLICAS} replicas per partition"),
        ));
    }
    let cmd = MetaCommand::Reassign {
        topic: req.topic.clone(),
        partition: req.partition,
        replicas: req.replicas.clone(),
    };
    match node.meta_write(cmd).await? {
        MetaResponse::MovesRecorded { moves, .. } => match moves.into_iter().next() {
            Some(m) => Ok((StatusCode::ACCEPTED, Json(m.to_protocol()))),
            None => Ok((
                StatusCode::OK,
                Json(Reassignment {
                    topic: req.topic,
                    partition: req.partition,
                    from: req.replicas.clone(),
                    to: req.replicas,
                }),
            )),
        },
        other => Err(refusal(other)),
    }
}

/// `GET /v1/cluster/reassignments`: the moves in flight, oldest first (read after catching up
/// with the metadata leader, so a move reported done is done).
#[utoipa::path(
    get,
    path = "/v1/cluster/reassignments",
    tag = "cluster",
    operation_id = "list_reassignments",
    responses(
        (status = 200, description = "The moves in flight, oldest first", body = Reassignments),
        (status = 403, description = "`forbidden`: no `describe` on the cluster", body = ErrorBody),
    )
)]
pub async fn reassignments(
    State(node): State<Node>,
    caller: Caller,
) -> Result<Json<Reassignments>, ApiError> {
    caller.cluster(Operation::Describe)?;
    node.catch_up_metadata().await?;
    let reassignments = node.with_metadata(|m| {
        m.cluster
            .moves_in_order()
            .map(|(_, mv)| mv.to_protocol())
            .collect()
    });
    Ok(Json(Reassignments {
        reassignments,
        max_concurrent: u32::try_from(node.config().max_concurrent_moves).unwrap_or(u32::MAX),
    }))
}

/// `POST /v1/cluster/rebalance`: records the moves that balance replicas and preferred leaders
/// over the active nodes (at most `max_moves`). An empty plan: balanced already.
#[utoipa::path(
    post,
    path = "/v1/cluster/rebalance",
    tag = "cluster",
    operation_id = "rebalance",
    request_body(content = Option<RebalanceRequest>, description = "Optional: an empty body or `null` plans every move needed"),
    responses(
        (status = 200, description = "Balanced already: no move", body = MovePlan),
        (status = 202, description = "The moves recorded; they run in the background", body = MovePlan),
        (status = 400, description = "`bad_request`: malformed JSON or `max_moves: 0`", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 409, description = "`reassignment_in_progress` or `invalid_node_state`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_replicas`: no plan keeps every partition's replicas", body = ErrorBody),
    )
)]
pub async fn rebalance(
    State(node): State<Node>,
    caller: Caller,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RebalanceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    let max_moves = body.max_moves;
    if max_moves == Some(0) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "max_moves must be at least 1",
        ));
    }
    plan(&node, MetaCommand::Rebalance { max_moves }).await
}

/// `POST /v1/cluster/nodes/{id}/decommission`: drains a live node. It turns `draining`, its
/// replicas move to the active nodes, then it leaves the metadata group and turns `removed`.
/// The cluster's last active node is refused (`409 invalid_node_state`).
#[utoipa::path(
    post,
    path = "/v1/cluster/nodes/{id}/decommission",
    tag = "cluster",
    operation_id = "decommission_node",
    params(("id" = u64, Path, description = "The node's id", example = 4)),
    responses(
        (status = 200, description = "No replica to move: the node's new state", body = MovePlan),
        (status = 202, description = "The moves recorded; they run in the background", body = MovePlan),
        (status = 400, description = "`bad_request`: the id is not a non-negative integer", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`node_not_found`", body = ErrorBody),
        (status = 409, description = "`invalid_node_state` (removed already, or the last active node) or `reassignment_in_progress`", body = ErrorBody),
        (status = 422, description = "`invalid_replicas`: no node to take a replica", body = ErrorBody),
    )
)]
pub async fn decommission(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(id): ApiPath<NodeId>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    // Draining the last active node could never finish: no node could take its replicas or
    // its place in the metadata group, and it would stay `draining` for good.
    if node.catch_up_metadata().await.is_err() {
        tracing::debug!("checking the decommission against possibly stale local metadata");
    }
    let last_active = node.with_metadata(|m| m.cluster.active_nodes() == [id]);
    if last_active {
        return Err(ApiError::new(
            ErrorCode::InvalidNodeState,
            format!("node {id} is the cluster's last active node: nothing could take its place"),
        ));
    }
    plan(&node, MetaCommand::Decommission { id }).await
}

/// `DELETE /v1/cluster/nodes/{id}?dead=true`: a node that will never return is removed at
/// once and its replicas are rebuilt on the active nodes from the surviving replicas. Refused
/// (`409 invalid_node_state`) while the node answers health probes: a live node is drained with
/// `decommission` instead.
#[utoipa::path(
    delete,
    path = "/v1/cluster/nodes/{id}",
    tag = "cluster",
    operation_id = "remove_dead_node",
    params(
        ("id" = u64, Path, description = "The node's id", example = 4),
        ("dead" = bool, Query, description = "Must be `true`: the node will never return"),
    ),
    responses(
        (status = 200, description = "No replica to rebuild: the node's new state", body = MovePlan),
        (status = 202, description = "The moves recorded; they run in the background", body = MovePlan),
        (status = 400, description = "`bad_request`: `dead=true` missing, or the id is not a non-negative integer", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`node_not_found`", body = ErrorBody),
        (status = 409, description = "`invalid_node_state`: the node still answers, is the node asked, or is removed already; or `reassignment_in_progress`", body = ErrorBody),
        (status = 422, description = "`invalid_replicas`: a partition's only replica is on the node", body = ErrorBody),
    )
)]
pub async fn remove(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(id): ApiPath<NodeId>,
    query: ApiQuery,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    let dead = match query.0.get("dead").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "'dead' must be true or false, got '{other}'"
            )))
        }
    };
    if !dead {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "removing a node needs ?dead=true (it will never return; its replicas are rebuilt \
             elsewhere); drain a live node with POST /v1/cluster/nodes/{id}/decommission",
        ));
    }
    if id == node.id() || node.is_alive(id) {
        return Err(ApiError::new(
            ErrorCode::InvalidNodeState,
            format!(
                "node {id} still answers health probes: stop it first, or decommission it \
                 instead"
            ),
        ));
    }
    plan(&node, MetaCommand::RemoveDeadNode { id }).await
}

async fn plan(node: &Node, cmd: MetaCommand) -> Result<(StatusCode, Json<MovePlan>), ApiError> {
    match node.meta_write(cmd).await? {
        MetaResponse::MovesRecorded { moves, node: life } => {
            let status = if moves.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok((
                status,
                Json(MovePlan {
                    moves: moves.iter().map(|m| m.to_protocol()).collect(),
                    node_state: life.map(|l| l.to_protocol()),
                }),
            ))
        }
        other => Err(refusal(other)),
    }
}

fn refusal(resp: MetaResponse) -> ApiError {
    match resp {
        MetaResponse::ClusterRefused(e) => cluster_error(e),
        other => ApiError::internal(format!("unexpected metadata reply: {other:?}")),
    }
}

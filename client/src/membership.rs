//! Growing, shrinking and healing a live cluster: partition reassignment, replica rebalancing,
//! decommissioning a node and replacing a dead one (`/v1/cluster/reassignments`,
//! `/v1/cluster/rebalance`, `/v1/cluster/nodes/{id}`).
//!
//! Every call here only *records* moves in the cluster metadata and returns them; the moves run
//! in the background, a bounded number at a time (`max_concurrent` in
//! [`Client::reassignments`]). A move is done when it has left [`Client::reassignments`]; the
//! `raftka` CLI waits for that by polling, and so can any caller (see [`moves_pending`]).
//!
//! Like every admin call, these go to any node (the node forwards to the metadata leader) and
//! move to the next bootstrap node only when one refuses the connection, so none of them is
//! ever sent twice.

use reqwest::Method;

use crate::error::Error;
use crate::types::{
    MovePlan, NodeId, ReassignRequest, Reassignment, Reassignments, RebalanceRequest,
};
use crate::Client;

impl Client {
    /// Moves one partition's replicas to `replicas` (the first is the preferred leader):
    /// `POST /v1/cluster/reassignments`. New replicas join and catch up before the old ones
    /// leave, so the partition keeps serving throughout. Returns the recorded move.
    ///
    /// # Errors
    /// As [`Error::Server`]: `topic_not_found`, `partition_not_found`, `node_not_found` (a
    /// replica that is not a registered node), `invalid_node_state` (a replica on a draining or
    /// removed node), `invalid_replicas` (empty, repeated nodes, or fewer than a majority of
    /// the current replicas), `reassignment_in_progress` (the partition is already moving).
    pub async fn reassign(
        &self,
        topic: &str,
        partition: u32,
        replicas: &[NodeId],
    ) -> Result<Reassignment, Error> {
        let request = ReassignRequest {
            topic: topic.to_string(),
            partition,
            replicas: replicas.to_vec(),
        };
        self.call_with_body(Method::POST, "/v1/cluster/reassignments", &request)
            .await
    }

    /// The partition moves in flight, oldest first, and how many run at once
    /// (`GET /v1/cluster/reassignments`). A move leaves the list when it is done.
    ///
    /// # Errors
    /// Transport errors, or the server's error.
    pub async fn reassignments(&self) -> Result<Reassignments, Error> {
        self.call_json(Method::GET, "/v1/cluster/reassignments", None)
            .await
    }

    /// Records the moves that spread replicas and preferred leaders evenly over the active
    /// nodes (`POST /v1/cluster/rebalance`), at most `max_moves` of them when given. An empty
    /// plan means the cluster is balanced already.
    ///
    /// # Errors
    /// Transport errors, or the server's error (`bad_request` for `max_moves` 0,
    /// `leader_not_available` during a metadata election, …). A partition already moving is
    /// not refused: the plan may retarget its move, which stays one move.
    pub async fn rebalance(&self, max_moves: Option<u32>) -> Result<MovePlan, Error> {
        self.call_with_body(
            Method::POST,
            "/v1/cluster/rebalance",
            &RebalanceRequest { max_moves },
        )
        .await
    }

    /// Starts retiring a live node (`POST /v1/cluster/nodes/{id}/decommission`): it becomes
    /// `draining`, every replica it holds moves to other nodes, and once none is left it leaves
    /// the metadata group and becomes `removed`. Returns the moves recorded.
    ///
    /// # Errors
    /// As [`Error::Server`]: `node_not_found`, `invalid_node_state` (already removed),
    /// `invalid_replicas` (no active node can take one of its replicas: add a node first;
    /// nothing changed).
    pub async fn decommission(&self, node: NodeId) -> Result<MovePlan, Error> {
        self.call_json(
            Method::POST,
            &format!("/v1/cluster/nodes/{node}/decommission"),
            None,
        )
        .await
    }

    /// Removes a node that will never return (`DELETE /v1/cluster/nodes/{id}?dead=true`): it
    /// becomes `removed` at once and each of its replicas is rebuilt on another node from the
    /// surviving replicas. Returns the moves recorded. Only for a node whose machine or disk is
    /// gone; retire a live node with [`Client::decommission`].
    ///
    /// # Errors
    /// As [`Error::Server`]: `node_not_found`, `invalid_node_state` (the node still answers
    /// health probes — it stays refused for about 3 s after the node stops — or is already
    /// removed), `invalid_replicas` (a partition would keep no majority of its replicas).
    pub async fn remove_dead_node(&self, node: NodeId) -> Result<MovePlan, Error> {
        self.call_json(
            Method::DELETE,
            &format!("/v1/cluster/nodes/{node}?dead=true"),
            None,
        )
        .await
    }
}

/// The moves of `planned` that are still in flight according to `in_flight` (from
/// [`Client::reassignments`] or `GET /v1/cluster`). A move is matched by its partition only: the
/// server runs at most one move per partition, and it may re-plan a move in flight (when its
/// target node dies, say), which is still the same move to wait for.
pub fn moves_pending<'a>(
    planned: &'a [Reassignment],
    in_flight: &[Reassignment],
) -> Vec<&'a Reassignment> {
    planned
        .iter()
        .filter(|m| {
            in_flight
                .iter()
                .any(|f| f.topic == m.topic && f.partition == m.partition)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(topic: &str, partition: u32, from: &[u64], to: &[u64]) -> Reassignment {
        Reassignment {
            topic: topic.into(),
            partition,
            from: from.to_vec(),
            to: to.to_vec(),
        }
    }

    #[test]
    fn a_move_is_pending_while_its_partition_is_in_flight() {
        let planned = vec![
            mv("a", 0, &[1, 2, 3], &[4, 2, 3]),
            mv("a", 1, &[1, 2, 3], &[1, 5, 3]),
            mv("b", 0, &[1, 2, 3], &[1, 2, 4]),
        ];
        let in_flight = vec![
            mv("a", 1, &[1, 2, 3], &[1, 5, 3]),
            // Re-planned by the server (its target died): still the same partition's move.
            mv("b", 0, &[1, 2, 3], &[1, 2, 5]),
            // Someone else's move.
            mv("c", 0, &[1, 2, 3], &[2, 3, 4]),
        ];
        let pending = moves_pending(&planned, &in_flight);
        assert_eq!(pending, vec![&planned[1], &planned[2]]);
        assert!(moves_pending(&planned, &[]).is_empty());
        assert!(moves_pending(&[], &in_flight).is_empty());
    }

    #[test]
    fn requests_encode_as_the_contract_says() {
        let body = serde_json::to_value(RebalanceRequest { max_moves: None }).unwrap();
        assert_eq!(body, serde_json::json!({}));
        let body = serde_json::to_value(RebalanceRequest { max_moves: Some(2) }).unwrap();
        assert_eq!(body, serde_json::json!({"max_moves": 2}));
        let body = serde_json::to_value(ReassignRequest {
            topic: "t".into(),
            partition: 3,
            replicas: vec![1, 4, 5],
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"topic": "t", "partition": 3, "replicas": [1, 4, 5]})
        );
    }
}

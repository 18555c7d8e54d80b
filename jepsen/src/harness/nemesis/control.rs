//! How the nemesis talks to the cluster's control plane: `GET /v1/cluster` from the freshest
//! member it can reach ([`ClusterView`]), and control requests (moves, drains, removals)
//! through the metadata leader or any running member.
//!
//! Replies are classified like client writes: `2xx` applied, an error with outcome
//! `not_applied` or a refused connection not applied, anything else unknown. A refused
//! connection (nothing was sent) moves on to the next member; anything else is the answer. A
//! `400`, `405`, `422` or a `404 not_found` (no such route) means the harness asked something
//! the server does not understand, and is reported with the cell.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::cluster_view::{parse_cluster, ClusterView};
use super::Nemesis;
use crate::harness::http::{self, HttpError, Response, Timeouts};
use crate::harness::rng::Rng;

fn control_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        total: Duration::from_secs(10),
    }
}

fn view_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        total: Duration::from_secs(3),
    }
}

/// Whether a control request happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    Yes,
    No,
    Unknown,
}

/// A control request's reply, classified.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) applied: Applied,
    pub(super) status: Option<u16>,
    pub(super) error: Option<String>,
    pub(super) body: Json,
}

impl Answer {
    pub(super) fn of(res: Result<Response, HttpError>) -> Self {
        match res {
            Ok(r) if (200..300).contains(&r.status) => Answer {
                applied: Applied::Yes,
                status: Some(r.status),
                error: None,
                body: r.json(),
            },
            Ok(r) => {
                let body = r.json();
                let applied = if body["outcome"] == "not_applied" {
                    Applied::No
                } else {
                    Applied::Unknown
                };
                Answer {
                    applied,
                    status: Some(r.status),
                    error: body["error"].as_str().map(str::to_owned),
                    body,
                }
            }
            Err(e @ HttpError::Connect(_)) => Answer {
                applied: Applied::No,
                status: None,
                error: Some(e.to_string()),
                body: Json::Null,
            },
            Err(e) => Answer {
                applied: Applied::Unknown,
                status: None,
                error: Some(e.to_string()),
                body: Json::Null,
            },
        }
    }

    pub(super) fn accepted(&self) -> bool {
        self.applied == Applied::Yes
    }

    /// The server did not understand the request: a harness bug, or an endpoint missing.
    fn misunderstood(&self) -> bool {
        matches!(self.status, Some(400 | 405 | 422))
            || (self.status == Some(404) && self.error.as_deref() == Some("not_found"))
    }

    pub(super) fn to_json(&self) -> Json {
        let mut j = json!({
            "applied": match self.applied {
                Applied::Yes => "yes",
                Applied::No => "no",
                Applied::Unknown => "unknown",
            },
            "status": self.status,
            "error": self.error,
        });
        if let Some(moves) = self.body["moves"].as_array() {
            j["moves"] = json!(moves.len());
        }
        j
    }
}

impl Nemesis<'_> {
    /// Running members in a random order, the metadata leader of `view` first.
    pub(super) fn control_nodes(&mut self, view: Option<&ClusterView>, rng: &mut Rng) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .cluster
            .members()
            .into_iter()
            .filter(|id| self.cluster.is_running(*id) && !self.cluster.is_paused(*id))
            .collect();
        rng.shuffle(&mut ids);
        if let Some(l) = view.and_then(|v| v.metadata_leader) {
            if let Some(i) = ids.iter().position(|id| *id == l) {
                ids.swap(0, i);
            }
        }
        ids
    }

    /// `GET /v1/cluster` from the first member that answers, re-asked of the metadata leader
    /// it names (whose view is the freshest).
    pub(super) fn cluster_view(&mut self, rng: &mut Rng) -> Option<ClusterView> {
        let t = self.topo();
        let mut found: Option<ClusterView> = None;
        for id in self.control_nodes(None, rng) {
            let r = http::request(t.node_addr(id), "GET", "/v1/cluster", None, view_timeouts());
            if let Some(v) = r
                .ok()
                .filter(|r| r.status == 200)
                .and_then(|r| parse_cluster(&r.json()))
            {
                found = Some(v);
                break;
            }
        }
        let view = found?;
        match view.metadata_leader {
            Some(l) if Some(l) != view.answered_by && self.cluster.is_member(l) => {
                http::request(t.node_addr(l), "GET", "/v1/cluster", None, view_timeouts())
                    .ok()
                    .filter(|r| r.status == 200)
                    .and_then(|r| parse_cluster(&r.json()))
                    .or(Some(view))
            }
            _ => Some(view),
        }
    }

    /// One control request through the metadata leader or any running member; a refused
    /// connection (nothing sent) moves on to the next node, anything else is the answer.
    pub(super) fn control(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Json>,
        view: Option<&ClusterView>,
        rng: &mut Rng,
    ) -> Answer {
        let t = self.topo();
        let body = body.map(|b| b.to_string());
        let mut last = Answer::of(Err(HttpError::Connect("no running member".into())));
        for id in self.control_nodes(view, rng).into_iter().take(3) {
            let res = http::request(
                t.node_addr(id),
                method,
                path,
                body.as_deref().map(str::as_bytes),
                control_timeouts(),
            );
            last = Answer::of(res);
            // Only a refused connection lets the request go to another node.
            let refused = last.status.is_none() && last.applied == Applied::No;
            if !refused {
                break;
            }
        }
        if last.misunderstood() {
            self.membership.misunderstood = true;
            let e = format!(
                "membership: {method} {path} answered {:?} {:?}: {}",
                last.status, last.error, last.body
            );
            // Once per message: a missing endpoint is asked again every second while settling.
            if !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
        last
    }

    /// Moves in flight (`GET /v1/cluster/reassignments`), `None` when nobody answered.
    pub(super) fn moves_in_flight(&mut self, rng: &mut Rng) -> Option<usize> {
        let a = self.control("GET", "/v1/cluster/reassignments", None, None, rng);
        a.accepted()
            .then(|| a.body["reassignments"].as_array().map(Vec::len))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_like_writes() {
        let r = |status: u16, body: Json| {
            Answer::of(Ok(Response {
                status,
                body: body.to_string().into_bytes(),
            }))
        };
        let a = r(202, json!({"moves": [1, 2], "node_state": "draining"}));
        assert!(a.accepted());
        assert_eq!(a.to_json()["moves"], 2);
        let a = r(
            409,
            json!({"error": "reassignment_in_progress", "outcome": "not_applied"}),
        );
        assert_eq!(a.applied, Applied::No);
        assert!(!a.misunderstood());
        let a = r(
            503,
            json!({"error": "write_outcome_unknown", "outcome": "unknown"}),
        );
        assert_eq!(a.applied, Applied::Unknown);
        assert!(r(404, json!({"error": "not_found"})).misunderstood());
        assert!(!r(404, json!({"error": "node_not_found"})).misunderstood());
        assert!(r(422, json!({"error": "invalid_replicas"})).misunderstood());
        let a = Answer::of(Err(HttpError::Connect("refused".into())));
        assert_eq!(a.applied, Applied::No);
        let a = Answer::of(Err(HttpError::AfterSend("reset".into())));
        assert_eq!(a.applied, Applied::Unknown);
    }
}

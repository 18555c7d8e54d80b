//! "Run it on the leader": any node accepts any request, and this room finds the leader of a
//! partition (or of the metadata group) and runs the operation there.
//!
//! - [`message`]: the internal requests and replies ([`InternalRequest`], [`InternalResponse`]);
//! - [`serve`]: [`serve::serve_local`], each operation's one local implementation, also behind
//!   `/internal/rpc`;
//! - this module: [`Node::call_leader`], the one retry and leader-hint loop, which calls
//!   `serve_local` when the leader is this node and sends the request otherwise;
//! - [`ops`]: the typed operations (`produce`, `fetch`, `meta_write`, …), each a few lines over
//!   `call_leader`.
//!
//! Invariant: only errors whose outcome is `not_applied` and that are retriable (not leader,
//! no leader yet, connection refused before sending) are retried here. Anything that may have
//! been applied is returned to the caller as `unknown`, never resent.

pub mod message;
pub mod ops;
pub mod serve;

use std::time::Duration;

use raft_store::{codec, GroupId, NodeId};
use tokio::time::Instant;

pub use message::{InternalRequest, InternalResponse, INTERNAL_RPC_PATH};

use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use crate::raft::transport::SendError;

/// Key of the metadata group in the leader cache (partition groups use their group id).
const META_KEY: u64 = u64::MAX;

/// Whose leader runs a request.
#[derive(Debug, Clone, Copy)]
pub enum Leader<'a> {
    /// The leader of a partition group, one of its replicas.
    Partition {
        /// The partition's Raft group.
        group: GroupId,
        /// Its replicas.
        replicas: &'a [NodeId],
    },
    /// The metadata leader, one of the cluster's nodes.
    Metadata,
}

impl Node {
    fn cached_leader(&self, key: u64) -> Option<NodeId> {
        self.inner.leader_cache.read().ok()?.get(&key).copied()
    }

    fn cache_leader(&self, key: u64, leader: NodeId) {
        // std RwLock: held for one map operation, never across an await.
        if let Ok(mut c) = self.inner.leader_cache.write() {
            c.insert(key, leader);
        }
    }

    /// The nodes that may lead `leader`, this node's own view of who leads, and the cache key.
    fn leader_candidates(&self, leader: Leader<'_>) -> (Vec<NodeId>, Option<NodeId>, u64) {
        match leader {
            Leader::Partition { group, replicas } => (
                replicas.to_vec(),
                self.partitions()
                    .get(group)
                    .and_then(|h| h.current_leader()),
                group,
            ),
            Leader::Metadata => (
                self.inner.transport.peers().keys().copied().collect(),
                self.meta_leader(),
                META_KEY,
            ),
        }
    }

    /// Runs `req` on the leader of `leader` and decodes its reply, retrying only
    /// `not_applied` errors (following leader hints at once, backing off when there is no
    /// leader) until `deadline`. A write's failure carries its outcome.
    ///
    /// # Errors
    /// The leader's error, or `leader_not_available` when no leader answered in time.
    pub async fn call_leader<T>(
        &self,
        leader: Leader<'_>,
        mut req: InternalRequest,
        deadline: Instant,
    ) -> Result<T, ApiError>
    where
        T: TryFrom<InternalResponse, Error = ApiError>,
    {
        let is_write = req.is_write();
        let finish = |e: ApiError| if is_write { e.for_write() } else { e };
        let (candidates, local_view, cache_key) = self.leader_candidates(leader);
        if candidates.is_empty() {
            return Err(finish(ApiError::new(
                ErrorCode::LeaderNotAvailable,
                "no replicas",
            )));
        }
        let mut hint = local_view.or_else(|| self.cached_leader(cache_key));
        let mut next = (self.next_round_robin() as usize) % candidates.len();
        let mut backoff = Duration::from_millis(20);
        let mut previous: Option<NodeId> = None;
        loop {
            let target = match hint.take().filter(|h| candidates.contains(h)) {
                Some(t) => t,
                None => {
                    let t = candidates[next % candidates.len()];
                    next += 1;
                    t
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            req.set_budget(remaining);
            let timeout = req.reply_timeout(remaining);
            match self.call_node(target, req.clone(), timeout).await {
                Ok(reply) => {
                    self.cache_leader(cache_key, target);
                    return T::try_from(reply).map_err(finish);
                }
                Err(e) if e.code.retriable() && e.is_not_applied() => {
                    hint = e.leader_hint.filter(|h| *h != target);
                    // Two nodes naming each other (a leadership handover in progress: the old
                    // leader names the target, which does not lead yet) is no news: wait.
                    let bouncing = hint.is_some() && hint == previous;
                    previous = Some(target);
                    if Instant::now() + backoff >= deadline {
                        let mut e = e;
                        if e.code == ErrorCode::NotLeader && e.leader_hint.is_none() {
                            e.code = ErrorCode::LeaderNotAvailable;
                        }
                        return Err(finish(e));
                    }
                    // Retry at once when we learnt the leader; back off when there is none,
                    // by at most 50 ms: an election takes a few round trips once it starts,
                    // and a longer step would add up to its length to every failover.
                    if hint.is_none() || bouncing {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(50));
                    }
                }
                Err(e) => return Err(finish(e)),
            }
        }
    }

    /// Runs `req` on node `target`: in place when it is this node, over the transport
    /// otherwise (waiting at most `timeout` for the reply).
    ///
    /// # Errors
    /// The operation's error; a transport failure as `leader_not_available` when nothing was
    /// sent or the request is a read, and as `timeout`/`write_outcome_unknown` when a write
    /// may have been received.
    pub async fn call_node(
        &self,
        target: NodeId,
        req: InternalRequest,
        timeout: Duration,
    ) -> Result<InternalResponse, ApiError> {
        if target == self.id() {
            return serve::serve_local(self, req).await;
        }
        let is_write = req.is_write();
        self.metrics()
            .forward_requests
            .with_label_values(&[req.kind()])
            .inc();
        let body = codec::encode(&req).map_err(|e| ApiError::internal(e.to_string()))?;
        match self
            .inner
            .transport
            .post(target, INTERNAL_RPC_PATH, body, timeout)
            .await
        {
            Ok(bytes) => codec::decode::<Result<InternalResponse, ApiError>>(&bytes)
                .map_err(|e| ApiError::internal(format!("bad reply from node {target}: {e}")))?,
            Err(SendError::NotSent { reason, .. }) => Err(ApiError::new(
                ErrorCode::LeaderNotAvailable,
                format!("node {target} unreachable: {reason}"),
            )),
            Err(SendError::MaybeSent {
                reason, timed_out, ..
            }) => {
                // For a write, the peer may have proposed it: the outcome is unknown.
                let code = match (is_write, timed_out) {
                    (false, _) => ErrorCode::LeaderNotAvailable,
                    (true, true) => ErrorCode::Timeout,
                    (true, false) => ErrorCode::WriteOutcomeUnknown,
                };
                Err(ApiError::new(code, format!("node {target}: {reason}")))
            }
            Err(e @ SendError::Status { .. }) => {
                let code = if is_write {
                    ErrorCode::Internal
                } else {
                    ErrorCode::LeaderNotAvailable
                };
                Err(ApiError::new(code, e.to_string()))
            }
        }
    }
}

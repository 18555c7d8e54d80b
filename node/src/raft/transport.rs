//! The node-to-node HTTP transport, shared by Raft RPCs and request forwarding.
//!
//! Every request carries the cluster secret in `x-raftka-secret`; the receiving side refuses
//! requests without it. Bodies are postcard-encoded. Errors are classified by whether the
//! request may have reached the peer, which is what decides a forwarded write's outcome.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use raft_store::NodeId;

/// The header that carries the cluster secret.
pub const SECRET_HEADER: &str = "x-raftka-secret";
/// The header carrying the sending node's id (0 for a node that has none yet).
pub const SENDER_HEADER: &str = "x-raftka-from";
/// The header carrying the internal wire version of the sending node.
pub const WIRE_VERSION_HEADER: &str = "x-raftka-wire";
/// The version of the node-to-node messages (Raft RPCs and forwarded requests, postcard) this
/// build sends. A change to their encoding raises it; a receiver accepts
/// [`OLDEST_WIRE_VERSION`]`..=`[`WIRE_VERSION`], so a cluster part-way through a rolling upgrade
/// keeps working as long as the new build still reads the old version.
pub const WIRE_VERSION: u32 = 1;
/// The oldest internal wire version this build reads. A request without the header comes
/// from a build before the header existed, which spoke version 1.
pub const OLDEST_WIRE_VERSION: u32 = 1;

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request certainly did not reach the peer (no route, connection refused, blocked).
    #[error("peer {peer} unreachable: {reason}")]
    NotSent {
        /// The peer.
        peer: NodeId,
        /// Why.
        reason: String,
    },
    /// The request may have reached the peer (timeout, reset, truncated reply).
    #[error("request to peer {peer} failed after sending: {reason}")]
    MaybeSent {
        /// The peer.
        peer: NodeId,
        /// Why.
        reason: String,
        /// Whether the failure was the request timing out (rather than the connection failing).
        timed_out: bool,
    },
    /// The peer answered with a non-success status.
    #[error("peer {peer} answered HTTP {status}: {body}")]
    Status {
        /// The peer.
        peer: NodeId,
        /// HTTP status.
        status: u16,
        /// Body text (truncated).
        body: String,
    },
}

impl SendError {
    /// The same error again, for each request of a batch that failed as a whole.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NotSent { peer, reason } => Self::NotSent {
                peer: *peer,
                reason: reason.clone(),
            },
            Self::MaybeSent {
                peer,
                reason,
                timed_out,
            } => Self::MaybeSent {
                peer: *peer,
                reason: reason.clone(),
                timed_out: *timed_out,
            },
            Self::Status { peer, status, body } => Self::Status {
                peer: *peer,
                status: *status,
                body: body.clone(),
            },
        }
    }
}

/// Injected network faults between nodes, for in-process tests: a set of blocked directed
/// links. Empty (and cost-free to check) in production.
#[derive(Clone, Default, Debug)]
pub struct NetFaults {
    blocked: Arc<RwLock<HashSet<(NodeId, NodeId)>>>,
}

impl NetFaults {
    /// Blocks messages from `from` to `to`.
    pub fn block(&self, from: NodeId, to: NodeId) {
        if let Ok(mut b) = self.blocked.write() {
            b.insert((from, to));
        }
    }

    /// Cuts `node` off from every node in `others`, both directions.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for o in others {
            if *o != node {
                self.block(node, *o);
                self.block(*o, node);
            }
        }
    }

    /// Removes every fault.
    pub fn heal(&self) {
        if let Ok(mut b) = self.blocked.write() {
            b.clear();
        }
    }

    /// Whether `from -> to` is blocked.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked
            .read()
            .map(|b| !b.is_empty() && b.contains(&(from, to)))
            .unwrap_or(false)
    }
}

/// What a [`Transport`] handle shares.
pub struct TransportInner {
    self_id: NodeId,
    /// The address book: `--peers`, then the metadata's node registry as it is applied.
    peers: RwLock<BTreeMap<NodeId, String>>,
    http: reqwest::Client,
    /// `http` or `https` (`--tls-cert`: a cluster is all TLS or all plain).
    scheme: &'static str,
    secret: String,
    faults: NetFaults,
    /// The heartbeat batches ([`super::heartbeats`]).
    pub(super) coalescer: super::heartbeats::Coalescer,
    /// How long a heartbeat waits for others to the same peer; `None` sends each on its own.
    heartbeat_window: Option<Duration>,
}

/// Cheap-to-clone handle for sending to peers.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<TransportInner>,
}

impl Transport {
    /// A transport for node `self_id` of a cluster with `peers`, over HTTPS when `tls` says so,
    /// batching heartbeats to each peer over `heartbeat_window` ([`super::heartbeats`]; `None`
    /// sends each heartbeat on its own).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend missing, …).
    pub fn new(
        self_id: NodeId,
        peers: BTreeMap<NodeId, String>,
        secret: String,
        faults: NetFaults,
        tls: &crate::tls::PeerTls,
        heartbeat_window: Option<Duration>,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500));
        if tls.enabled {
            // HTTP/1.1 as over plain HTTP: a pool of connections per peer, so one group's
            // large append never waits behind another's in one shared HTTP/2 connection and
            // its flow-control window (the listener also offers h2, which ALPN would pick).
            builder = builder.use_rustls_tls().https_only(true).http1_only();
            for ca in &tls.ca {
                builder = builder.add_root_certificate(ca.clone());
            }
        }
        let http = builder.build()?;
        Ok(Self {
            inner: Arc::new(TransportInner {
                self_id,
                peers: RwLock::new(peers),
                http,
                scheme: tls.scheme(),
                secret,
                faults,
                coalescer: super::heartbeats::Coalescer::default(),
                heartbeat_window,
            }),
        })
    }

    pub(super) fn inner(&self) -> &Arc<TransportInner> {
        &self.inner
    }

    pub(super) fn from_inner(inner: Arc<TransportInner>) -> Self {
        Self { inner }
    }

    /// The heartbeat batching window; `None` when heartbeats go one by one.
    pub fn heartbeat_window(&self) -> Option<Duration> {
        self.inner.heartbeat_window
    }

    /// This node's id.
    pub fn self_id(&self) -> NodeId {
        self.inner.self_id
    }

    /// The address of `node`.
    pub fn addr_of(&self, node: NodeId) -> Option<String> {
        self.inner.peers.read().ok()?.get(&node).cloned()
    }

    /// Every node this node knows an address for.
    pub fn peers(&self) -> BTreeMap<NodeId, String> {
        self.inner
            .peers
            .read()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// Sets the addresses of the cluster's nodes (the metadata's registry): new nodes are
    /// added, moved ones updated, and those in `removed` forgotten.
    pub fn update_addresses(&self, nodes: &BTreeMap<NodeId, String>, removed: &[NodeId]) {
        let Ok(mut peers) = self.inner.peers.write() else {
            return;
        };
        for (id, addr) in nodes {
            if peers.get(id) != Some(addr) {
                tracing::info!(node = id, %addr, "peer address");
                peers.insert(*id, addr.clone());
            }
        }
        for id in removed {
            if *id != self.inner.self_id && peers.remove(id).is_some() {
                tracing::info!(node = id, "peer removed");
            }
        }
    }

    /// The cluster secret.
    pub fn secret(&self) -> &str {
        &self.inner.secret
    }

    /// Injected faults.
    pub fn faults(&self) -> &NetFaults {
        &self.inner.faults
    }

    /// POSTs `body` to `path` on `peer` and returns the response body.
    ///
    /// # Errors
    /// See [`SendError`]: whether the request may have been delivered is part of the error.
    pub async fn post(
        &self,
        peer: NodeId,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<bytes::Bytes, SendError> {
        let me = self.inner.self_id;
        if self.inner.faults.is_blocked(me, peer) {
            return Err(SendError::NotSent {
                peer,
                reason: "link blocked by fault injection".into(),
            });
        }
        let addr = self.addr_of(peer).ok_or_else(|| SendError::NotSent {
            peer,
            reason: "unknown peer".into(),
        })?;
        let result = self.post_addr(peer, &addr, path, body, timeout).await;
        if !matches!(result, Err(SendError::NotSent { .. }))
            && self.inner.faults.is_blocked(peer, me)
        {
            // The request went through but the reply is lost on the way back.
            return Err(SendError::MaybeSent {
                peer,
                reason: "reply dropped by fault injection".into(),
                timed_out: false,
            });
        }
        result
    }

    /// POSTs `body` to `path` at `addr` (a node known by address only, such as a `--join`
    /// seed; errors name `peer`).
    ///
    /// # Errors
    /// See [`SendError`].
    pub async fn post_addr(
        &self,
        peer: NodeId,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<bytes::Bytes, SendError> {
        let url = format!("{}://{addr}{path}", self.inner.scheme);
        let mut request = self
            .inner
            .http
            .post(url)
            .header(SECRET_HEADER, &self.inner.secret)
            .header(WIRE_VERSION_HEADER, WIRE_VERSION)
            .header(SENDER_HEADER, self.inner.self_id)
            .header("content-type", "application/octet-stream");
        // A request forwarded for a client's request keeps its id, so the leader's log lines
        // carry the same one.
        if let Some(id) = crate::error::current_request_id() {
            request = request.header(crate::api::REQUEST_ID_HEADER, &*id);
        }
        let resp = request
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(peer, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SendError::MaybeSent {
            peer,
            reason: e.to_string(),
            timed_out: e.is_timeout(),
        })?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(SendError::Status {
                peer,
                status: status.as_u16(),
                body,
            });
        }
        Ok(bytes)
    }

    /// GETs a public path on `peer` (health probes), returning whether it answered 2xx.
    pub async fn probe(&self, peer: NodeId, path: &str, timeout: Duration) -> bool {
        if self.inner.faults.is_blocked(self.inner.self_id, peer) {
            return false;
        }
        let Some(addr) = self.addr_of(peer) else {
            return false;
        };
        let addr = addr.as_str();
        match self
            .inner
            .http
            .get(format!("{}://{addr}{path}", self.inner.scheme))
            .timeout(timeout)
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }
}

fn classify(peer: NodeId, e: &reqwest::Error) -> SendError {
    if e.is_connect() {
        SendError::NotSent {
            peer,
            reason: e.to_string(),
        }
    } else {
        SendError::MaybeSent {
            peer,
            reason: e.to_string(),
            timed_out: e.is_timeout(),
        }
    }
}

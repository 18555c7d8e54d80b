//! # raftka-node
//!
//! A Raftka node serves a Kafka-style event log over HTTP/JSON. Each topic partition is its
//! own Raft group (openraft) whose log *is* the partition log; a metadata group (group 0) holds
//! the topics and the placement of their replicas. Every group of a node shares one RocksDB,
//! and one fsync completes the appends of many groups (group commit). A write is acknowledged
//! only once it is fsynced on a majority of its partition's replicas and applied.
//!
//! Any node accepts any request and forwards it to the right leader.
//!
//! Module map:
//! - [`config`]: flags and validation;
//! - [`error`]: the error-code table and the JSON error shape;
//! - [`api`]: the public v1 HTTP API;
//! - [`node`]: the node (store, metadata group, partitions, background tasks);
//! - [`forward`]: running an operation on the leader of a partition or of the metadata group
//!   (locally or over `/internal/rpc`), and the typed operations built on it;
//! - [`partition`]: open partition groups and their leader-local produce and fetch;
//! - [`cluster`]: metadata state and its leader-local operations, placement, topic configs,
//!   consumer groups and their coordinator, and reconciling open groups with the metadata;
//! - [`raft`]: openraft configuration, HTTP network and the Raft RPC routes;
//! - [`metrics`]: the node's metrics registry and `GET /metrics` (Prometheus text format);
//! - [`serve`]: the HTTP server loop (plain or TLS, graceful shutdown);
//! - [`tls`]: TLS for the listener and for requests to peers (rustls, PEM files);
//! - [`partitioner`]: Kafka's murmur2 partitioner, from `raftka-protocol` (one copy for the
//!   server and the client).
//!
//! The v1 wire types and the error table live in the `raftka-protocol` crate.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod node;
pub mod partition;
pub use raftka_protocol::partitioner;
pub mod raft;
pub mod serve;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;

pub use config::Config;
pub use node::{Node, StartError};
pub use raft::transport::NetFaults;
use tokio::net::TcpListener;

/// A node started by [`start`]: its handle, address and a way to stop it.
pub struct RunningNode {
    /// The node.
    pub node: Node,
    /// The bound address.
    pub addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// Graceful shutdown: hand every leadership over to an in-sync replica (while still
    /// serving), stop accepting, drain requests, stop Raft, flush RocksDB.
    pub async fn shutdown(self) {
        self.node.hand_over_leadership().await;
        self.stop.cancel();
        let _ = self.server.await;
        self.node.shutdown().await;
    }

    /// Stops serving at once (in-flight requests are dropped) and stops Raft without a store
    /// flush: the closest in-process stand-in for a crash.
    pub async fn crash(self) {
        self.server.abort();
        let _ = self.server.await;
        self.node.inner.cancel.cancel();
        for h in self.node.partitions().all() {
            let _ = h.raft.shutdown().await;
        }
        let _ = self.node.meta_raft().shutdown().await;
    }
}

/// Starts a node on an already-bound listener and returns once it serves.
///
/// # Errors
/// See [`StartError`].
pub async fn start(
    config: Config,
    listener: TcpListener,
    faults: NetFaults,
) -> Result<RunningNode, StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            tls::acceptor(cert, key)
                .map_err(|e| StartError::Config(config::ConfigError::Tls(e.to_string())))?,
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let node = Node::start(config, faults).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let app = api::app(node.clone());
    let token = stop.clone();
    let server = tokio::spawn(serve::serve(listener, app, tls, token));
    tracing::info!(node_id = node.id(), %addr, scheme, "node serving");
    Ok(RunningNode {
        node,
        addr,
        stop,
        server,
    })
}

/// Runs a node until `shutdown` resolves, then shuts it down gracefully.
///
/// `on_ready` is called with the bound address once the node serves.
///
/// # Errors
/// See [`StartError`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), StartError> {
    let running = start(config, listener, NetFaults::default()).await?;
    on_ready(running.addr);
    shutdown.await;
    tracing::info!(
        "shutting down: handing over leadership, draining requests, stopping raft, flushing storage"
    );
    running.shutdown().await;
    Ok(())
}

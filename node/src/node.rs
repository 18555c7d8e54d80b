//! The node: owns the store, the metadata group, the open partitions and background tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::impls::BasicNode;
use raft_store::{BlobStateMachine, NodeId, Store, METADATA_GROUP};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cluster::metadata::{MetaState, TopicMeta};
use crate::config::{Config, ConfigError};
use crate::partition::Registry;
use crate::raft::handover::{self, Handover, HandoverLimits, HandoverReport};
use crate::raft::network::GroupNetwork;
use crate::raft::transport::{NetFaults, Transport};

/// The metadata group's Raft handle.
pub type MetaRaft = raft_store::Raft<BlobStateMachine<MetaState>>;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The store could not open.
    #[error("storage: {0}")]
    Store(#[from] raft_store::StoreError),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

pub(crate) struct NodeInner {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) transport: Transport,
    pub(crate) raft_config: Arc<openraft::Config>,
    pub(crate) meta: MetaRaft,
    pub(crate) meta_state: Arc<RwLock<MetaState>>,
    pub(crate) meta_applied: watch::Receiver<u64>,
    pub(crate) partitions: Registry,
    pub(crate) coordinator: crate::cluster::coordinator::Coordinator,
    pub(crate) last_seen: RwLock<HashMap<NodeId, Instant>>,
    pub(crate) leader_cache: RwLock<HashMap<u64, NodeId>>,
    pub(crate) reconciled: AtomicBool,
    pub(crate) started_at: Instant,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) round_robin: AtomicU64,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) liveness: crate::raft::quiesce::Liveness,
}

/// A running Raftka node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl Node {
    /// Opens the store, starts the metadata group and the background tasks.
    ///
    /// # Errors
    /// On bad configuration, storage failure or an openraft start failure.
    pub async fn start(mut config: Config, faults: NetFaults) -> Result<Node, StartError> {
        config.prepare()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StartError::Other(format!("data dir {}: {e}", config.data_dir.display()))
        })?;
        let joining = !config.join.is_empty();
        let peers = if joining {
            let mut book = crate::cluster::join::join(&mut config, &faults).await?;
            book.insert(config.id, config.advertised());
            book
        } else {
            config.peer_map()?
        };
        let store = Store::open_with(&config.data_dir, config.store_options())?;
        let metrics = crate::metrics::Metrics::new()
            .map_err(|e| StartError::Other(format!("metrics registry: {e}")))?;
        store.observe_syncs(metrics.sync_observer());
        let transport = Transport::new(
            config.id,
            peers.clone(),
            config.cluster_secret().to_string(),
            faults,
            &config.peer_tls()?,
            config
                .heartbeat_batching
                .then(|| crate::raft::heartbeats::window(config.heartbeat_ms)),
        )
        .map_err(|e| StartError::Other(e.to_string()))?;
        let raft_config =
            crate::raft::raft_config(&config).map_err(|e| StartError::Raft(e.to_string()))?;

        let sm = BlobStateMachine::<MetaState>::open(store.clone(), METADATA_GROUP)
            .map_err(|e| StartError::Other(e.to_string()))?;
        let meta_state = sm.shared();
        let meta_applied = sm.applied_index();
        let log = raft_store::LogStore::new(store.clone(), METADATA_GROUP);
        let meta_config = crate::raft::metadata_raft_config(&config)
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let meta = MetaRaft::new(
            config.id,
            meta_config,
            GroupNetwork::new(transport.clone(), METADATA_GROUP),
            log,
            sm,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

        let node = Node {
            inner: Arc::new(NodeInner {
                id: config.id,
                config,
                store,
                transport,
                raft_config,
                meta,
                meta_state,
                meta_applied,
                partitions: Registry::default(),
                coordinator: Default::default(),
                last_seen: RwLock::new(HashMap::new()),
                leader_cache: RwLock::new(HashMap::new()),
                reconciled: AtomicBool::new(false),
                started_at: Instant::now(),
                shutting_down: AtomicBool::new(false),
                round_robin: AtomicU64::new(0),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                metrics,
                liveness: Default::default(),
            }),
        };
        // The lowest-id node initializes the metadata group at once and so leads it first; the
        // others initialize with the same static membership only if no leader reached them
        // after a few election timeouts (identical initializations are safe). A joining node
        // never initializes: the metadata leader adds it to the running group.
        if !joining && !node.inner.meta.is_initialized().await.unwrap_or(true) {
            let members: BTreeMap<NodeId, BasicNode> = peers
                .iter()
                .map(|(id, a)| (*id, BasicNode { addr: a.clone() }))
                .collect();
            let order: Vec<NodeId> = peers.keys().copied().collect();
            let delay = crate::cluster::reconcile::initialize_delay(
                node.id(),
                &order,
                node.config().election_max_ms,
            );
            let meta = node.inner.meta.clone();
            let cancel = node.inner.cancel.clone();
            node.inner.tasks.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                if !meta.is_initialized().await.unwrap_or(true) {
                    if let Err(e) = meta.initialize(members).await {
                        tracing::debug!(error = %e, "metadata group already initialized");
                    }
                }
            });
        }
        node.spawn_background();
        Ok(node)
    }

    fn spawn_background(&self) {
        let n = self.clone();
        self.inner
            .tasks
            .spawn(async move { crate::cluster::reconcile::run(n).await });
        let n = self.clone();
        self.inner.tasks.spawn(async move { n.probe_peers().await });
        let n = self.clone();
        self.inner
            .tasks
            .spawn(async move { crate::partition::retention::run(n).await });
        let n = self.clone();
        self.inner
            .tasks
            .spawn(async move { crate::cluster::leader_balance::run(n).await });
        let n = self.clone();
        self.inner
            .tasks
            .spawn(async move { n.run_coordinator().await });
        let n = self.clone();
        self.inner
            .tasks
            .spawn(async move { crate::cluster::controller::run(n).await });
        let n = self.clone();
        self.inner.tasks.spawn(
            async move { crate::raft::quiesce::run(n).await }
                .instrument(tracing::debug_span!("quiesce")),
        );
        let n = self.clone();
        self.inner.tasks.spawn(
            async move { crate::metrics::raftka::watch_leaders(n).await }
                .instrument(tracing::debug_span!("leader_watch")),
        );
    }

    async fn probe_peers(self) {
        loop {
            let peers: Vec<NodeId> = self.inner.transport.peers().keys().copied().collect();
            for p in &peers {
                let ok = *p == self.inner.id
                    || self
                        .inner
                        .transport
                        .probe(*p, "/healthz", Duration::from_millis(500))
                        .await;
                if ok {
                    if let Ok(mut seen) = self.inner.last_seen.write() {
                        seen.insert(*p, Instant::now());
                    }
                }
            }
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// When each peer was last heard from ([`crate::raft::quiesce`]).
    pub fn liveness(&self) -> &crate::raft::quiesce::Liveness {
        &self.inner.liveness
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store (for stats).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The metadata group's Raft handle.
    pub fn meta_raft(&self) -> &MetaRaft {
        &self.inner.meta
    }

    /// This node's metrics registry.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The partitions open here.
    pub fn partitions(&self) -> &Registry {
        &self.inner.partitions
    }

    /// The current metadata leader, as this node knows it.
    pub fn meta_leader(&self) -> Option<NodeId> {
        self.inner.meta.metrics().borrow_watched().current_leader
    }

    /// Whether the node serves client requests: a metadata leader is known and local
    /// partitions are open.
    pub fn is_ready(&self) -> bool {
        !self.inner.shutting_down.load(Ordering::Acquire)
            && self.meta_leader().is_some()
            && self.inner.reconciled.load(Ordering::Acquire)
    }

    /// Whether `node` answered a health probe in the last 3 seconds.
    pub fn is_alive(&self, node: NodeId) -> bool {
        if node == self.inner.id {
            return true;
        }
        self.inner
            .last_seen
            .read()
            .ok()
            .and_then(|s| s.get(&node).copied())
            .is_some_and(|t| t.elapsed() < Duration::from_secs(3))
    }

    /// Whether `node` was removed from the cluster (in the local metadata's registry).
    pub fn is_removed(&self, node: NodeId) -> bool {
        self.with_metadata(|m| {
            m.cluster
                .nodes
                .get(&node)
                .is_some_and(|n| n.life == crate::cluster::membership::NodeLife::Removed)
        })
    }

    /// How long `node` has not answered a health probe (since this node started, for a node
    /// never seen).
    pub fn down_for(&self, node: NodeId) -> Duration {
        if node == self.inner.id {
            return Duration::ZERO;
        }
        self.inner
            .last_seen
            .read()
            .ok()
            .and_then(|s| s.get(&node).copied())
            .unwrap_or(self.inner.started_at)
            .elapsed()
    }

    /// A copy of the local metadata (possibly slightly behind the leader).
    pub fn metadata(&self) -> MetaState {
        self.inner
            .meta_state
            .read()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The nodes new replicas may go to: the registry's active nodes that answer health
    /// probes (every configured peer while the registry is still empty, in a cluster that
    /// just started), as Kafka places only on live brokers.
    pub fn placement_nodes(&self) -> Vec<NodeId> {
        let active = self.with_metadata(MetaState::placement_nodes);
        if active.is_empty() {
            return self.inner.transport.peers().into_keys().collect();
        }
        let alive: Vec<NodeId> = active
            .iter()
            .copied()
            .filter(|n| self.is_alive(*n))
            .collect();
        if alive.is_empty() {
            active
        } else {
            alive
        }
    }

    /// Runs `f` on the local metadata under a short read lock (never across an await).
    pub fn with_metadata<T>(&self, f: impl FnOnce(&MetaState) -> T) -> T {
        match self.inner.meta_state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Looks a topic up in the local metadata.
    pub fn local_topic(&self, name: &str) -> Option<TopicMeta> {
        self.inner.meta_state.read().ok()?.topic(name).cloned()
    }

    /// A per-node counter for spreading keyless records.
    pub fn next_round_robin(&self) -> u64 {
        self.inner.round_robin.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands the leadership of every group this node leads (its partitions and the metadata
    /// group) to in-sync replicas, within `--shutdown-handover-ms`, and stops this node's
    /// replicas from campaigning: the first step of a graceful stop, taken while the node still
    /// serves, so in-flight requests finish or are answered `not_leader` (not applied) with the
    /// new leader as hint. See [`crate::raft::handover`].
    pub async fn hand_over_leadership(&self) -> HandoverReport {
        let budget = Duration::from_millis(self.inner.config.shutdown_handover_ms);
        if budget.is_zero() {
            return HandoverReport::default();
        }
        // Readiness goes first, so load balancers stop sending new requests here.
        self.inner.shutting_down.store(true, Ordering::Release);
        let started = Instant::now();
        let me = self.id();
        let limits = HandoverLimits {
            // A voter that has not answered within an election timeout may be gone.
            fresh: Duration::from_millis(self.inner.config.election_min_ms),
            per_group: Duration::from_millis(self.inner.config.election_max_ms),
            budget,
        };
        let partitions = self.inner.partitions.all();
        // Quiet leaders have no fresh acknowledgements to pick a successor by: wake them.
        futures::future::join_all(partitions.iter().map(|h| {
            h.quiet
                .ready_for_leader_op(&h.raft, limits.per_group.min(budget))
        }))
        .await;
        let meta_deadline = tokio::time::Instant::now() + limits.per_group.min(budget);
        let (mut report, meta) = tokio::join!(
            handover::hand_over_all(partitions.iter().map(|h| (h.group, &h.raft)), me, limits),
            handover::hand_over(&self.inner.meta, me, limits.fresh, meta_deadline),
        );
        match meta {
            Handover::NotLeader => {}
            Handover::Transferred(_) => report.transferred += 1,
            Handover::NoTarget => report.no_target += 1,
            Handover::TimedOut => report.timed_out += 1,
        }
        tracing::info!(
            transferred = report.transferred,
            no_target = report.no_target,
            timed_out = report.timed_out,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "leadership handed over"
        );
        report
    }

    /// Stops background tasks and every Raft group, then flushes the store.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        for h in self.inner.partitions.all() {
            if let Err(e) = h.raft.shutdown().await {
                tracing::warn!(group = h.group, error = %e, "partition shutdown");
            }
        }
        if let Err(e) = self.inner.meta.shutdown().await {
            tracing::warn!(error = %e, "metadata group shutdown");
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::warn!(error = %e, "store flush at shutdown");
        }
    }
}

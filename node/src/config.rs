//! Node configuration: clap flags, each with an environment variable fallback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use raft_store::NodeId;

mod secret;

/// Errors in the configuration, reported before the node starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `--peers` item is not `id=host:port`.
    #[error("bad peer '{0}': expected id=host:port")]
    BadPeer(String),
    /// This node's id is not among the peers.
    #[error("node id {0} is not in --peers")]
    SelfNotInPeers(NodeId),
    /// The same id appears twice.
    #[error("peer id {0} appears twice")]
    DuplicatePeer(NodeId),
    /// Timing values that cannot work together.
    #[error("invalid timing: {0}")]
    Timing(String),
    /// The cluster secret is too short to be a secret.
    #[error("the cluster secret must be at least 8 characters")]
    WeakSecret,
    /// A node with peers was given no secret, or one that is published (a former built-in
    /// default or a documentation placeholder).
    #[error("{0}")]
    Secret(String),
    /// Neither or both of `--peers` and `--join`, or a join without a usable address.
    #[error("{0}")]
    Membership(String),
    /// TLS flags that do not go together, or TLS files that cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// How the node writes its log lines (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    Text,
    /// One JSON object per line, with the span fields (the request id among them), for log
    /// shippers.
    Json,
}

/// Whether clients must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every client may do everything (logged at start).
    Off,
    /// Every request but the health and metrics probes needs a bearer token, and ACLs apply.
    Required,
}

/// The node's configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "raftka-node",
    version,
    about = "Raftka: a Raft-replicated event log over HTTP/JSON"
)]
pub struct Config {
    /// This node's id (a positive integer, unique in the cluster). With `--join` it may be
    /// left out (0): the cluster assigns one, kept in `<data-dir>/node-id` for restarts.
    #[arg(long, env = "RAFTKA_NODE_ID", default_value_t = 0)]
    pub id: NodeId,

    /// Address to listen on for HTTP (clients and peers). The CLI's default `--bootstrap`.
    #[arg(long, env = "RAFTKA_LISTEN", default_value = "127.0.0.1:19091")]
    pub listen: SocketAddr,

    /// Directory for this node's data (RocksDB, its id, a single node's generated secret).
    #[arg(long, env = "RAFTKA_DATA_DIR", default_value = "./raftka-data")]
    pub data_dir: PathBuf,

    /// Every node of the initial cluster, this one included: `1=127.0.0.1:19091,2=…`. Only
    /// for the nodes that form a new cluster; a node added later uses `--join`. Without
    /// `--peers` and `--join` the node forms a cluster of its own (a single node, id 1 unless
    /// `--id` is given).
    #[arg(long, env = "RAFTKA_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Join a running cluster through any of these nodes (`host:port`, comma-separated)
    /// instead of forming one from `--peers`. The node registers itself, follows the
    /// metadata, and serves once it has caught up.
    #[arg(long, env = "RAFTKA_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,

    /// The `host:port` other nodes and clients reach this node at (default: `--listen`).
    #[arg(long, env = "RAFTKA_ADVERTISE")]
    pub advertise: Option<String>,

    /// How many nodes vote in the metadata group (the others follow it as learners); a
    /// voter that leaves or stays down is replaced by a live node.
    #[arg(long, env = "RAFTKA_METADATA_VOTERS", default_value_t = 3)]
    pub metadata_voters: usize,

    /// How many partition moves (reassignments, rebalance, drain) run at once.
    #[arg(long, env = "RAFTKA_MAX_CONCURRENT_MOVES", default_value_t = 2)]
    pub max_concurrent_moves: usize,

    /// How long a metadata voter may stay unreachable before a live node replaces it.
    #[arg(long, env = "RAFTKA_VOTER_REPAIR_MS", default_value_t = 10_000)]
    pub voter_repair_ms: u64,

    /// Shared secret that every internal (node-to-node) request must carry: the same on every
    /// node, at least 8 characters. Required when the node has peers (`--peers` with others,
    /// or `--join`); a single node without one generates a random secret and keeps it in
    /// `<data-dir>/cluster-secret` (give that file to nodes that join it later).
    #[arg(
        long,
        env = "RAFTKA_CLUSTER_SECRET",
        hide_env_values = true,
        conflicts_with = "secret_file"
    )]
    pub secret: Option<String>,

    /// Read the cluster secret from this file (surrounding whitespace ignored) instead of
    /// `--secret`, so it shows neither in `ps` nor in the environment.
    #[arg(long, env = "RAFTKA_CLUSTER_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,

    /// Client authentication: `off` (anyone who reaches the port may do anything) or
    /// `required` (bearer tokens and ACLs). Use the same on every node.
    #[arg(long, env = "RAFTKA_AUTH", value_enum, default_value_t = AuthMode::Off)]
    pub auth: AuthMode,

    /// The bootstrap admin token (a superuser that ACLs do not bind; at least 16 characters),
    /// to create the first users and ACLs. Prefer `--admin-token-file`.
    #[arg(
        long,
        env = "RAFTKA_ADMIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<String>,

    /// Read the bootstrap admin token from this file (surrounding whitespace ignored).
    #[arg(long, env = "RAFTKA_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Log lines as `text` or `json` (one object per line); `RUST_LOG` picks what is logged.
    #[arg(long, env = "RAFTKA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve HTTPS with this certificate chain (PEM, leaf first; needs `--tls-key`). The node
    /// then reaches its peers over HTTPS as well: give every node of a cluster a certificate.
    #[arg(long, env = "RAFTKA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "RAFTKA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that peers' certificates are verified against, in place of the
    /// system's roots (for a cluster with its own CA). Only with `--tls-cert`.
    #[arg(long, env = "RAFTKA_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Raft heartbeat interval in milliseconds.
    #[arg(long, env = "RAFTKA_HEARTBEAT_MS", default_value_t = 250)]
    pub heartbeat_ms: u64,

    /// Send the heartbeats of every Raft group bound for one peer together, as one message
    /// per few milliseconds (`false`: one request per group and heartbeat, as before).
    #[arg(
        long,
        env = "RAFTKA_HEARTBEAT_BATCHING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub heartbeat_batching: bool,

    /// Quiesce a partition after this many milliseconds without writes (0: never): its
    /// replicas stop ticking and heartbeating until it is used again, so idle partitions cost
    /// nothing. The metadata group never quiesces.
    #[arg(long, env = "RAFTKA_QUIESCE_AFTER_MS", default_value_t = 2_000)]
    pub quiesce_after_ms: u64,

    /// Minimum Raft election timeout in milliseconds.
    #[arg(long, env = "RAFTKA_ELECTION_MIN_MS", default_value_t = 600)]
    pub election_min_ms: u64,

    /// Maximum Raft election timeout in milliseconds. It is also the leader lease, and how long
    /// a leader's node must be silent before its followers campaign: a partition fails over
    /// about this long after its leader dies.
    #[arg(long, env = "RAFTKA_ELECTION_MAX_MS", default_value_t = 1000)]
    pub election_max_ms: u64,

    /// How long a write may wait for commit before its outcome is reported as unknown.
    #[arg(long, env = "RAFTKA_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "RAFTKA_MAX_REQUEST_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Largest accepted single record (key + value + headers) in bytes; a topic's
    /// `max.message.bytes` can only lower it.
    #[arg(long, env = "RAFTKA_MAX_RECORD_BYTES", default_value_t = 1024 * 1024)]
    pub max_record_bytes: usize,

    /// How often partition leaders check `retention.ms` and `retention.bytes` (Kafka's
    /// `log.retention.check.interval.ms`).
    #[arg(long, env = "RAFTKA_RETENTION_CHECK_MS", default_value_t = 5_000)]
    pub retention_check_ms: u64,

    /// RocksDB memtable size per column family, in MiB: writes are buffered (and in the WAL)
    /// until this much is flushed to a file.
    #[arg(long, env = "RAFTKA_STORAGE_WRITE_BUFFER_MB", default_value_t = 64)]
    pub storage_write_buffer_mb: usize,

    /// Total RocksDB WAL size, in MiB, past which quiet column families are flushed so old WAL
    /// files can go. With the write buffers, it bounds the disk that deleted records may still
    /// hold.
    #[arg(long, env = "RAFTKA_STORAGE_MAX_WAL_MB", default_value_t = 256)]
    pub storage_max_wal_mb: u64,

    /// The metadata group (topics, consumer groups, committed offsets) snapshots its state
    /// every this many log entries and purges the log below, so group commits do not grow the
    /// disk without bound.
    #[arg(
        long,
        env = "RAFTKA_METADATA_SNAPSHOT_ENTRIES",
        default_value_t = 10_000
    )]
    pub metadata_snapshot_entries: u64,

    /// On a graceful stop (SIGTERM), how long the node may spend handing the leadership of
    /// every group it leads to in-sync replicas before it stops; 0 stops without handing over
    /// (the others then elect after the leader's lease expires).
    #[arg(long, env = "RAFTKA_SHUTDOWN_HANDOVER_MS", default_value_t = 5_000)]
    pub shutdown_handover_ms: u64,

    /// How often each node hands the partitions it leads but does not prefer back to their
    /// preferred replica (the first), when that replica is alive and caught up (Kafka's
    /// `auto.leader.rebalance.enable`); 0 disables it. `POST /v1/cluster/rebalance-leaders`
    /// does the same at once.
    #[arg(
        long,
        env = "RAFTKA_LEADER_REBALANCE_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub leader_rebalance_interval_ms: u64,
}

impl Config {
    /// A configuration for tests and embedding, with defaults for everything but identity.
    pub fn for_node(
        id: NodeId,
        listen: SocketAddr,
        data_dir: PathBuf,
        peers: &BTreeMap<NodeId, String>,
    ) -> Self {
        Self {
            id,
            listen,
            data_dir,
            peers: peers.iter().map(|(i, a)| format!("{i}={a}")).collect(),
            join: Vec::new(),
            advertise: None,
            metadata_voters: 3,
            max_concurrent_moves: 2,
            voter_repair_ms: 3_000,
            secret: Some("raftka-test-secret".into()),
            secret_file: None,
            log_format: LogFormat::Text,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            auth: AuthMode::Off,
            admin_token: None,
            admin_token_file: None,
            heartbeat_ms: 100,
            heartbeat_batching: true,
            quiesce_after_ms: 2_000,
            election_min_ms: 500,
            election_max_ms: 1000,
            request_timeout_ms: 5_000,
            max_request_bytes: 8 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
            retention_check_ms: 200,
            storage_write_buffer_mb: 64,
            storage_max_wal_mb: 256,
            metadata_snapshot_entries: 10_000,
            shutdown_handover_ms: 5_000,
            // Off in tests that do not ask for it: they reason about where leaders are.
            leader_rebalance_interval_ms: 0,
        }
    }

    /// A configuration for a node that joins the cluster through `seed` (tests and
    /// embedding); its id is assigned unless `id` is given.
    pub fn for_joining_node(
        id: Option<NodeId>,
        listen: SocketAddr,
        data_dir: PathBuf,
        seed: &str,
    ) -> Self {
        let mut c = Self::for_node(id.unwrap_or(0), listen, data_dir, &BTreeMap::new());
        c.join = vec![seed.to_string()];
        c
    }

    /// Fills in what the flags leave to the node and checks the whole: a node given neither
    /// `--peers` nor `--join` forms a single-node cluster of its own; the cluster secret is read
    /// from `--secret-file`, or for a single node without one, generated once and kept in
    /// `<data-dir>/cluster-secret` (the data directory is created for it). Idempotent.
    ///
    /// # Errors
    /// The first problem found, or an unreadable secret file.
    pub fn prepare(&mut self) -> Result<(), ConfigError> {
        if self.peers.is_empty() && self.join.is_empty() {
            if self.id == 0 {
                self.id = 1;
            }
            self.peers = vec![format!("{}={}", self.id, self.advertised())];
        }
        if let Some(path) = self.secret_file.take() {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::Secret(format!("--secret-file {}: {e}", path.display()))
            })?;
            self.secret = Some(text.trim().to_string());
        }
        if let Some(path) = self.admin_token_file.take() {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::Secret(format!("--admin-token-file {}: {e}", path.display()))
            })?;
            self.admin_token = Some(text.trim().to_string());
        }
        if self.secret.is_none() && self.is_single_node() {
            self.secret = Some(secret::single_node_secret(&self.data_dir)?);
        }
        self.validate()
    }

    /// True when this node forms a cluster of its own: `--peers` names only itself and it
    /// does not join another.
    pub fn is_single_node(&self) -> bool {
        self.join.is_empty()
            && self.peers.len() == 1
            && self.peer_map().is_ok_and(|p| p.contains_key(&self.id))
    }

    /// Whether the node serves HTTPS (and so reaches its peers over HTTPS).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// How this node reaches its peers: the scheme, and the CA from `--tls-ca` (loaded now).
    ///
    /// # Errors
    /// [`ConfigError::Tls`] when the CA file cannot be used.
    pub fn peer_tls(&self) -> Result<crate::tls::PeerTls, ConfigError> {
        let ca = match &self.tls_ca {
            Some(path) => crate::tls::load_ca(path).map_err(|e| ConfigError::Tls(e.to_string()))?,
            None => Vec::new(),
        };
        Ok(crate::tls::PeerTls {
            enabled: self.tls_enabled(),
            ca,
        })
    }

    /// The cluster secret (empty before [`Config::prepare`] resolved it, which `validate`
    /// refuses).
    pub fn cluster_secret(&self) -> &str {
        self.secret.as_deref().unwrap_or_default()
    }

    /// The address others reach this node at.
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// The store's options from the storage flags.
    pub fn store_options(&self) -> raft_store::StoreOptions {
        raft_store::StoreOptions {
            write_buffer_bytes: self.storage_write_buffer_mb.max(1) << 20,
            max_wal_bytes: self.storage_max_wal_mb.max(1) << 20,
        }
    }

    /// Parses `--peers` into `id -> address`.
    ///
    /// # Errors
    /// On a malformed item or a duplicate id.
    pub fn peer_map(&self) -> Result<BTreeMap<NodeId, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for item in &self.peers {
            let (id, addr) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::BadPeer(item.clone()))?;
            let id: NodeId = id
                .trim()
                .parse()
                .map_err(|_| ConfigError::BadPeer(item.clone()))?;
            let addr = addr.trim();
            if addr.is_empty() || !addr.contains(':') {
                return Err(ConfigError::BadPeer(item.clone()));
            }
            if out.insert(id, addr.to_string()).is_some() {
                return Err(ConfigError::DuplicatePeer(id));
            }
        }
        Ok(out)
    }

    /// Checks the configuration as a whole.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let peers = self.peer_map()?;
        match (peers.is_empty(), self.join.is_empty()) {
            (false, false) => {
                return Err(ConfigError::Membership(
                    "give --peers to form a new cluster or --join to join one, not both".into(),
                ))
            }
            (true, true) => {
                return Err(ConfigError::Membership(
                    "no --peers and no --join: Config::prepare makes a single node's".into(),
                ))
            }
            (false, true) if !peers.contains_key(&self.id) || self.id == 0 => {
                return Err(ConfigError::SelfNotInPeers(self.id));
            }
            (true, false) => {
                if self.advertise.is_none() && self.listen.ip().is_unspecified() {
                    return Err(ConfigError::Membership(
                        "--listen is a wildcard address: give --advertise host:port so the \
                         cluster can reach this node"
                            .into(),
                    ));
                }
                if self.join.iter().any(|a| !a.contains(':')) {
                    return Err(ConfigError::Membership(
                        "--join takes host:port addresses".into(),
                    ));
                }
            }
            (false, true) => {}
        }
        if self.metadata_voters == 0 {
            return Err(ConfigError::Membership(
                "--metadata-voters must be at least 1".into(),
            ));
        }
        match self.secret.as_deref() {
            None if self.is_single_node() => {
                return Err(ConfigError::Secret(
                    "no cluster secret: Config::prepare generates a single node's".into(),
                ))
            }
            None => {
                return Err(ConfigError::Secret(
                    "a node with peers needs the cluster secret: give every node the same \
                     --secret-file (or --secret / RAFTKA_CLUSTER_SECRET), for example made with \
                     `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > secret`"
                        .into(),
                ))
            }
            Some(s) if s.len() < 8 => return Err(ConfigError::WeakSecret),
            Some(s) if secret::is_published(s) && !self.is_single_node() => {
                return Err(ConfigError::Secret(format!(
                    "the cluster secret '{s}' is published (a former default or an example): \
                     anyone who can reach a node could forge Raft messages; choose a random one"
                )))
            }
            Some(_) => {}
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Tls(
                "--tls-cert and --tls-key go together".into(),
            ));
        }
        if self.tls_ca.is_some() && self.tls_cert.is_none() {
            return Err(ConfigError::Tls(
                "--tls-ca verifies peers over TLS: it needs --tls-cert and --tls-key (a cluster \
                 is all TLS or all plain)"
                    .into(),
            ));
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Secret(
                "the admin token must be at least 16 characters".into(),
            ));
        }
        if self.heartbeat_ms == 0 || self.election_min_ms <= self.heartbeat_ms * 2 {
            return Err(ConfigError::Timing(
                "election-min-ms must exceed twice heartbeat-ms".into(),
            ));
        }
        if self.retention_check_ms == 0 {
            return Err(ConfigError::Timing(
                "retention-check-ms must be positive".into(),
            ));
        }
        if self.election_max_ms <= self.election_min_ms {
            return Err(ConfigError::Timing(
                "election-max-ms must exceed election-min-ms".into(),
            ));
        }
        Ok(())
    }

    /// The write timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let mut peers = BTreeMap::new();
        peers.insert(1, "127.0.0.1:1".to_string());
        peers.insert(2, "127.0.0.1:2".to_string());
        Config::for_node(1, "127.0.0.1:0".parse().unwrap(), "/tmp/x".into(), &peers)
    }

    #[test]
    fn valid_config_passes() {
        base().validate().unwrap();
    }

    #[test]
    fn bad_peers_are_rejected() {
        let mut c = base();
        c.peers = vec!["1=127.0.0.1:1".into(), "oops".into()];
        assert!(matches!(c.validate(), Err(ConfigError::BadPeer(_))));
        c.peers = vec!["2=127.0.0.1:1".into()];
        assert!(matches!(c.validate(), Err(ConfigError::SelfNotInPeers(1))));
        c.peers = vec!["1=a:1".into(), "1=b:2".into()];
        assert!(matches!(c.validate(), Err(ConfigError::DuplicatePeer(1))));
    }

    #[test]
    fn no_flags_make_a_single_node_with_its_own_secret() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let mut c =
            Config::try_parse_from(["raftka-node", "--data-dir", data.to_str().unwrap()]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:19091");
        c.prepare().unwrap();
        assert_eq!(c.id, 1);
        assert_eq!(c.peers, vec!["1=127.0.0.1:19091".to_string()]);
        assert!(c.is_single_node());
        let secret = c.cluster_secret().to_string();
        assert_eq!(secret.len(), 64);
        let mut again =
            Config::try_parse_from(["raftka-node", "--data-dir", data.to_str().unwrap()]).unwrap();
        again.prepare().unwrap();
        assert_eq!(again.cluster_secret(), secret, "a restart keeps the secret");
        let default = Config::try_parse_from(["raftka-node"]).unwrap();
        assert_eq!(default.data_dir, PathBuf::from("./raftka-data"));
    }

    #[test]
    fn a_node_with_peers_needs_a_private_secret() {
        let mut c = base();
        c.secret = None;
        assert!(matches!(c.prepare(), Err(ConfigError::Secret(_))));
        c.secret = Some("raftka-dev-secret".into());
        assert!(matches!(c.prepare(), Err(ConfigError::Secret(_))));
        c.secret = Some("short".into());
        assert!(matches!(c.prepare(), Err(ConfigError::WeakSecret)));
        let mut joiner = Config::for_joining_node(
            None,
            "127.0.0.1:0".parse().unwrap(),
            "/x".into(),
            "127.0.0.1:1",
        );
        joiner.secret = None;
        assert!(matches!(joiner.prepare(), Err(ConfigError::Secret(_))));
        // A single node may still use the old default (nobody else can be forged into it).
        let mut single = base();
        single.peers = vec!["1=127.0.0.1:1".into()];
        single.secret = Some("raftka-dev-secret".into());
        single.prepare().unwrap();
    }

    #[test]
    fn the_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  0123456789abcdef\n").unwrap();
        let mut c = base();
        c.secret = None;
        c.secret_file = Some(file.clone());
        c.prepare().unwrap();
        assert_eq!(c.cluster_secret(), "0123456789abcdef");
        let mut missing = base();
        missing.secret = None;
        missing.secret_file = Some(dir.path().join("nope"));
        assert!(matches!(missing.prepare(), Err(ConfigError::Secret(_))));
        let both = Config::try_parse_from([
            "raftka-node",
            "--secret",
            "0123456789abcdef",
            "--secret-file",
            file.to_str().unwrap(),
        ]);
        assert!(both.is_err(), "--secret and --secret-file conflict");
    }

    #[test]
    fn timing_is_checked() {
        let mut c = base();
        c.election_max_ms = c.election_min_ms;
        assert!(matches!(c.validate(), Err(ConfigError::Timing(_))));
    }
}

//! Raft plumbing shared by every group: timing configuration, the HTTP network, the internal
//! RPC routes and the node-to-node transport.

pub mod handover;
pub mod heartbeats;
pub mod membership;
pub mod network;
pub mod quiesce;
pub mod rpc;
pub mod transport;

use std::sync::Arc;

use openraft::SnapshotPolicy;

use crate::config::Config;

/// The openraft configuration used by every group of this node.
///
/// Snapshots are never taken on a log-size policy: a partition's snapshot is tiny metadata and
/// only retention decides where the log may be purged. A snapshot is a retention boundary, so
/// openraft purges everything it covers at once (`max_in_snapshot_log_to_keep: 0`): keeping
/// entries below the log start would only hold on to deleted records.
///
/// # Errors
/// When openraft rejects the timing values.
pub fn raft_config(config: &Config) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
    let c = openraft::Config {
        cluster_name: "raftka".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        max_payload_entries: 256,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    Ok(Arc::new(c.validate()?))
}

/// The openraft configuration of the metadata group. Its state (topics, placement, consumer
/// groups and their committed offsets) is small and fully in its snapshot, and every group
/// commit is one more entry, so it snapshots every `metadata_snapshot_entries` entries and
/// purges what the snapshot covers, keeping a tenth of that for followers that lag a little
/// (they catch up from the log; one further behind installs the snapshot).
///
/// # Errors
/// When openraft rejects the values.
pub fn metadata_raft_config(
    config: &Config,
) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
    let every = config.metadata_snapshot_entries.max(1);
    let c = openraft::Config {
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every),
        max_in_snapshot_log_to_keep: every / 10,
        ..(*raft_config(config)?).clone()
    };
    Ok(Arc::new(c.validate()?))
}

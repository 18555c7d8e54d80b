//! Retention: deleting old records by time (`retention.ms`) and size (`retention.bytes`).
//!
//! Every `retention_check_ms`, for each partition replica on this node:
//! 1. **The leader decides.** From its applied state and the topic's configs it computes the
//!    new log start (whole batches only, never past the high watermark) and proposes
//!    `Truncate { before_offset }` through Raft, so every replica moves its `log_start_offset`
//!    at the same log position. A stale leader's proposal is harmless: it either fails to
//!    commit or applies as a no-op or a smaller step.
//! 2. **Every replica reclaims.** Once its log start has moved past its last snapshot, it asks
//!    openraft for a snapshot. The partition state machine builds the tiny boundary snapshot
//!    (just before the first retained batch), and openraft purges the log up to it, which frees
//!    the disk. A replica that later needs the purged entries gets that snapshot instead and
//!    then the retained entries.
//!
//! The check is level-triggered: a missed or failed round is redone by the next one.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::async_runtime::WatchReceiver;
use raft_store::{Command, GroupId, LogProgress};
use tracing::Instrument;

use super::PartitionHandle;
use crate::cluster::topic_config::TopicConfig;
use crate::node::Node;

/// Runs until the node shuts down.
pub async fn run(node: Node) {
    let every = Duration::from_millis(node.config().retention_check_ms);
    loop {
        tokio::select! {
            _ = node.inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let configs: HashMap<GroupId, (String, u32, TopicConfig)> = node.with_metadata(|m| {
            m.all_groups()
                .map(|(t, i, p)| {
                    (
                        p.group,
                        (t.name.clone(), i, TopicConfig::from_map(&t.configs)),
                    )
                })
                .collect()
        });
        for handle in node.partitions().all() {
            let Some((topic, partition, config)) = configs.get(&handle.group) else {
                continue;
            };
            let span = tracing::debug_span!("partition", topic = %topic, partition = *partition);
            check(&node, &handle, config, now_ms())
                .instrument(span)
                .await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One retention round for one replica.
async fn check(node: &Node, handle: &PartitionHandle, config: &TopicConfig, now_ms: i64) {
    let progress = *handle.progress.borrow();
    reclaim(handle, &progress).await;
    if handle.current_leader() != Some(node.id()) {
        return;
    }
    let reader = handle.reader.clone();
    let config = *config;
    let start =
        tokio::task::spawn_blocking(move || retention_start(&reader, &progress, &config, now_ms))
            .await;
    let target = match start {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "retention could not read the partition's index");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "retention task failed");
            return;
        }
    };
    if target <= progress.log_start_offset {
        return;
    }
    handle
        .quiet
        .ready_for_leader_op(&handle.raft, node.config().request_timeout())
        .await;
    let write = handle.raft.client_write(Command::Truncate {
        before_offset: target,
    });
    match tokio::time::timeout(node.config().request_timeout(), write).await {
        Ok(Ok(resp)) => tracing::info!(
            from = progress.log_start_offset,
            to = target,
            result = ?resp.data,
            "retention moved the log start"
        ),
        // Not leader any more, or a leader change: the next round decides again.
        Ok(Err(e)) => tracing::debug!(error = %e, "retention truncate not committed"),
        Err(_) => tracing::debug!("retention truncate timed out"),
    }
}

/// Where the topic's retention wants the log to start: the later of the size and time limits.
fn retention_start(
    reader: &raft_store::PartitionReader,
    p: &LogProgress,
    config: &TopicConfig,
    now_ms: i64,
) -> std::io::Result<u64> {
    let mut start = p.log_start_offset;
    if let Some(bytes) = config.retention_bytes {
        start = start.max(reader.size_retention_start(
            p.log_start_offset,
            p.high_watermark,
            p.log_bytes,
            bytes,
        )?);
    }
    if let Some(ms) = config.retention_ms {
        let cutoff = now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
        start =
            start.max(reader.time_retention_start(cutoff, p.log_start_offset, p.high_watermark)?);
    }
    Ok(start.min(p.high_watermark))
}

/// Asks openraft for a (boundary) snapshot once the log start has moved past the last one, so
/// that the log below it is purged.
async fn reclaim(handle: &PartitionHandle, p: &LogProgress) {
    if p.log_start_offset == 0 {
        return;
    }
    let Some(point) = p.snapshot_point else {
        return;
    };
    // Copy out of the metrics before any await.
    let snapshot = handle
        .raft
        .metrics()
        .borrow_watched()
        .snapshot
        .as_ref()
        .map(|l| l.index());
    if snapshot.is_some_and(|s| s >= point) {
        return;
    }
    if let Err(e) = handle.raft.trigger().snapshot().await {
        tracing::warn!(error = %e, "could not trigger the retention snapshot");
    }
}

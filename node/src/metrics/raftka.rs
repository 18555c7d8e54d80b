//! Raftka's own families read at scrape time (RocksDB sizes, open groups, follower lag,
//! snapshots, the process), and the watcher that counts leader changes and elections won.

use std::collections::HashMap;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, IntCounter, IntGauge, IntGaugeVec, Opts};
use raft_store::{GroupId, NodeId};

use crate::node::Node;

fn int_gauge(name: &str, help: &str, value: u64) -> prometheus::Result<Vec<MetricFamily>> {
    let g = IntGauge::new(name, help)?;
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    Ok(g.collect())
}

/// A counter family holding `value`, a total the node keeps elsewhere.
fn int_counter(name: &str, help: &str, value: u64) -> prometheus::Result<Vec<MetricFamily>> {
    let c = IntCounter::new(name, help)?;
    c.inc_by(value);
    Ok(c.collect())
}

/// The families read from `node` at scrape time.
///
/// # Errors
/// Only on an invalid family definition (a bug).
pub fn collect(node: &Node) -> prometheus::Result<Vec<MetricFamily>> {
    let mut out = Vec::new();
    let disk = node.store().disk_stats();
    out.extend(int_gauge(
        "raftka_rocksdb_live_sst_bytes",
        "Bytes of RocksDB SST files holding live data (rocksdb.live-sst-files-size, all column families).",
        disk.live_sst_bytes,
    )?);
    out.extend(int_gauge(
        "raftka_rocksdb_wal_bytes",
        "Bytes of RocksDB write-ahead log files.",
        disk.wal_bytes,
    )?);
    out.extend(int_gauge(
        "raftka_rocksdb_pending_compaction_bytes",
        "Bytes RocksDB estimates compaction still has to rewrite (rocksdb.estimate-pending-compaction-bytes).",
        disk.pending_compaction_bytes,
    )?);
    out.extend(int_gauge(
        "raftka_rocksdb_memtable_bytes",
        "Bytes in RocksDB memtables (rocksdb.cur-size-all-mem-tables).",
        disk.memtable_bytes,
    )?);
    out.extend(int_gauge(
        "raftka_storage_poisoned",
        "1 once a failed fsync poisoned the store (it refuses writes until a restart).",
        u64::from(node.store().is_poisoned()),
    )?);
    out.extend(int_counter(
        "raftka_raft_snapshots_installed_total",
        "Raft snapshots installed from a leader on this node, all groups.",
        node.store().stats().snapshots_installed,
    )?);
    let batching = node.inner.transport.heartbeat_batch_counts();
    out.extend(int_counter(
        "raftka_raft_batched_heartbeats_total",
        "Raft heartbeats this node sent to peers inside batches (all groups).",
        batching.heartbeats,
    )?);
    out.extend(int_counter(
        "raftka_raft_heartbeat_batches_total",
        "Heartbeat batch messages this node sent to peers (one per peer every few milliseconds while groups it leads send heartbeats).",
        batching.batches,
    )?);

    let handles = node.partitions().all();
    let me = node.id();
    let mut leading = 0u64;
    let lag = IntGaugeVec::new(
        Opts::new(
            "raftka_raft_follower_lag_entries",
            "Raft log entries a follower is behind its leader (exported by the leader; group is the partition's topic/partition, or __metadata).",
        ),
        &["topic", "partition", "follower"],
    )?;
    let names: HashMap<GroupId, (String, u32)> = node.with_metadata(|m| {
        m.all_groups()
            .map(|(t, i, p)| (p.group, (t.name.clone(), i)))
            .collect()
    });
    for h in &handles {
        let s = h.status();
        if s.leader != Some(me) {
            continue;
        }
        leading += 1;
        let Some((topic, partition)) = names.get(&h.group) else {
            continue;
        };
        let partition = partition.to_string();
        for l in s.replicas_lag.unwrap_or_default() {
            let follower = l.node.to_string();
            lag.with_label_values(&[topic.as_str(), partition.as_str(), follower.as_str()])
                .set(i64::try_from(l.lag).unwrap_or(i64::MAX));
        }
    }
    let meta = node.meta_raft().metrics().borrow_watched().clone();
    for l in crate::partition::replicas_lag(&meta).unwrap_or_default() {
        let follower = l.node.to_string();
        lag.with_label_values(&["__metadata", "0", follower.as_str()])
            .set(i64::try_from(l.lag).unwrap_or(i64::MAX));
    }
    out.extend(lag.collect());
    out.extend(int_gauge(
        "raftka_partition_groups_open",
        "Partition Raft groups (replicas) open on this node.",
        handles.len() as u64,
    )?);
    out.extend(int_gauge(
        "raftka_partition_groups_quiesced",
        "Partition replicas on this node that are quiesced (idle: no ticks, no heartbeats).",
        handles.iter().filter(|h| h.quiet.is_quiesced()).count() as u64,
    )?);
    out.extend(int_gauge(
        "raftka_partition_leaderships",
        "Partitions this node leads.",
        leading,
    )?);
    out.extend(int_gauge(
        "raftka_metadata_leader",
        "1 while this node leads the metadata group.",
        u64::from(meta.current_leader == Some(me)),
    )?);

    if let Some(p) = process::read() {
        let cpu = Counter::new(
            "raftka_process_cpu_seconds_total",
            "User and system CPU time of the node's process (every node of the process, in tests).",
        )?;
        cpu.inc_by(p.cpu_seconds);
        out.extend(cpu.collect());
        out.extend(int_gauge(
            "raftka_process_resident_memory_bytes",
            "Resident memory of the node's process.",
            p.resident_bytes,
        )?);
    }
    out.retain(|f| !f.get_metric().is_empty());
    Ok(out)
}

/// Linux process figures from `/proc/self`.
pub mod process {
    /// CPU and memory of this process.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct ProcessStats {
        /// User plus system CPU time.
        pub cpu_seconds: f64,
        /// Resident set size.
        pub resident_bytes: u64,
    }

    /// Kernel clock ticks per second (`USER_HZ`), 100 on every Linux architecture Raftka
    /// runs on; `/proc` reports CPU time in these.
    const TICKS_PER_SECOND: f64 = 100.0;
    /// Page size assumed for `statm` (4 KiB on x86_64 and the usual aarch64 kernels).
    const PAGE_BYTES: u64 = 4096;

    /// Reads `/proc/self/stat` and `/proc/self/statm`; `None` off Linux or on a parse failure.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        parse(&stat, &statm)
    }

    /// Parses `stat` (utime and stime, fields 14 and 15) and `statm` (resident pages, field 2).
    pub fn parse(stat: &str, statm: &str) -> Option<ProcessStats> {
        // The command name (field 2) is in parentheses and may hold spaces: split after it.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state), so field N is at index N - 3.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(ProcessStats {
            cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
            resident_bytes: resident_pages * PAGE_BYTES,
        })
    }
}

/// A leadership one group's replica on this node knew of: who led, in which term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leadership {
    leader: NodeId,
    term: u64,
}

/// The leadership `m` reports, if any.
fn leadership(m: &openraft::RaftMetrics<raft_store::TypeConfig>) -> Option<Leadership> {
    m.current_leader.map(|leader| Leadership {
        leader,
        term: m.current_term,
    })
}

/// Counts leader changes and elections won by polling every group's openraft metrics (a
/// watch per group would need a task per group; one poll of all groups is cheap). A new
/// leadership is a known leader in a term not seen before, or a different leader. A change
/// and a return within one poll interval are missed; leader changes are rarer than that.
pub async fn watch_leaders(node: Node) {
    const POLL: Duration = Duration::from_millis(200);
    let me = node.id();
    // Last known leadership per group (`None` = the metadata group). Kept while a group has
    // no leader, so that a leaderless moment is no change by itself.
    let mut seen: HashMap<Option<GroupId>, Leadership> = HashMap::new();
    let cancel = node.inner.cancel.clone();
    loop {
        let mut now: Vec<(Option<GroupId>, Option<Leadership>)> = node
            .partitions()
            .all()
            .iter()
            .map(|h| {
                (
                    Some(h.group),
                    leadership(&h.raft.metrics().borrow_watched()),
                )
            })
            .collect();
        now.push((
            None,
            leadership(&node.meta_raft().metrics().borrow_watched()),
        ));
        let metrics = node.metrics();
        let mut next = HashMap::with_capacity(now.len());
        for (key, current) in now {
            let kind = if key.is_some() {
                "partition"
            } else {
                "metadata"
            };
            let before = seen.get(&key).copied();
            if let Some(l) = current {
                let new = before != Some(l);
                if new && before.is_some() {
                    metrics.leader_changes.with_label_values(&[kind]).inc();
                }
                // A group first seen already led by this node (won before the first poll)
                // counts as won too.
                if new && l.leader == me {
                    metrics.elections_won.with_label_values(&[kind]).inc();
                }
            }
            if let Some(l) = current.or(before) {
                next.insert(key, l);
            }
        }
        // Groups closed since the last poll are forgotten.
        seen = next;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::process::parse;

    #[test]
    fn proc_stat_parses_cpu_and_memory_even_with_spaces_in_the_name() {
        let stat = "1234 (raftka node) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000000 300 18446744073709551615";
        let p = parse(stat, "5000 300 200 1 0 400 0").unwrap();
        assert!((p.cpu_seconds - 3.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.resident_bytes, 300 * 4096);
        assert!(parse("garbage", "1 2").is_none());
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let p = super::process::read().unwrap();
        assert!(p.resident_bytes > 0);
    }
}

//! The kafka_exporter-compatible families, with its names and labels, so that stock dashboards,
//! alerts and autoscalers (KEDA, HPA) work unchanged. Computed at scrape time.
//!
//! Each is exported once per cluster:
//! - per-partition families (offsets, replicas, leader, and the consumer groups' offsets and
//!   lag) by the node that leads the partition: it knows the high watermark, and the committed
//!   offsets are in the metadata every node replicates. `kafka_consumergroup_lag_sum` is then a
//!   partial sum over the partitions a node leads, so `sum by (consumergroup, topic)` over
//!   nodes is exact;
//! - cluster-wide families (`kafka_brokers`, `kafka_topic_partitions`,
//!   `kafka_consumergroup_members`) by the metadata leader.
//!
//! A partition with no leader is exported by no node until it has one again.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};
use raft_store::{GroupId, NodeId};
use raftka_protocol::ReplicaLag;

use crate::cluster::leader_balance::MAX_TAKEOVER_LAG;
use crate::cluster::metadata::MetaState;
use crate::node::Node;

/// Families whose kafka_exporter name ends in a suffix the Prometheus conventions reserve for
/// histograms and summaries (`_sum`): declared `untyped` rather than `gauge`, which
/// `promtool check metrics` accepts and queries do not notice (Prometheus stores both alike).
/// The `prometheus` crate encodes no untyped family, so the type line is changed after encoding.
pub const UNTYPED_FAMILIES: [&str; 1] = ["kafka_consumergroup_lag_sum"];

/// Re-declares [`UNTYPED_FAMILIES`] as `untyped` in encoded text.
pub fn declare_untyped(mut text: String) -> String {
    for name in UNTYPED_FAMILIES {
        let gauge = format!("# TYPE {name} gauge\n");
        if text.contains(&gauge) {
            text = text.replacen(&gauge, &format!("# TYPE {name} untyped\n"), 1);
        }
    }
    text
}

/// A partition this node leads, as its replica sees it at the scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedPartition {
    /// The partition's Raft group.
    pub group: GroupId,
    /// High watermark: the offset the next record gets.
    pub high_watermark: u64,
    /// The oldest offset still held.
    pub log_start_offset: u64,
    /// Replicas in sync, the leader included.
    pub in_sync: usize,
}

/// Whether a follower counts as in sync: close behind and heard from within an election
/// timeout (the rule `GET /v1/cluster` uses for under-replicated partitions).
pub fn is_in_sync(lag: &ReplicaLag, election_max_ms: u64) -> bool {
    lag.lag <= MAX_TAKEOVER_LAG && lag.last_ack_ms.is_some_and(|ms| ms <= election_max_ms)
}

/// The partitions this node leads now, read from their replicas.
pub fn led_partitions(node: &Node) -> Vec<LedPartition> {
    let me = node.id();
    let election_max_ms = node.config().election_max_ms;
    let replicas: BTreeMap<GroupId, Vec<NodeId>> = node.with_metadata(|m| {
        m.all_groups()
            .map(|(_, _, p)| (p.group, p.replicas.clone()))
            .collect()
    });
    node.partitions()
        .all()
        .into_iter()
        .filter_map(|h| {
            let s = h.status();
            if s.leader != Some(me) {
                return None;
            }
            let members = replicas.get(&h.group)?;
            let followers_in_sync = s
                .replicas_lag
                .unwrap_or_default()
                .iter()
                .filter(|l| members.contains(&l.node) && is_in_sync(l, election_max_ms))
                .count();
            Some(LedPartition {
                group: h.group,
                high_watermark: s.high_watermark,
                log_start_offset: s.log_start_offset,
                in_sync: 1 + followers_in_sync,
            })
        })
        .collect()
}

/// Live brokers: registered (not removed) nodes that answer health probes; every configured
/// peer that answers while the registry is still empty.
fn live_brokers(node: &Node) -> usize {
    let registered: Vec<NodeId> =
        node.with_metadata(|m| m.cluster.member_nodes().map(|(id, _)| id).collect());
    let ids = if registered.is_empty() {
        node.inner.transport.peers().into_keys().collect()
    } else {
        registered
    };
    ids.into_iter().filter(|id| node.is_alive(*id)).count()
}

/// The families `node` exports now.
///
/// # Errors
/// Only on an invalid family definition (a bug).
pub fn collect(node: &Node) -> prometheus::Result<Vec<MetricFamily>> {
    let led = led_partitions(node);
    let brokers = (node.meta_leader() == Some(node.id())).then(|| live_brokers(node));
    node.with_metadata(|m| families(node.id(), m, &led, brokers))
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    IntGaugeVec::new(Opts::new(name, help), labels)
}

/// Saturating conversion for gauge values.
fn v(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Builds the families from the metadata and the partitions `me` leads; `brokers` is set
/// only on the metadata leader, which then exports the cluster-wide families too.
///
/// # Errors
/// Only on an invalid family definition (a bug).
pub fn families(
    me: NodeId,
    meta: &MetaState,
    led: &[LedPartition],
    brokers: Option<usize>,
) -> prometheus::Result<Vec<MetricFamily>> {
    let tp = &["topic", "partition"];
    let current = gauge(
        "kafka_topic_partition_current_offset",
        "Current Offset of a Broker at Topic/Partition",
        tp,
    )?;
    let oldest = gauge(
        "kafka_topic_partition_oldest_offset",
        "Oldest Offset of a Broker at Topic/Partition",
        tp,
    )?;
    let replicas = gauge(
        "kafka_topic_partition_replicas",
        "Number of Replicas for this Topic/Partition",
        tp,
    )?;
    let in_sync = gauge(
        "kafka_topic_partition_in_sync_replica",
        "Number of In-Sync Replicas for this Topic/Partition",
        tp,
    )?;
    let under = gauge(
        "kafka_topic_partition_under_replicated_partition",
        "1 if Topic/Partition is under Replicated",
        tp,
    )?;
    let leader = gauge(
        "kafka_topic_partition_leader",
        "Leader Broker ID of this Topic/Partition",
        tp,
    )?;
    let cg = &["consumergroup", "topic", "partition"];
    let cg_offset = gauge(
        "kafka_consumergroup_current_offset",
        "Current Offset of a ConsumerGroup at Topic/Partition (-1 when nothing is committed)",
        cg,
    )?;
    let cg_lag = gauge(
        "kafka_consumergroup_lag",
        "Current Approximate Lag of a ConsumerGroup at Topic/Partition (-1 when nothing is committed)",
        cg,
    )?;
    let cg_lag_sum = gauge(
        "kafka_consumergroup_lag_sum",
        "Current Approximate Lag of a ConsumerGroup at Topic, over the partitions this node leads (sum over nodes for the topic's total)",
        &["consumergroup", "topic"],
    )?;

    // Each group's topics: those it committed for, owns or is assigned.
    let group_topics: Vec<(&String, BTreeSet<&str>)> = meta
        .groups
        .iter()
        .map(|(name, g)| {
            let topics = g
                .offsets
                .keys()
                .chain(g.owners.keys())
                .chain(g.target.keys())
                .map(|(t, _)| t.as_str())
                .collect();
            (name, topics)
        })
        .collect();
    let by_group: BTreeMap<GroupId, &LedPartition> = led.iter().map(|p| (p.group, p)).collect();
    let mut lag_sums: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (topic, index, p) in meta.all_groups() {
        let Some(l) = by_group.get(&p.group) else {
            continue;
        };
        let part = index.to_string();
        let labels = [topic.name.as_str(), part.as_str()];
        current.with_label_values(&labels).set(v(l.high_watermark));
        oldest.with_label_values(&labels).set(v(l.log_start_offset));
        replicas
            .with_label_values(&labels)
            .set(v(p.replicas.len() as u64));
        in_sync.with_label_values(&labels).set(v(l.in_sync as u64));
        under
            .with_label_values(&labels)
            .set(i64::from(l.in_sync < p.replicas.len()));
        leader.with_label_values(&labels).set(v(me));
        for (group, topics) in &group_topics {
            if !topics.contains(topic.name.as_str()) {
                continue;
            }
            let committed = meta
                .groups
                .get(*group)
                .and_then(|g| g.offsets.get(&(topic.name.clone(), index)))
                .copied();
            let cg_labels = [group.as_str(), topic.name.as_str(), part.as_str()];
            let sum = lag_sums
                .entry((group.as_str(), topic.name.as_str()))
                .or_insert(0);
            match committed {
                Some(c) => {
                    let lag = v(l.high_watermark.saturating_sub(c));
                    cg_offset.with_label_values(&cg_labels).set(v(c));
                    cg_lag.with_label_values(&cg_labels).set(lag);
                    *sum += lag;
                }
                // As kafka_exporter: -1 for both, and left out of the sum.
                None => {
                    cg_offset.with_label_values(&cg_labels).set(-1);
                    cg_lag.with_label_values(&cg_labels).set(-1);
                }
            }
        }
    }
    for ((group, topic), sum) in lag_sums {
        cg_lag_sum.with_label_values(&[group, topic]).set(sum);
    }
    let mut out: Vec<MetricFamily> = [
        &current,
        &oldest,
        &replicas,
        &in_sync,
        &under,
        &leader,
        &cg_offset,
        &cg_lag,
        &cg_lag_sum,
    ]
    .into_iter()
    .flat_map(|g| g.collect())
    .collect();

    if let Some(brokers) = brokers {
        let b = IntGauge::new("kafka_brokers", "Number of Brokers in the Kafka Cluster.")?;
        b.set(v(brokers as u64));
        let partitions = gauge(
            "kafka_topic_partitions",
            "Number of partitions for this Topic",
            &["topic"],
        )?;
        for (name, t) in &meta.topics {
            partitions
                .with_label_values(&[name.as_str()])
                .set(v(t.partitions.len() as u64));
        }
        let members = gauge(
            "kafka_consumergroup_members",
            "Amount of members in a consumer group",
            &["consumergroup"],
        )?;
        for (name, g) in &meta.groups {
            members
                .with_label_values(&[name.as_str()])
                .set(v(g.members.len() as u64));
        }
        out.extend(b.collect());
        out.extend(
            [&partitions, &members]
                .into_iter()
                .flat_map(|g| g.collect()),
        );
    }
    // Families with no sample (nothing led here) are dropped, as the registry's gather does.
    out.retain(|f| !f.get_metric().is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cluster::groups::GroupState;
    use crate::cluster::metadata::{PartitionMeta, TopicMeta};
    use prometheus::{Encoder, TextEncoder};

    fn state() -> MetaState {
        let mut m = MetaState::default();
        m.topics.insert(
            "t".into(),
            TopicMeta {
                name: "t".into(),
                partitions: (0..3)
                    .map(|i| PartitionMeta {
                        group: 10 + i,
                        replicas: vec![1, 2, 3],
                    })
                    .collect(),
                replication_factor: 3,
                configs: Default::default(),
            },
        );
        let mut g = GroupState::default();
        g.offsets.insert(("t".into(), 0), 4);
        g.offsets.insert(("t".into(), 1), 7);
        m.groups.insert("g".into(), g);
        m
    }

    fn text(f: &[MetricFamily]) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(f, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn led(group: GroupId, hw: u64, in_sync: usize) -> LedPartition {
        LedPartition {
            group,
            high_watermark: hw,
            log_start_offset: 1,
            in_sync,
        }
    }

    #[test]
    fn lag_is_high_watermark_minus_committed_and_minus_one_without_a_commit() {
        let f = families(2, &state(), &[led(10, 10, 3), led(12, 5, 3)], None).unwrap();
        let t = text(&f);
        assert!(
            t.contains(r#"kafka_consumergroup_lag{consumergroup="g",partition="0",topic="t"} 6"#),
            "{t}"
        );
        assert!(
            t.contains(r#"kafka_consumergroup_lag{consumergroup="g",partition="2",topic="t"} -1"#),
            "{t}"
        );
        assert!(t.contains(r#"kafka_consumergroup_current_offset{consumergroup="g",partition="2",topic="t"} -1"#), "{t}");
        // Partition 1 is led elsewhere: not exported here.
        assert!(!t.contains(r#"partition="1""#), "{t}");
        // The sum leaves the -1 out.
        assert!(
            t.contains(r#"kafka_consumergroup_lag_sum{consumergroup="g",topic="t"} 6"#),
            "{t}"
        );
        assert!(
            t.contains(r#"kafka_topic_partition_current_offset{partition="0",topic="t"} 10"#),
            "{t}"
        );
        assert!(
            t.contains(r#"kafka_topic_partition_oldest_offset{partition="0",topic="t"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"kafka_topic_partition_leader{partition="2",topic="t"} 2"#),
            "{t}"
        );
        // Cluster-wide families only on the metadata leader.
        assert!(!t.contains("kafka_brokers"), "{t}");
        assert!(!t.contains("kafka_topic_partitions{"), "{t}");
    }

    #[test]
    fn partial_lag_sums_over_nodes_add_up_to_the_topic_lag() {
        let s = state();
        let a = families(1, &s, &[led(10, 10, 3)], None).unwrap();
        let b = families(2, &s, &[led(11, 9, 3), led(12, 5, 3)], Some(3)).unwrap();
        let sum = |f: &[MetricFamily]| -> i64 {
            f.iter()
                .filter(|f| f.name() == "kafka_consumergroup_lag_sum")
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_gauge().get_value() as i64)
                .sum()
        };
        assert_eq!(sum(&a) + sum(&b), (10 - 4) + (9 - 7));
    }

    #[test]
    fn under_replication_and_cluster_wide_families() {
        let f = families(3, &state(), &[led(11, 9, 2)], Some(3)).unwrap();
        let t = text(&f);
        assert!(
            t.contains(r#"kafka_topic_partition_in_sync_replica{partition="1",topic="t"} 2"#),
            "{t}"
        );
        assert!(
            t.contains(
                r#"kafka_topic_partition_under_replicated_partition{partition="1",topic="t"} 1"#
            ),
            "{t}"
        );
        assert!(
            t.contains(r#"kafka_topic_partition_replicas{partition="1",topic="t"} 3"#),
            "{t}"
        );
        assert!(t.contains("kafka_brokers 3"), "{t}");
        assert!(t.contains(r#"kafka_topic_partitions{topic="t"} 3"#), "{t}");
        assert!(
            t.contains(r#"kafka_consumergroup_members{consumergroup="g"} 0"#),
            "{t}"
        );
    }

    #[test]
    fn lag_sum_is_declared_untyped_and_nothing_else_changes() {
        let f = families(2, &state(), &[led(10, 10, 3)], None).unwrap();
        let t = declare_untyped(text(&f));
        assert!(
            t.contains("# TYPE kafka_consumergroup_lag_sum untyped\n"),
            "{t}"
        );
        assert!(t.contains("# TYPE kafka_consumergroup_lag gauge\n"), "{t}");
        assert_eq!(t.matches("untyped").count(), 1, "{t}");
    }

    #[test]
    fn a_node_leading_nothing_exports_no_partition_family() {
        let f = families(1, &state(), &[], None).unwrap();
        assert!(f.is_empty(), "{}", text(&f));
    }
}

//! `raftka cluster status` and `raftka cluster rebalance-leaders`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::{Client, ClusterPartition, LeaderMoveOutcome, ReplicaLag};
use serde_json::json;

use crate::output::{colored, ids, Color, Out, Table};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Nodes (alive or not), how many partitions each leads and holds, the partitions that
    /// have no leader right now, and the replicas lagging behind their leader. Exit code 0 even
    /// when something is unhealthy; scripts read --output json.
    #[command(after_help = "\
Lag is counted in Raft log entries (one per produce request and partition, whatever its record
count), as the partition leader sees it; a replica is listed as lagging when its lag is above
--lag-threshold. Under load, followers are often a few entries behind for a moment.

Examples:
  raftka cluster status
  raftka cluster status --lag-threshold 100
  raftka cluster status --output json")]
    Status {
        /// List a replica as lagging when it is more than this many log entries behind.
        #[arg(long, default_value_t = 0)]
        lag_threshold: u64,
    },
    /// Hand every partition not led by its preferred replica (its first) back to it, where
    /// that replica is alive and caught up. Nodes also do this on their own every
    /// --leader-rebalance-interval-ms (30 s by default).
    #[command(after_help = "\
Each move is a leadership transfer: producers to a moved partition see a pause of a few round
trips, and nothing they sent is lost or written twice.

Examples:
  raftka cluster rebalance-leaders
  raftka cluster rebalance-leaders --output json")]
    RebalanceLeaders,
}

/// A replica behind its partition leader.
struct Lagging<'a> {
    partition: &'a ClusterPartition,
    lag: &'a ReplicaLag,
}

#[derive(Default)]
struct NodeLoad {
    leaders: usize,
    replicas: usize,
}

pub async fn run(client: &Client, cmd: ClusterCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Status { lag_threshold } => status(client, lag_threshold, out).await,
        ClusterCommand::RebalanceLeaders => rebalance_leaders(client, out).await,
    }
}

async fn rebalance_leaders(client: &Client, out: &Out) -> anyhow::Result<ExitCode> {
    let r = client
        .rebalance_leaders()
        .await
        .context("rebalance leaders")?;
    if out.json() {
        out.print_json(&serde_json::to_value(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let moved = r
        .moves
        .iter()
        .filter(|m| m.outcome == LeaderMoveOutcome::Moved)
        .count();
    println!(
        "{moved} leadership(s) moved to their preferred replica; {} partition(s) already led by it",
        r.already_preferred
    );
    if !r.moves.is_empty() {
        let mut t = Table::new(vec!["TOPIC", "PARTITION", "FROM", "TO", "OUTCOME"]);
        for m in &r.moves {
            let outcome = serde_json::to_value(m.outcome)?
                .as_str()
                .unwrap_or_default()
                .to_string();
            let cell = if m.outcome == LeaderMoveOutcome::Moved {
                colored(outcome, Color::Green)
            } else {
                colored(outcome, Color::Red)
            };
            t.row(vec![
                m.topic.as_str().into(),
                m.partition.to_string().into(),
                m.from.map_or("-".to_string(), |f| f.to_string()).into(),
                m.to.to_string().into(),
                cell,
            ]);
        }
        t.print(out);
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(client: &Client, lag_threshold: u64, out: &Out) -> anyhow::Result<ExitCode> {
    let state = client.cluster().await.context("cluster status")?;
    let mut load: BTreeMap<u64, NodeLoad> = state
        .nodes
        .iter()
        .map(|n| (n.id, NodeLoad::default()))
        .collect();
    let mut leaderless = Vec::new();
    let mut lagging = Vec::new();
    // Partitions whose leader answered without lag figures (a server that predates them).
    let mut lag_unknown = 0usize;
    let mut topics = BTreeSet::new();
    for p in &state.partitions {
        topics.insert(p.topic.as_str());
        for r in &p.replicas {
            load.entry(*r).or_default().replicas += 1;
        }
        match p.leader {
            Some(l) => load.entry(l).or_default().leaders += 1,
            None => leaderless.push(p),
        }
        match (&p.replicas_lag, p.leader) {
            (Some(lags), _) => lagging.extend(
                lags.iter()
                    .filter(|l| l.lag > lag_threshold)
                    .map(|lag| Lagging { partition: p, lag }),
            ),
            (None, Some(_)) => lag_unknown += 1,
            (None, None) => {}
        }
    }
    let alive = state.nodes.iter().filter(|n| n.alive).count();
    if out.json() {
        let nodes: Vec<_> = state
            .nodes
            .iter()
            .map(|n| {
                let l = load.get(&n.id);
                json!({"id": n.id, "address": n.address, "alive": n.alive,
                       "leaders": l.map_or(0, |l| l.leaders),
                       "replicas": l.map_or(0, |l| l.replicas)})
            })
            .collect();
        let without: Vec<_> = leaderless
            .iter()
            .map(|p| json!({"topic": p.topic, "partition": p.partition, "replicas": p.replicas}))
            .collect();
        let behind: Vec<_> = lagging
            .iter()
            .map(|l| {
                json!({"topic": l.partition.topic, "partition": l.partition.partition,
                       "leader": l.partition.leader, "node": l.lag.node, "lag": l.lag.lag,
                       "matched_index": l.lag.matched_index, "last_ack_ms": l.lag.last_ack_ms})
            })
            .collect();
        out.print_json(&json!({
            "answered_by": state.node_id,
            "metadata_leader": state.metadata_leader,
            "nodes": nodes,
            "topics": topics.len(),
            "partitions": state.partitions.len(),
            "partitions_without_leader": without,
            "lag_threshold": lag_threshold,
            "replicas_lagging": behind,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let meta = match state.metadata_leader {
        Some(l) => format!("node {l}"),
        None => out.paint("none (election in progress)", Color::Red),
    };
    println!(
        "{} node(s), {alive} alive; metadata leader: {meta}; answered by node {}",
        state.nodes.len(),
        state.node_id
    );
    let mut table = Table::new(vec!["NODE", "ADDRESS", "ALIVE", "LEADERS", "REPLICAS"]);
    for n in &state.nodes {
        let l = load.get(&n.id);
        table.row(vec![
            n.id.to_string().into(),
            n.address.as_str().into(),
            if n.alive {
                colored("yes", Color::Green)
            } else {
                colored("no", Color::Red)
            },
            l.map_or(0, |l| l.leaders).to_string().into(),
            l.map_or(0, |l| l.replicas).to_string().into(),
        ]);
    }
    table.print(out);
    println!(
        "{} partition(s) in {} topic(s); {} without a leader",
        state.partitions.len(),
        topics.len(),
        if leaderless.is_empty() {
            out.paint("0", Color::Green)
        } else {
            out.paint(&leaderless.len().to_string(), Color::Red)
        }
    );
    if !leaderless.is_empty() {
        let mut table = Table::new(vec!["TOPIC", "PARTITION", "REPLICAS"]);
        for p in leaderless {
            table.row(vec![
                p.topic.as_str().into(),
                p.partition.to_string().into(),
                ids(&p.replicas).into(),
            ]);
        }
        table.print(out);
    }
    println!(
        "{} replica(s) more than {lag_threshold} log entries behind their leader{}",
        if lagging.is_empty() {
            out.paint("0", Color::Green)
        } else {
            out.paint(&lagging.len().to_string(), Color::Red)
        },
        if lag_unknown > 0 {
            format!(" (lag not reported for {lag_unknown} partition(s))")
        } else {
            String::new()
        }
    );
    if !lagging.is_empty() {
        let mut table = Table::new(vec![
            "TOPIC",
            "PARTITION",
            "LEADER",
            "REPLICA",
            "LAG",
            "LAST_ACK",
        ]);
        for l in &lagging {
            table.row(vec![
                l.partition.topic.as_str().into(),
                l.partition.partition.to_string().into(),
                l.partition
                    .leader
                    .map_or("-".to_string(), |n| n.to_string())
                    .into(),
                l.lag.node.to_string().into(),
                l.lag.lag.to_string().into(),
                last_ack(l.lag.last_ack_ms).into(),
            ]);
        }
        table.print(out);
    }
    Ok(ExitCode::SUCCESS)
}

/// "350 ms ago", "12.0 s ago", or "never".
pub fn last_ack(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 10_000 => format!("{ms} ms ago"),
        Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
    }
}

//! `raftka cluster status`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::Client;
use serde_json::json;

use crate::output::{colored, ids, Color, Out, Table};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Nodes (alive or not), how many partitions each leads and holds, and the partitions that
    /// have no leader right now. Exit code 0 even when something is unhealthy; scripts read
    /// --output json.
    Status,
}

#[derive(Default)]
struct NodeLoad {
    leaders: usize,
    replicas: usize,
}

pub async fn run(client: &Client, cmd: ClusterCommand, out: &Out) -> anyhow::Result<ExitCode> {
    let ClusterCommand::Status = cmd;
    let state = client.cluster().await.context("cluster status")?;
    let mut load: BTreeMap<u64, NodeLoad> = state
        .nodes
        .iter()
        .map(|n| (n.id, NodeLoad::default()))
        .collect();
    let mut leaderless = Vec::new();
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
        out.print_json(&json!({
            "answered_by": state.node_id,
            "metadata_leader": state.metadata_leader,
            "nodes": nodes,
            "topics": topics.len(),
            "partitions": state.partitions.len(),
            "partitions_without_leader": without,
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
    Ok(ExitCode::SUCCESS)
}

//! `raftka cluster status`: the nodes (state, liveness, leaderships, replicas, metadata role),
//! the partitions without a leader, the replicas lagging behind their leader, and the partition
//! moves in flight, from one `GET /v1/cluster`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Context;
use raftka_client::{
    Client, ClusterPartition, ClusterState, MetadataRole, NodeInfo, NodeState, ReplicaLag,
};
use serde_json::json;

use crate::cluster::last_ack;
use crate::output::{colored, ids, Cell, Color, Out, Table};

/// A replica behind its partition leader.
struct Lagging<'a> {
    partition: &'a ClusterPartition,
    lag: &'a ReplicaLag,
}

/// How many partitions a node leads and holds.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct NodeLoad {
    leaders: usize,
    replicas: usize,
}

/// What the status shows, computed once from the cluster state.
struct Summary<'a> {
    state: &'a ClusterState,
    /// Per node: the server's own figures when it reports them (`leaderships`, `replicas`,
    /// where a move in flight counts for its target), else counted from the partitions.
    load: BTreeMap<u64, NodeLoad>,
    leaderless: Vec<&'a ClusterPartition>,
    lagging: Vec<Lagging<'a>>,
    /// Partitions whose leader answered without lag figures (a server that predates them).
    lag_unknown: usize,
    topics: BTreeSet<&'a str>,
}

fn summarize(state: &ClusterState, lag_threshold: u64) -> Summary<'_> {
    let mut counted: BTreeMap<u64, NodeLoad> = BTreeMap::new();
    let mut leaderless = Vec::new();
    let mut lagging = Vec::new();
    let mut lag_unknown = 0usize;
    let mut topics = BTreeSet::new();
    for p in &state.partitions {
        topics.insert(p.topic.as_str());
        for r in &p.replicas {
            counted.entry(*r).or_default().replicas += 1;
        }
        match p.leader {
            Some(l) => counted.entry(l).or_default().leaders += 1,
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
    let mut load = counted.clone();
    for n in &state.nodes {
        let c = counted.get(&n.id).copied().unwrap_or_default();
        load.insert(
            n.id,
            NodeLoad {
                leaders: n.leaderships.map_or(c.leaders, |v| v as usize),
                replicas: n.replicas.map_or(c.replicas, |v| v as usize),
            },
        );
    }
    Summary {
        state,
        load,
        leaderless,
        lagging,
        lag_unknown,
        topics,
    }
}

pub async fn status(client: &Client, lag_threshold: u64, out: &Out) -> anyhow::Result<ExitCode> {
    let state = client.cluster().await.context("cluster status")?;
    let summary = summarize(&state, lag_threshold);
    if out.json() {
        out.print_json(&status_json(&summary, lag_threshold));
    } else {
        print!("{}", render(&summary, lag_threshold, out));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--output json`: one object (the fields of earlier versions kept as they were).
fn status_json(s: &Summary<'_>, lag_threshold: u64) -> serde_json::Value {
    let nodes: Vec<_> = s
        .state
        .nodes
        .iter()
        .map(|n| {
            let l = s.load.get(&n.id).copied().unwrap_or_default();
            json!({"id": n.id, "address": n.address, "alive": n.alive,
                   "state": n.state, "metadata_role": n.metadata_role,
                   "leaders": l.leaders, "replicas": l.replicas})
        })
        .collect();
    let without: Vec<_> = s
        .leaderless
        .iter()
        .map(|p| json!({"topic": p.topic, "partition": p.partition, "replicas": p.replicas}))
        .collect();
    let behind: Vec<_> = s
        .lagging
        .iter()
        .map(|l| {
            json!({"topic": l.partition.topic, "partition": l.partition.partition,
                   "leader": l.partition.leader, "node": l.lag.node, "lag": l.lag.lag,
                   "matched_index": l.lag.matched_index, "last_ack_ms": l.lag.last_ack_ms})
        })
        .collect();
    json!({
        "answered_by": s.state.node_id,
        "metadata_leader": s.state.metadata_leader,
        "nodes": nodes,
        "topics": s.topics.len(),
        "partitions": s.state.partitions.len(),
        "partitions_without_leader": without,
        "lag_threshold": lag_threshold,
        "replicas_lagging": behind,
        "reassignments": s.state.reassignments,
    })
}

/// A node's state cell: `-` from a server that does not report states.
fn state_cell(n: &NodeInfo) -> Cell {
    match n.state {
        None => "-".into(),
        Some(s @ NodeState::Active) => colored(s.as_str(), Color::Green),
        Some(s @ (NodeState::Joining | NodeState::Draining)) => colored(s.as_str(), Color::Yellow),
        Some(s @ NodeState::Down) => colored(s.as_str(), Color::Red),
        Some(s @ NodeState::Removed) => s.as_str().into(),
    }
}

fn role_name(role: Option<MetadataRole>) -> &'static str {
    match role {
        None => "-",
        Some(MetadataRole::Voter) => "voter",
        Some(MetadataRole::Learner) => "learner",
        Some(MetadataRole::None) => "none",
    }
}

/// The human form: a headline, the node table, then partitions without a leader, lagging
/// replicas and moves in flight, each a count and (when not zero) a table.
fn render(s: &Summary<'_>, lag_threshold: u64, out: &Out) -> String {
    let state = s.state;
    let mut text = String::new();
    let meta = match state.metadata_leader {
        Some(l) => format!("node {l}"),
        None => out.paint("none (election in progress)", Color::Red),
    };
    let alive = state.nodes.iter().filter(|n| n.alive).count();
    text.push_str(&format!(
        "{} node(s), {alive} alive; metadata leader: {meta}; answered by node {}\n",
        state.nodes.len(),
        state.node_id
    ));
    let mut table = Table::new(vec![
        "NODE", "ADDRESS", "STATE", "ALIVE", "LEADERS", "REPLICAS", "METADATA",
    ]);
    for n in &state.nodes {
        let l = s.load.get(&n.id).copied().unwrap_or_default();
        table.row(vec![
            n.id.to_string().into(),
            n.address.as_str().into(),
            state_cell(n),
            if n.alive {
                colored("yes", Color::Green)
            } else {
                colored("no", Color::Red)
            },
            l.leaders.to_string().into(),
            l.replicas.to_string().into(),
            role_name(n.metadata_role).into(),
        ]);
    }
    text.push_str(&table.render(out));
    let count = |n: usize| {
        if n == 0 {
            out.paint("0", Color::Green)
        } else {
            out.paint(&n.to_string(), Color::Red)
        }
    };
    text.push_str(&format!(
        "{} partition(s) in {} topic(s); {} without a leader\n",
        state.partitions.len(),
        s.topics.len(),
        count(s.leaderless.len())
    ));
    if !s.leaderless.is_empty() {
        let mut table = Table::new(vec!["TOPIC", "PARTITION", "REPLICAS"]);
        for p in &s.leaderless {
            table.row(vec![
                p.topic.as_str().into(),
                p.partition.to_string().into(),
                ids(&p.replicas).into(),
            ]);
        }
        text.push_str(&table.render(out));
    }
    text.push_str(&format!(
        "{} replica(s) more than {lag_threshold} log entries behind their leader{}\n",
        count(s.lagging.len()),
        if s.lag_unknown > 0 {
            format!(" (lag not reported for {} partition(s))", s.lag_unknown)
        } else {
            String::new()
        }
    ));
    if !s.lagging.is_empty() {
        let mut table = Table::new(vec![
            "TOPIC",
            "PARTITION",
            "LEADER",
            "REPLICA",
            "LAG",
            "LAST_ACK",
        ]);
        for l in &s.lagging {
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
        text.push_str(&table.render(out));
    }
    // A server before partition moves does not report them: say nothing rather than "0".
    if let Some(moves) = &state.reassignments {
        let n = if moves.is_empty() {
            out.paint("0", Color::Green)
        } else {
            out.paint(&moves.len().to_string(), Color::Yellow)
        };
        text.push_str(&format!("{n} partition move(s) in flight\n"));
        if !moves.is_empty() {
            let mut table = Table::new(vec!["TOPIC", "PARTITION", "FROM", "TO"]);
            for m in moves {
                table.row(vec![
                    m.topic.as_str().into(),
                    m.partition.to_string().into(),
                    ids(&m.from).into(),
                    ids(&m.to).into(),
                ]);
            }
            text.push_str(&table.render(out));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use raftka_client::Reassignment;

    fn plain() -> Out {
        Out {
            format: Format::Table,
            color: false,
            color_err: false,
        }
    }

    fn node(id: u64, state: NodeState, replicas: u32, leads: u32, role: MetadataRole) -> NodeInfo {
        NodeInfo {
            id,
            address: format!("127.0.0.1:{}", 19090 + id),
            alive: state != NodeState::Down,
            state: Some(state),
            replicas: Some(replicas),
            leaderships: Some(leads),
            metadata_role: Some(role),
        }
    }

    fn partition(p: u32, leader: u64, replicas: &[u64]) -> ClusterPartition {
        ClusterPartition {
            topic: "orders".into(),
            partition: p,
            leader: Some(leader),
            replicas: replicas.to_vec(),
            high_watermark: 10,
            log_start_offset: 0,
            replicas_lag: Some(vec![]),
        }
    }

    /// Node 2 drains: partition 1 moves from 1,2,3 to 1,4,3.
    fn draining() -> ClusterState {
        ClusterState {
            node_id: 1,
            metadata_leader: Some(1),
            nodes: vec![
                node(1, NodeState::Active, 2, 1, MetadataRole::Voter),
                node(2, NodeState::Draining, 1, 0, MetadataRole::Voter),
                node(3, NodeState::Active, 2, 1, MetadataRole::Voter),
                node(4, NodeState::Joining, 1, 0, MetadataRole::Learner),
                node(5, NodeState::Down, 0, 0, MetadataRole::None),
            ],
            partitions: vec![partition(0, 1, &[1, 3]), partition(1, 3, &[1, 2, 3])],
            under_replicated_partitions: Some(0),
            storage: None,
            reassignments: Some(vec![Reassignment {
                topic: "orders".into(),
                partition: 1,
                from: vec![1, 2, 3],
                to: vec![1, 4, 3],
            }]),
        }
    }

    #[test]
    fn the_node_table_shows_state_load_and_metadata_role() {
        let state = draining();
        let text = render(&summarize(&state, 0), 0, &plain());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "5 node(s), 4 alive; metadata leader: node 1; answered by node 1"
        );
        assert_eq!(
            lines[1],
            "NODE  ADDRESS          STATE     ALIVE  LEADERS  REPLICAS  METADATA"
        );
        assert_eq!(
            lines[2],
            "1     127.0.0.1:19091  active    yes    1        2         voter"
        );
        assert_eq!(
            lines[5],
            "4     127.0.0.1:19094  joining   yes    0        1         learner"
        );
        assert_eq!(
            lines[6],
            "5     127.0.0.1:19095  down      no     0        0         none"
        );
        assert!(
            text.ends_with(
                "1 partition move(s) in flight\n\
                 TOPIC   PARTITION  FROM   TO\n\
                 orders  1          1,2,3  1,4,3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_older_server_gets_counted_figures_and_no_moves_line() {
        let mut state = draining();
        for n in &mut state.nodes {
            n.state = None;
            n.replicas = None;
            n.leaderships = None;
            n.metadata_role = None;
        }
        state.reassignments = None;
        let s = summarize(&state, 0);
        assert_eq!(
            s.load.get(&3),
            Some(&NodeLoad {
                leaders: 1,
                replicas: 2
            })
        );
        let text = render(&s, 0, &plain());
        assert!(
            text.contains("2     127.0.0.1:19092  -      yes    0        1         -"),
            "{text}"
        );
        assert!(!text.contains("in flight"), "{text}");
        let json = status_json(&s, 0);
        assert_eq!(json["nodes"][1]["state"], serde_json::Value::Null);
        assert_eq!(json["reassignments"], serde_json::Value::Null);
    }

    #[test]
    fn json_carries_states_roles_and_moves() {
        let state = draining();
        let json = status_json(&summarize(&state, 0), 0);
        assert_eq!(json["nodes"][1]["state"], "draining");
        assert_eq!(json["nodes"][3]["metadata_role"], "learner");
        assert_eq!(json["nodes"][0]["replicas"], 2);
        assert_eq!(json["nodes"][0]["leaders"], 1);
        assert_eq!(json["reassignments"][0]["to"], json!([1, 4, 3]));
        assert_eq!(json["partitions"], 2);
    }
}

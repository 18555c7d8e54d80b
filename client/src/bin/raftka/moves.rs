//! The commands that move partition replicas: `raftka topic reassign`, `raftka cluster
//! rebalance`, `raftka cluster decommission` and `raftka cluster remove-node --dead`.
//!
//! The server only records moves and answers at once (202); the moves run in the background.
//! By default each command then waits: it polls `GET /v1/cluster/reassignments` every 500 ms
//! until none of its moves is in flight (and, for `decommission`, until `GET /v1/cluster` shows
//! the node `removed`), printing `moves: N/M done` on stderr as they finish. `--timeout` bounds
//! the wait: past it the command exits 1 naming what is still moving. Ctrl-C or a timeout only
//! stops the waiting; the moves go on.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use raftka_client::membership::moves_pending;
use raftka_client::{Client, ClusterState, MovePlan, NodeId, NodeState, Reassignment};
use serde_json::json;

use crate::output::{ids, Out, Table};

/// How often the wait polls the moves in flight.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often an unchanged progress line is repeated, so a long wait shows it is alive.
const PROGRESS_REPEAT: Duration = Duration::from_secs(10);

/// `--wait`, `--no-wait` and `--timeout`, shared by every command that moves replicas.
/// Waiting is the default; `--wait` says so explicitly (for scripts that want to be sure).
#[derive(Args, Debug, Clone, Copy)]
pub struct WaitArgs {
    /// Wait until the moves are done (the default; kept for scripts that spell it out).
    #[arg(long, conflicts_with = "no_wait")]
    pub wait: bool,
    /// Return as soon as the moves are recorded instead of waiting until they are done.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (exit 1, naming what is still moving); the
    /// moves go on.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
}

/// What a command waits for once its moves are recorded.
struct Target<'a> {
    /// The moves to see finish.
    moves: &'a [Reassignment],
    /// A node that must reach the `removed` state (decommission).
    removed_node: Option<NodeId>,
}

/// How the wait ended.
#[derive(Debug, Default)]
struct WaitReport {
    /// The moves still in flight at the end (empty when all are done).
    still_moving: Vec<Reassignment>,
    /// The awaited node's last known state, for decommission.
    node_state: Option<NodeState>,
    /// Whether everything awaited happened.
    done: bool,
    elapsed: Duration,
    /// The last poll error, when the last polls failed.
    last_error: Option<String>,
}

/// `raftka topic reassign TOPIC --partition P --replicas 1,4,5`.
pub async fn reassign(
    client: &Client,
    topic: &str,
    partition: u32,
    replicas: &[NodeId],
    wait: WaitArgs,
    out: &Out,
) -> anyhow::Result<ExitCode> {
    let m = client
        .reassign(topic, partition, replicas)
        .await
        .with_context(|| format!("reassign {topic}/{partition}"))?;
    if !out.json() {
        println!(
            "recorded the move of {topic}/{partition}: replicas {} -> {}",
            ids(&m.from),
            ids(&m.to)
        );
    }
    let moves = std::slice::from_ref(&m);
    let target = Target {
        moves,
        removed_node: None,
    };
    finish(client, serde_json::to_value(&m)?, &target, None, wait, out).await
}

/// `raftka cluster rebalance [--max-moves N]`.
pub async fn rebalance(
    client: &Client,
    max_moves: Option<u32>,
    wait: WaitArgs,
    out: &Out,
) -> anyhow::Result<ExitCode> {
    let plan = client.rebalance(max_moves).await.context("rebalance")?;
    if !out.json() {
        if plan.moves.is_empty() {
            println!("the cluster is balanced: no move needed");
        } else {
            println!("recorded {} move(s)", plan.moves.len());
            print_moves(&plan.moves, out);
        }
    }
    let target = Target {
        moves: &plan.moves,
        removed_node: None,
    };
    finish(
        client,
        serde_json::to_value(&plan)?,
        &target,
        None,
        wait,
        out,
    )
    .await
}

/// `raftka cluster decommission NODE`.
pub async fn decommission(
    client: &Client,
    node: NodeId,
    wait: WaitArgs,
    out: &Out,
) -> anyhow::Result<ExitCode> {
    let plan = client
        .decommission(node)
        .await
        .with_context(|| format!("decommission node {node}"))?;
    if !out.json() {
        print_plan(node, &plan, out);
    }
    let target = Target {
        moves: &plan.moves,
        removed_node: Some(node),
    };
    let v = serde_json::to_value(&plan)?;
    finish(client, v, &target, Some(node), wait, out).await
}

/// `raftka cluster remove-node NODE --dead`.
pub async fn remove_dead_node(
    client: &Client,
    node: NodeId,
    wait: WaitArgs,
    out: &Out,
) -> anyhow::Result<ExitCode> {
    let plan = client
        .remove_dead_node(node)
        .await
        .with_context(|| format!("remove dead node {node}"))?;
    if !out.json() {
        print_plan(node, &plan, out);
    }
    let target = Target {
        moves: &plan.moves,
        removed_node: None,
    };
    let v = serde_json::to_value(&plan)?;
    finish(client, v, &target, Some(node), wait, out).await
}

fn print_plan(node: NodeId, plan: &MovePlan, out: &Out) {
    let state = plan.node_state.map_or("-", NodeState::as_str);
    println!(
        "node {node} is {state}; {} replica move(s) recorded",
        plan.moves.len()
    );
    print_moves(&plan.moves, out);
}

/// A table of moves: TOPIC PARTITION FROM TO (nothing when there are none).
pub fn print_moves(moves: &[Reassignment], out: &Out) {
    if moves.is_empty() {
        return;
    }
    let mut t = Table::new(vec!["TOPIC", "PARTITION", "FROM", "TO"]);
    for m in moves {
        t.row(vec![
            m.topic.as_str().into(),
            m.partition.to_string().into(),
            ids(&m.from).into(),
            ids(&m.to).into(),
        ]);
    }
    t.print(out);
}

/// Waits (unless `--no-wait`) and prints the outcome: the server's reply in `reply`, with a
/// `wait` object added when the command waited (`--output json`), or a closing sentence.
/// `avoid` is a node the polls should not ask (one being removed may answer with a stale view
/// of the cluster, or not at all).
async fn finish(
    client: &Client,
    mut reply: serde_json::Value,
    target: &Target<'_>,
    avoid: Option<NodeId>,
    wait: WaitArgs,
    out: &Out,
) -> anyhow::Result<ExitCode> {
    if wait.no_wait {
        if out.json() {
            out.print_json(&reply);
        } else if !target.moves.is_empty() {
            println!("not waiting (--no-wait): follow the moves with `raftka cluster status`");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let poller = match avoid {
        Some(node) => poller_without(client, node).await,
        None => client.clone(),
    };
    let report = wait_for(&poller, target, Duration::from_secs(wait.timeout), out).await;
    if out.json() {
        if let Some(obj) = reply.as_object_mut() {
            obj.insert("wait".into(), wait_json(target, &report));
        }
        out.print_json(&reply);
    } else if report.done {
        println!("{}", done_sentence(target, &report));
    }
    if report.done {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{}", timeout_message(target, &report, wait.timeout))
    }
}

/// A client for the polls that leaves out `node`: the bootstrap nodes but that one, or, when it
/// was the only one, the other nodes the cluster lists.
async fn poller_without(client: &Client, node: NodeId) -> Client {
    let Ok(state) = client.cluster().await else {
        return client.clone();
    };
    let others = other_addresses(client.nodes(), &state, node);
    // Same settings (the bearer token above all), other nodes.
    client
        .with_bootstrap(&others)
        .unwrap_or_else(|_| client.clone())
}

/// The bootstrap addresses (`scheme://host:port`) without `node`'s, or when none is left the
/// addresses of the other nodes that are not removed.
fn other_addresses(bootstrap: &[String], state: &ClusterState, node: NodeId) -> Vec<String> {
    let Some(addr) = state
        .nodes
        .iter()
        .find(|n| n.id == node)
        .map(|n| host_port(&n.address))
    else {
        return bootstrap.to_vec();
    };
    let kept: Vec<String> = bootstrap
        .iter()
        .filter(|b| host_port(b) != addr)
        .cloned()
        .collect();
    if !kept.is_empty() {
        return kept;
    }
    state
        .nodes
        .iter()
        .filter(|n| n.id != node && n.state != Some(NodeState::Removed))
        .map(|n| n.address.clone())
        .collect()
}

/// `host:port` of an address with or without a scheme.
fn host_port(addr: &str) -> &str {
    let addr = addr.trim().trim_end_matches('/');
    addr.split_once("://").map_or(addr, |(_, rest)| rest)
}

/// Polls until every move of `target` has left the moves in flight (and its node, if any, is
/// removed), or `timeout` passes. Poll errors (an election, a node restarting) are retried
/// until then.
async fn wait_for(
    client: &Client,
    target: &Target<'_>,
    timeout: Duration,
    out: &Out,
) -> WaitReport {
    let started = Instant::now();
    let total = target.moves.len();
    let mut report = WaitReport {
        still_moving: target.moves.to_vec(),
        ..WaitReport::default()
    };
    let mut shown: Option<(usize, Instant)> = None;
    loop {
        match client.reassignments().await {
            Ok(r) => {
                report.still_moving = moves_pending(target.moves, &r.reassignments)
                    .into_iter()
                    .cloned()
                    .collect();
                report.last_error = None;
            }
            Err(e) => report.last_error = Some(e.to_string()),
        }
        let moves_done = report.last_error.is_none() && report.still_moving.is_empty();
        let mut node_done = true;
        if let (true, Some(node)) = (moves_done, target.removed_node) {
            match client.cluster().await {
                Ok(state) => {
                    report.node_state = node_state(&state, node);
                    node_done = report.node_state == Some(NodeState::Removed);
                }
                Err(e) => {
                    report.last_error = Some(e.to_string());
                    node_done = false;
                }
            }
        }
        let done_count = total - report.still_moving.len();
        let now = Instant::now();
        let repeat = shown.is_none_or(|(n, at)| n != done_count || now - at >= PROGRESS_REPEAT);
        if total > 0 && repeat && !out.json() {
            eprintln!("{}", progress_line(done_count, total, now - started));
            shown = Some((done_count, now));
        }
        report.elapsed = now - started;
        if moves_done && node_done {
            report.done = true;
            return report;
        }
        if report.elapsed >= timeout {
            return report;
        }
        tokio::time::sleep(POLL_INTERVAL.min(timeout - report.elapsed)).await;
    }
}

/// The state of `node` in the cluster state. A node the cluster no longer lists counts as
/// removed: a server may leave removed nodes out of its list.
fn node_state(state: &ClusterState, node: NodeId) -> Option<NodeState> {
    match state.nodes.iter().find(|n| n.id == node) {
        Some(n) => n.state,
        None => Some(NodeState::Removed),
    }
}

/// `moves: 3/6 done (4.5 s)`.
fn progress_line(done: usize, total: usize, elapsed: Duration) -> String {
    format!(
        "moves: {done}/{total} done ({:.1} s)",
        elapsed.as_secs_f64()
    )
}

/// `orders/1 1,2,3 -> 4,2,3`.
fn describe_move(m: &Reassignment) -> String {
    format!(
        "{}/{} {} -> {}",
        m.topic,
        m.partition,
        ids(&m.from),
        ids(&m.to)
    )
}

/// The closing sentence of a wait that succeeded.
fn done_sentence(target: &Target<'_>, report: &WaitReport) -> String {
    let secs = report.elapsed.as_secs_f64();
    let moves = match target.moves.len() {
        0 => "no move to wait for".to_string(),
        n => format!("all {n} move(s) done in {secs:.1} s"),
    };
    match target.removed_node {
        Some(node) => format!("{moves}; node {node} is removed"),
        None => moves,
    }
}

/// What the error line says when the wait times out.
fn timeout_message(target: &Target<'_>, report: &WaitReport, timeout: u64) -> String {
    let mut parts = Vec::new();
    if !report.still_moving.is_empty() {
        let list: Vec<String> = report.still_moving.iter().map(describe_move).collect();
        parts.push(format!(
            "{} of {} move(s) still in flight: {}",
            report.still_moving.len(),
            target.moves.len(),
            list.join("; ")
        ));
    }
    if let Some(node) = target.removed_node {
        if report.still_moving.is_empty() {
            let state = report.node_state.map_or("unknown", NodeState::as_str);
            parts.push(format!("node {node} is {state}, not yet removed"));
        }
    }
    if let Some(e) = &report.last_error {
        parts.push(format!("last poll failed: {e}"));
    }
    format!(
        "gave up waiting after {timeout} s (the moves go on): {}",
        parts.join("; ")
    )
}

/// The `wait` object of `--output json`.
fn wait_json(target: &Target<'_>, report: &WaitReport) -> serde_json::Value {
    let mut v = json!({
        "done": report.done,
        "moves_total": target.moves.len(),
        "moves_done": target.moves.len() - report.still_moving.len(),
        "still_moving": report.still_moving,
        "elapsed_ms": report.elapsed.as_millis() as u64,
    });
    if target.removed_node.is_some() {
        v["node_state"] = json!(report.node_state);
    }
    if let Some(e) = &report.last_error {
        v["last_error"] = json!(e);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftka_client::NodeInfo;

    fn mv(topic: &str, partition: u32, from: &[u64], to: &[u64]) -> Reassignment {
        Reassignment {
            topic: topic.into(),
            partition,
            from: from.to_vec(),
            to: to.to_vec(),
        }
    }

    fn node(id: u64, state: Option<NodeState>) -> NodeInfo {
        NodeInfo {
            id,
            address: format!("127.0.0.1:{}", 19090 + id),
            alive: true,
            state,
            replicas: None,
            leaderships: None,
            metadata_role: None,
        }
    }

    fn cluster(nodes: Vec<NodeInfo>) -> ClusterState {
        ClusterState {
            node_id: 1,
            metadata_leader: Some(1),
            nodes,
            partitions: vec![],
            under_replicated_partitions: None,
            storage: None,
            reassignments: None,
        }
    }

    #[test]
    fn progress_and_moves_read_as_one_line_each() {
        assert_eq!(
            progress_line(3, 6, Duration::from_millis(4_520)),
            "moves: 3/6 done (4.5 s)"
        );
        assert_eq!(
            describe_move(&mv("orders", 1, &[1, 2, 3], &[4, 2, 3])),
            "orders/1 1,2,3 -> 4,2,3"
        );
    }

    #[test]
    fn a_timeout_names_what_is_still_moving() {
        let moves = vec![
            mv("orders", 1, &[1, 2, 3], &[4, 2, 3]),
            mv("orders", 4, &[1, 2, 3], &[1, 5, 3]),
        ];
        let target = Target {
            moves: &moves,
            removed_node: None,
        };
        let report = WaitReport {
            still_moving: vec![moves[1].clone()],
            last_error: Some("no node reachable".into()),
            ..WaitReport::default()
        };
        assert_eq!(
            timeout_message(&target, &report, 30),
            "gave up waiting after 30 s (the moves go on): 1 of 2 move(s) still in flight: \
             orders/4 1,2,3 -> 1,5,3; last poll failed: no node reachable"
        );
        let json = wait_json(&target, &report);
        assert_eq!(json["done"], false);
        assert_eq!(json["moves_done"], 1);
        assert_eq!(json["moves_total"], 2);
        assert_eq!(json["still_moving"][0]["partition"], 4);
        assert!(json.get("node_state").is_none());
    }

    #[test]
    fn a_decommission_waits_for_the_node_to_be_removed() {
        let target = Target {
            moves: &[],
            removed_node: Some(2),
        };
        let report = WaitReport {
            node_state: Some(NodeState::Draining),
            ..WaitReport::default()
        };
        assert_eq!(
            timeout_message(&target, &report, 600),
            "gave up waiting after 600 s (the moves go on): node 2 is draining, not yet removed"
        );
        assert_eq!(wait_json(&target, &report)["node_state"], "draining");
        let done = WaitReport {
            done: true,
            node_state: Some(NodeState::Removed),
            elapsed: Duration::from_secs(3),
            ..WaitReport::default()
        };
        assert_eq!(
            done_sentence(&target, &done),
            "no move to wait for; node 2 is removed"
        );
    }

    #[test]
    fn a_node_missing_from_the_cluster_counts_as_removed() {
        let state = cluster(vec![node(1, Some(NodeState::Active)), node(2, None)]);
        assert_eq!(node_state(&state, 1), Some(NodeState::Active));
        assert_eq!(node_state(&state, 2), None, "an older server: unknown");
        assert_eq!(node_state(&state, 3), Some(NodeState::Removed));
    }

    #[test]
    fn polls_leave_out_the_node_being_removed() {
        let state = cluster(vec![
            node(1, Some(NodeState::Active)),
            node(2, Some(NodeState::Draining)),
            node(3, Some(NodeState::Active)),
            node(4, Some(NodeState::Removed)),
        ]);
        let bootstrap = vec![
            "http://127.0.0.1:19091".to_string(),
            "http://127.0.0.1:19092".to_string(),
        ];
        assert_eq!(
            other_addresses(&bootstrap, &state, 2),
            vec!["http://127.0.0.1:19091".to_string()]
        );
        // Only the node itself was given: the other live members instead.
        assert_eq!(
            other_addresses(&bootstrap[1..], &state, 2),
            vec!["127.0.0.1:19091".to_string(), "127.0.0.1:19093".to_string()]
        );
        // Over HTTPS as well.
        let https = vec![
            "https://127.0.0.1:19091".to_string(),
            "https://127.0.0.1:19092".to_string(),
        ];
        assert_eq!(other_addresses(&https, &state, 2), vec![https[0].clone()]);
        // A node the cluster does not know: the bootstrap list as it is.
        assert_eq!(other_addresses(&bootstrap, &state, 9), bootstrap);
    }
}

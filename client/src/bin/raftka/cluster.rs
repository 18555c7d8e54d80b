//! `raftka cluster status|rebalance-leaders|rebalance|decommission|remove-node`. The commands
//! that move replicas live in [`crate::moves`].

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::{Client, LeaderMoveOutcome};

use crate::moves::{self, WaitArgs};
use crate::output::{colored, Color, Out, Table};
use crate::status;
use crate::usage;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Nodes (state, alive or not, metadata role), how many partitions each leads and holds,
    /// the partitions that have no leader right now, the replicas lagging behind their leader,
    /// and the partition moves in flight. Exit code 0 even when something is unhealthy; scripts
    /// read --output json.
    #[command(after_help = "\
Node states: joining (catching up after --join), active, draining (being decommissioned),
down (registered but not answering), removed. METADATA is the node's part in the metadata
group: voter, learner or none.

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
    /// Move replicas so that every active node holds about as many as the others and leads
    /// about as many partitions (preferred leaders), e.g. after adding nodes. Waits until the
    /// moves are done unless --no-wait.
    #[command(after_help = "\
Each move adds the new replicas as learners, lets them catch up, switches the voters, then
removes the old replicas and their data; the partition keeps serving throughout. At most
--max-concurrent-moves (a node flag, default 2) moves run at once. Progress (moves: N/M done)
goes to stderr. Ctrl-C or --timeout stops the waiting, not the moves.

Examples:
  raftka cluster rebalance
  raftka cluster rebalance --max-moves 4 --no-wait
  raftka cluster rebalance --output json")]
    Rebalance {
        /// Record at most N moves (default: every move needed).
        #[arg(long, value_name = "N")]
        max_moves: Option<u32>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Retire a live node: it stops getting new replicas, every replica it holds moves to
    /// the other nodes, then it leaves the metadata group and becomes `removed`. Waits until
    /// then unless --no-wait. Stop the node's process afterwards.
    #[command(after_help = "\
Examples:
  raftka cluster decommission 2
  raftka cluster decommission 2 --timeout 3600")]
    Decommission {
        /// The node's id.
        node: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove a node that will never come back (its machine or disk is gone): it becomes
    /// `removed` at once and its replicas are rebuilt on other nodes from the survivors.
    /// Refused for a node that still answers (use decommission). Needs --dead.
    #[command(after_help = "\
Examples:
  raftka cluster remove-node 3 --dead")]
    RemoveNode {
        /// The node's id.
        node: u64,
        /// Confirm that the node is gone for good; required.
        #[arg(long)]
        dead: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

pub async fn run(client: &Client, cmd: ClusterCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Status { lag_threshold } => {
            status::status(client, lag_threshold, out).await
        }
        ClusterCommand::RebalanceLeaders => rebalance_leaders(client, out).await,
        ClusterCommand::Rebalance { max_moves, wait } => {
            moves::rebalance(client, max_moves, wait, out).await
        }
        ClusterCommand::Decommission { node, wait } => {
            moves::decommission(client, node, wait, out).await
        }
        ClusterCommand::RemoveNode { node, dead, wait } => {
            if !dead {
                return usage(format!(
                    "remove-node is only for a node that will never return; confirm with \
                     `raftka cluster remove-node {node} --dead`, or retire a live node with \
                     `raftka cluster decommission {node}`"
                ));
            }
            moves::remove_dead_node(client, node, wait, out).await
        }
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

/// "350 ms ago", "12.0 s ago", or "never".
pub fn last_ack(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 10_000 => format!("{ms} ms ago"),
        Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
    }
}

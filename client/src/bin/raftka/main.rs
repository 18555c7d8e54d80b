//! `raftka`: the Raftka command-line tool (topics, produce, consume, consumer groups, cluster
//! status and membership, bench).
//!
//! Exit codes (documented in `docs/cli.md` and `raftka --help`): 0 success, 1 the server
//! refused or something failed at run time, 2 bad usage, 3 no node reachable.

mod bench;
mod cluster;
mod consume;
mod group;
mod moves;
mod output;
mod produce;
mod status;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use output::{paint, Color, ColorChoice, Format, Out};

const AFTER_HELP: &str = "\
Examples:
  raftka topic create orders --partitions 6
  raftka topic alter orders --config retention.ms=259200000
  seq 1 1000 | raftka produce orders
  raftka produce orders --file users.txt --key-separator :
  raftka consume orders --partition 0 --offset earliest --max 10
  raftka consume orders --partition 0 --offset latest --follow --format json
  raftka consume orders --group billing --follow
  raftka group describe billing
  raftka cluster status
  raftka cluster rebalance
  raftka cluster decommission 2
  raftka topic reassign orders --partition 0 --replicas 1,4,5
  raftka bench produce --records 1000000

Nodes: --bootstrap (or RAFTKA_BOOTSTRAP) lists host:port addresses; any node serves any request,
and the CLI moves to the next address when one does not accept connections.

Exit codes:
  0  success
  1  the server refused the request, or a failure at run time (records not stored, a failed
     benchmark verification)
  2  bad usage: unknown flag, bad value, missing argument
  3  no node reachable: nothing was sent

Errors are printed as one line on stderr: `raftka: error: <server error name> (<code>): <message>`.";

/// Command-line tool for Raftka, a Raft-replicated event log over HTTP/JSON.
#[derive(Parser)]
#[command(name = "raftka", version, after_help = AFTER_HELP)]
struct Cli {
    /// Nodes to talk to, comma-separated host:port; the CLI fails over between them.
    #[arg(
        long,
        short = 'b',
        env = "RAFTKA_BOOTSTRAP",
        default_value = "127.0.0.1:19091",
        value_delimiter = ',',
        global = true
    )]
    bootstrap: Vec<String>,

    /// Output: human tables, or JSON for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table, global = true)]
    output: Format,

    /// Colours: only on a terminal (auto, honours NO_COLOR), always, or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe, alter (configs) and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce one record per line of stdin (or --file).
    Produce(produce::ProduceArgs),
    /// Print records: a partition's from an offset, or as a consumer-group member (--group)
    /// committing what it printed; --follow waits for new ones.
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list, describe (members, assignment, lag), reset-offsets, delete.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Cluster health (nodes, leaders per node, partitions without a leader, moves in flight)
    /// and membership: rebalance replicas, decommission a node, remove a dead one.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Benchmarks that measure and then verify what they measured.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// A usage error found after parsing (a bad `--header`, an unknown template field, …): exit 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `Err(UsageError)` as an `anyhow::Result`.
pub fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(msg.into()).into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let out = Out::new(cli.output, cli.color);
    let result = match raftka_client::Client::new(&cli.bootstrap) {
        Ok(client) => run(client, cli.command, out).await,
        Err(e) => Err(UsageError(format!("--bootstrap: {e}")).into()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let line = format!("{e:#}").replace(['\n', '\r'], " ");
            eprintln!(
                "raftka: {} {line}",
                paint(out.color_err, "error:", Color::Red)
            );
            ExitCode::from(exit_code(&e))
        }
    }
}

async fn run(
    client: raftka_client::Client,
    command: Command,
    out: Out,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Topic(c) => topic::run(&client, c, &out).await,
        Command::Produce(a) => produce::run(client, a, &out).await,
        Command::Consume(a) => consume::run(&client, a, &out).await,
        Command::Group(c) => group::run(&client, c, &out).await,
        Command::Cluster(c) => cluster::run(&client, c, &out).await,
        Command::Bench(b) => bench::run(client, b).await.map(|()| ExitCode::SUCCESS),
    }
}

/// Help and version go to stdout with exit 0. A usage error is one line on stderr (clap's
/// first line, without its usage block and tips) and exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let rendered = e.render().to_string();
            // The message runs up to the first blank line (a missing-argument error lists the
            // arguments on the lines below it).
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let first = message.strip_prefix("error: ").unwrap_or(&message);
            let color = Out::new(Format::Table, ColorChoice::Auto).color_err;
            eprintln!(
                "raftka: {} {first} (see raftka --help)",
                paint(color, "error:", Color::Red)
            );
            ExitCode::from(2)
        }
    }
}

/// 3 when no node could be reached, 2 for usage errors, 1 otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return 2;
        }
        match cause.downcast_ref::<raftka_client::Error>() {
            Some(raftka_client::Error::Unreachable(_)) => return 3,
            Some(raftka_client::Error::Config(_)) => return 2,
            _ => {}
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterCommand;
    use crate::topic::TopicCommand;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("raftka").chain(args.iter().copied()))
    }

    #[test]
    fn topic_reassign_takes_a_partition_and_a_replica_list() {
        let cli = parse(&[
            "topic",
            "reassign",
            "orders",
            "--partition",
            "3",
            "--replicas",
            "1,4,5",
            "--wait",
        ])
        .unwrap();
        let Command::Topic(TopicCommand::Reassign {
            name,
            partition,
            replicas,
            wait,
        }) = cli.command
        else {
            panic!("not topic reassign");
        };
        assert_eq!((name.as_str(), partition), ("orders", 3));
        assert_eq!(replicas, vec![1, 4, 5]);
        assert!(wait.wait && !wait.no_wait);
        assert_eq!(wait.timeout, 600);
        // --replicas is required, and --wait and --no-wait exclude each other.
        assert!(parse(&["topic", "reassign", "orders", "-p", "0"]).is_err());
        assert!(parse(&[
            "topic",
            "reassign",
            "orders",
            "-p",
            "0",
            "-r",
            "1,2",
            "--wait",
            "--no-wait"
        ])
        .is_err());
    }

    #[test]
    fn cluster_membership_commands_parse() {
        let cli = parse(&[
            "cluster",
            "rebalance",
            "--max-moves",
            "4",
            "--timeout",
            "90",
        ])
        .unwrap();
        let Command::Cluster(ClusterCommand::Rebalance { max_moves, wait }) = cli.command else {
            panic!("not cluster rebalance");
        };
        assert_eq!(max_moves, Some(4));
        assert!(!wait.no_wait, "waiting is the default");
        assert_eq!(wait.timeout, 90);

        let cli = parse(&["cluster", "decommission", "2", "--no-wait"]).unwrap();
        let Command::Cluster(ClusterCommand::Decommission { node, wait }) = cli.command else {
            panic!("not cluster decommission");
        };
        assert_eq!(node, 2);
        assert!(wait.no_wait);

        let cli = parse(&["cluster", "remove-node", "3", "--dead"]).unwrap();
        let Command::Cluster(ClusterCommand::RemoveNode { node, dead, .. }) = cli.command else {
            panic!("not cluster remove-node");
        };
        assert_eq!((node, dead), (3, true));
        assert!(parse(&["cluster", "decommission", "two"]).is_err());
        assert!(parse(&["cluster", "rebalance", "--max-moves", "-1"]).is_err());
    }

    #[test]
    fn earlier_cluster_commands_still_parse() {
        let cli = parse(&["cluster", "status", "--lag-threshold", "5", "-o", "json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster(ClusterCommand::Status { lag_threshold: 5 })
        ));
        let cli = parse(&["cluster", "rebalance-leaders"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster(ClusterCommand::RebalanceLeaders)
        ));
    }
}

//! `raftka`: the Raftka command-line tool (topics, produce, consume, consumer groups, cluster
//! status and membership, users and ACLs, bench).
//!
//! Exit codes (documented in `docs/cli.md` and `raftka --help`): 0 success, 1 the server
//! refused or something failed at run time, 2 bad usage, 3 no node reachable.

mod acl;
mod bench;
mod cluster;
mod consume;
mod group;
mod moves;
mod output;
mod produce;
mod status;
mod topic;
mod user;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
  raftka user create alice && raftka user token alice > alice.token
  raftka acl add --principal alice --topic orders --operation read,write

Nodes: --bootstrap (or RAFTKA_BOOTSTRAP) lists host:port addresses; any node serves any request,
and the CLI moves to the next address when one does not accept connections.

Authentication: with nodes started with --auth required, every command needs a bearer token:
--token-file PATH, RAFTKA_TOKEN, or --token (visible to other local users in the process list).

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

    /// Bearer token sent with every request (needed when the nodes require authentication).
    /// Prefer RAFTKA_TOKEN or --token-file: a command line is visible to other local users.
    #[arg(
        long,
        env = "RAFTKA_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Read the bearer token from this file (surrounding whitespace ignored). On the command
    /// line it wins over RAFTKA_TOKEN; it cannot be given with --token.
    #[arg(long, env = "RAFTKA_TOKEN_FILE", global = true, value_name = "PATH")]
    token_file: Option<String>,

    /// Trust the CA certificates in this PEM file (a cluster's own CA) and use HTTPS for
    /// addresses given without a scheme. Without it, https:// addresses are verified against
    /// the system's roots.
    #[arg(long, env = "RAFTKA_CA", global = true, value_name = "PATH")]
    ca: Option<PathBuf>,

    /// Compress request bodies (produce batches, …) with this codec and ask for compressed
    /// replies (fetches): none, gzip or zstd.
    #[arg(
        long,
        env = "RAFTKA_COMPRESSION",
        global = true,
        value_name = "CODEC",
        default_value = "none"
    )]
    compression: raftka_client::Compression,

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
    /// Users and their bearer tokens: create, list, delete, token (make one), revoke, whoami.
    #[command(subcommand)]
    User(user::UserCommand),
    /// ACLs: which user may do what (read, write, create, delete, alter, describe) on which
    /// topics, groups or the cluster; add, list, remove.
    #[command(subcommand)]
    Acl(acl::AclCommand),
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

/// Where a token setting came from: its value and whether it was on the command line.
type Given<T> = Option<(T, bool)>;

/// `--token` or `--token-file` (or their environment variables) as one token, or none. A
/// command-line flag wins over an environment variable; both flags (or both variables) at
/// once are a usage error. An empty RAFTKA_TOKEN or RAFTKA_TOKEN_FILE counts as unset.
fn resolve_token(token: Given<String>, file: Given<PathBuf>) -> Result<Option<String>, UsageError> {
    let token = token.map(|(t, cli)| (t.trim().to_string(), cli));
    let token = match token {
        Some((t, true)) if t.is_empty() => {
            return Err(UsageError("--token: the token is empty".into()))
        }
        Some((t, false)) if t.is_empty() => None,
        other => other,
    };
    let file = match file {
        Some((p, true)) if p.as_os_str().is_empty() => {
            return Err(UsageError("--token-file: the path is empty".into()))
        }
        Some((p, false)) if p.as_os_str().is_empty() => None,
        other => other,
    };
    match (token, file) {
        (Some((_, true)), Some((_, true))) => Err(UsageError(
            "--token and --token-file: give one of them".into(),
        )),
        (Some((_, false)), Some((_, false))) => Err(UsageError(
            "RAFTKA_TOKEN and RAFTKA_TOKEN_FILE are both set: unset one".into(),
        )),
        (Some((t, true)), _) | (Some((t, false)), None) => Ok(Some(t)),
        (_, Some((path, _))) => read_token_file(&path).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_token_file(path: &Path) -> Result<String, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("--token-file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(UsageError(format!(
            "--token-file {}: the file is empty",
            path.display()
        )));
    }
    Ok(token.to_string())
}

/// The client for `cli`: its bootstrap nodes, CA and token.
fn client(cli: &Cli, matches: &clap::ArgMatches) -> Result<raftka_client::Client, UsageError> {
    let on_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let token = resolve_token(
        cli.token.clone().map(|t| (t, on_command_line("token"))),
        cli.token_file
            .clone()
            .map(|p| (PathBuf::from(p), on_command_line("token_file"))),
    )?;
    let mut client = raftka_client::Client::new(&cli.bootstrap)
        .map_err(|e| UsageError(format!("--bootstrap: {e}")))?;
    if let Some(path) = cli.ca.as_deref().filter(|p| !p.as_os_str().is_empty()) {
        let pem =
            std::fs::read(path).map_err(|e| UsageError(format!("--ca {}: {e}", path.display())))?;
        client = client
            .with_ca_pem(&pem)
            .map_err(|e| UsageError(format!("--ca {}: {e}", path.display())))?;
    }
    client = client.with_compression(cli.compression);
    match token {
        Some(t) => client
            .with_token(t)
            .map_err(|e| UsageError(format!("--token: {e}"))),
        None => Ok(client),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let out = Out::new(cli.output, cli.color);
    let (result, has_token) = match client(&cli, &matches) {
        Ok(client) => {
            let has_token = client.has_token();
            (run(client, cli.command, out).await, has_token)
        }
        Err(e) => (Err(e.into()), false),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let mut line = format!("{e:#}").replace(['\n', '\r'], " ");
            if let Some(hint) = auth_hint(&e, has_token) {
                line.push_str(hint);
            }
            eprintln!(
                "raftka: {} {line}",
                paint(out.color_err, "error:", Color::Red)
            );
            ExitCode::from(exit_code(&e))
        }
    }
}

/// What to do about a refusal for want of a token or an ACL.
fn auth_hint(e: &anyhow::Error, has_token: bool) -> Option<&'static str> {
    let code = e
        .chain()
        .find_map(|c| c.downcast_ref::<raftka_client::Error>())
        .and_then(raftka_client::Error::error_code)?;
    match code {
        raftka_client::ErrorCode::Unauthenticated if !has_token => {
            Some(" (the nodes require a token: pass --token-file PATH or set RAFTKA_TOKEN)")
        }
        raftka_client::ErrorCode::Forbidden => {
            Some(" (ask an admin for an ACL: raftka acl add --principal …)")
        }
        _ => None,
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
        Command::User(c) => user::run(&client, c, &out).await,
        Command::Acl(c) => acl::run(&client, c, &out).await,
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
    fn token_flags_are_global_and_their_env_values_hidden() {
        let cli = parse(&["topic", "list", "--token", "abc"]).unwrap();
        assert_eq!(cli.token.as_deref(), Some("abc"));
        let cli = parse(&["--token-file", "/x/t", "user", "whoami"]).unwrap();
        assert_eq!(cli.token_file.as_deref(), Some("/x/t"));
        assert!(matches!(
            cli.command,
            Command::User(user::UserCommand::Whoami)
        ));
        let cmd = Cli::command();
        let token = cmd.get_arguments().find(|a| a.get_id() == "token").unwrap();
        assert!(token.is_hide_env_values_set());
        assert_eq!(
            token.get_env().and_then(|e| e.to_str()),
            Some("RAFTKA_TOKEN")
        );
    }

    #[test]
    fn the_token_comes_from_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let t = |s: &str, cli: bool| Some((s.to_string(), cli));
        let f = |p: &Path, cli: bool| Some((p.to_path_buf(), cli));
        assert_eq!(resolve_token(None, None).unwrap(), None);
        assert_eq!(
            resolve_token(t("a", true), None).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            resolve_token(None, f(&file, false)).unwrap().as_deref(),
            Some("from-file")
        );
        // The command line wins over the environment.
        assert_eq!(
            resolve_token(t("a", true), f(&file, false))
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            resolve_token(t("env", false), f(&file, true))
                .unwrap()
                .as_deref(),
            Some("from-file")
        );
        // An empty RAFTKA_TOKEN is unset; an empty --token is a mistake.
        assert_eq!(resolve_token(t("", false), None).unwrap(), None);
        assert_eq!(
            resolve_token(t(" ", false), f(&file, false))
                .unwrap()
                .as_deref(),
            Some("from-file")
        );
        assert!(resolve_token(t("", true), None).is_err());
        assert_eq!(
            resolve_token(None, Some((PathBuf::new(), false))).unwrap(),
            None
        );
        assert!(resolve_token(None, Some((PathBuf::new(), true))).is_err());
        // Both flags, both variables, an empty or missing file: usage errors.
        assert!(resolve_token(t("a", true), f(&file, true)).is_err());
        assert!(resolve_token(t("a", false), f(&file, false)).is_err());
        assert!(resolve_token(None, f(&empty, true)).is_err());
        let missing = resolve_token(None, f(&dir.path().join("nope"), true)).unwrap_err();
        assert!(missing.0.contains("--token-file"), "{missing}");
    }

    #[test]
    fn user_commands_parse() {
        let cli = parse(&["user", "create", "alice"]).unwrap();
        assert!(
            matches!(cli.command, Command::User(user::UserCommand::Create { name }) if name == "alice")
        );
        let cli = parse(&["user", "token", "alice", "-o", "json"]).unwrap();
        assert!(
            matches!(cli.command, Command::User(user::UserCommand::Token { name }) if name == "alice")
        );
        assert_eq!(cli.output, Format::Json);
        let cli = parse(&["user", "revoke", "alice", "t1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User(user::UserCommand::Revoke { name, token_id }) if name == "alice" && token_id == "t1"
        ));
        for ok in [
            &["user", "list"][..],
            &["user", "delete", "bob"],
            &["user", "whoami"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        assert!(parse(&["user", "revoke", "alice"]).is_err());
        assert!(parse(&["user", "create"]).is_err());
    }

    fn acl_spec(args: &[&str]) -> Result<Vec<raftka_client::AclBinding>, clap::Error> {
        let mut all = vec!["acl", "add"];
        all.extend_from_slice(args);
        let cli = parse(&all)?;
        let Command::Acl(acl::AclCommand::Add(spec)) = cli.command else {
            panic!("not acl add");
        };
        Ok(spec.bindings())
    }

    #[test]
    fn acl_flags_become_bindings() {
        use raftka_client::{Operation, PatternType, Permission, ResourceType};
        let b = acl_spec(&[
            "--principal",
            "alice",
            "--topic",
            "orders",
            "--operation",
            "write",
        ])
        .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(
            serde_json::to_value(&b[0]).unwrap(),
            serde_json::json!({
                "principal": "alice", "resource_type": "topic", "resource_name": "orders",
                "pattern_type": "literal", "operation": "write", "permission": "allow"
            })
        );
        let b = acl_spec(&[
            "--principal",
            "User:bob",
            "--group",
            "billing-",
            "--prefixed",
            "--operation",
            "read,describe",
            "--operation",
            "read",
            "--deny",
        ])
        .unwrap();
        assert_eq!(b.len(), 2, "one binding per distinct operation");
        assert_eq!(b[0].principal, "bob");
        assert_eq!(
            (b[0].resource_type, b[0].pattern_type, b[0].permission),
            (ResourceType::Group, PatternType::Prefixed, Permission::Deny)
        );
        assert_eq!(
            (b[0].operation, b[1].operation),
            (Operation::Read, Operation::Describe)
        );
        let b = acl_spec(&["--principal", "*", "--cluster", "--operation", "alter"]).unwrap();
        assert_eq!(b[0].resource_type, ResourceType::Cluster);
        assert_eq!(b[0].resource_name, acl::CLUSTER_NAME);

        // Exactly one resource; --prefixed not for the cluster; an operation is required
        // and must be known.
        for bad in [
            &["--principal", "a", "--operation", "read"][..],
            &[
                "--principal",
                "a",
                "--topic",
                "t",
                "--group",
                "g",
                "--operation",
                "read",
            ],
            &[
                "--principal",
                "a",
                "--topic",
                "t",
                "--cluster",
                "--operation",
                "read",
            ],
            &[
                "--principal",
                "a",
                "--cluster",
                "--prefixed",
                "--operation",
                "alter",
            ],
            &["--principal", "a", "--topic", "t"],
            &["--principal", "a", "--topic", "t", "--operation", "produce"],
            &["--topic", "t", "--operation", "read"],
        ] {
            assert!(acl_spec(bad).is_err(), "{bad:?}");
        }
        // remove takes the same flags; list's filters are all optional.
        assert!(parse(&[
            "acl",
            "remove",
            "--principal",
            "a",
            "--cluster",
            "--operation",
            "alter"
        ])
        .is_ok());
        assert!(parse(&["acl", "list"]).is_ok());
        assert!(parse(&["acl", "list", "--principal", "a", "--topic", "t"]).is_ok());
        assert!(parse(&["acl", "list", "--topic", "t", "--cluster"]).is_err());
    }

    #[test]
    fn auth_refusals_get_a_hint() {
        let server = |code: raftka_client::ErrorCode| -> anyhow::Error {
            anyhow::Error::new(raftka_client::Error::Server {
                status: code.http_status(),
                code: code.number(),
                name: code.name().into(),
                message: String::new(),
                retriable: false,
                outcome: None,
                body: serde_json::Value::Null,
            })
            .context("list topics")
        };
        use raftka_client::ErrorCode::*;
        assert!(
            auth_hint(&server(Unauthenticated), false).is_some_and(|h| h.contains("RAFTKA_TOKEN"))
        );
        assert_eq!(auth_hint(&server(Unauthenticated), true), None);
        assert!(auth_hint(&server(Forbidden), true).is_some_and(|h| h.contains("acl add")));
        assert_eq!(auth_hint(&server(TopicNotFound), true), None);
        assert_eq!(exit_code(&server(Forbidden)), 1);
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

//! `raftka topic create|list|describe|alter|reassign|delete`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::{Client, PartitionInfo, TopicDescription};
use serde_json::json;

use crate::moves::{self, WaitArgs};
use crate::output::{colored, ids, Cell, Color, Out, Table};
use crate::usage;

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic. Each partition is its own Raft group replicated on
    /// --replication-factor nodes.
    #[command(
        after_help = "Example:\n  raftka topic create orders --partitions 6 --replication-factor 3 --config retention.ms=86400000"
    )]
    Create {
        /// Topic name: 1-249 characters of [a-zA-Z0-9._-].
        name: String,
        /// Number of partitions (1-1024). Keys are spread over them with Kafka's murmur2
        /// partitioner; order is kept per partition.
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: u32,
        /// Copies of each partition (default: min(3, number of nodes)).
        #[arg(long, short = 'r')]
        replication_factor: Option<u32>,
        /// Topic config KEY=VALUE, repeatable: retention.ms, retention.bytes,
        /// max.message.bytes, cleanup.policy.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition count and replication factor.
    List,
    /// Show a topic's configs and, per partition, its leader, replicas, high watermark
    /// (the next offset), log start offset, and the replicas behind the leader
    /// (LAGGING: node:entries; `-` none, `?` unknown because no leader answered).
    Describe {
        /// Topic name.
        name: String,
    },
    /// Grow a topic's partitions (--partitions N, only up) and change its configs: set some
    /// (--config KEY=VALUE), reset others to their default (--delete-config KEY). The config
    /// change is all or nothing; prints the topic as describe does.
    #[command(after_help = "\
Examples:
  raftka topic alter orders --partitions 6
  raftka topic alter orders --config retention.ms=259200000
  raftka topic alter orders --config retention.bytes=1073741824 --delete-config max.message.bytes

Configs: retention.ms (-1: forever), retention.bytes (per partition, -1: unlimited),
max.message.bytes, cleanup.policy (delete). New retention values apply at the next retention
check.")]
    Alter {
        /// Topic name.
        name: String,
        /// Config KEY=VALUE to set; repeatable.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Config KEY to reset to its default; repeatable.
        #[arg(long = "delete-config", short = 'd', value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Grow the topic to N partitions (only up). Keyed records go to other partitions
        /// from then on: the default partitioner's choice depends on the count.
        #[arg(long, short = 'p', value_name = "N")]
        partitions: Option<u32>,
    },
    /// Move one partition's replicas to the given nodes (the first becomes its preferred
    /// leader). New replicas join and catch up before the old ones leave; the partition keeps
    /// serving. Waits until the move is done unless --no-wait.
    #[command(after_help = "\
Examples:
  raftka topic reassign orders --partition 0 --replicas 1,4,5
  raftka topic reassign orders -p 3 --replicas 4,5,1 --no-wait

The new list needs at least as many nodes as a majority of the current replicas (2 for 3),
each named once, none of them draining or removed; otherwise the server refuses
(invalid_replicas, node_not_found, invalid_node_state) and nothing changes.")]
    Reassign {
        /// Topic name.
        name: String,
        /// The partition to move.
        #[arg(long, short = 'p')]
        partition: u32,
        /// The new replica set, comma-separated node ids, preferred leader first.
        #[arg(long, short = 'r', value_delimiter = ',', required = true, num_args = 1..)]
        replicas: Vec<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a topic and all its records. There is no undo.
    Delete {
        /// Topic name.
        name: String,
    },
}

pub async fn run(client: &Client, cmd: TopicCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let pairs = config_pairs(&configs)?;
            let t = client
                .create_topic_with_configs(&name, partitions, replication_factor, &pairs)
                .await
                .with_context(|| format!("create topic {name}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&t)?);
            } else {
                println!(
                    "created topic {} with {} partition(s), replication factor {}",
                    t.name,
                    t.partitions.len(),
                    t.replication_factor
                );
                print_partitions(&t, out);
            }
        }
        TopicCommand::List => {
            let list = client.list_topics().await.context("list topics")?;
            if out.json() {
                out.print_json(&serde_json::to_value(&list)?);
            } else if list.topics.is_empty() {
                println!("no topics");
            } else {
                let mut table = Table::new(vec!["TOPIC", "PARTITIONS", "REPLICATION"]);
                for t in &list.topics {
                    table.row(vec![
                        t.name.as_str().into(),
                        t.partitions.to_string().into(),
                        t.replication_factor.to_string().into(),
                    ]);
                }
                table.print(out);
            }
        }
        TopicCommand::Describe { name } => {
            let t = client
                .describe_topic(&name)
                .await
                .with_context(|| format!("describe topic {name}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&t)?);
            } else {
                println!(
                    "topic {}: {} partition(s), replication factor {}",
                    t.name,
                    t.partitions.len(),
                    t.replication_factor
                );
                if !t.configs.is_empty() {
                    let configs: Vec<String> =
                        t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("configs: {}", configs.join(", "));
                }
                print_partitions(&t, out);
            }
        }
        TopicCommand::Alter {
            name,
            configs,
            delete_configs,
            partitions,
        } => {
            let pairs = config_pairs(&configs)?;
            if pairs.is_empty() && delete_configs.is_empty() && partitions.is_none() {
                return usage(
                    "topic alter needs --partitions, or at least one --config or --delete-config",
                );
            }
            if let Some(n) = partitions {
                let t = client
                    .add_partitions(&name, n)
                    .await
                    .with_context(|| format!("alter topic {name}"))?;
                if pairs.is_empty() && delete_configs.is_empty() {
                    if out.json() {
                        out.print_json(&serde_json::to_value(&t)?);
                    } else {
                        println!(
                            "altered topic {}: {} partitions (keyed records now spread over all of them)",
                            t.name,
                            t.partitions.len()
                        );
                        print_partitions(&t, out);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if let Some(k) = delete_configs.iter().find(|k| k.is_empty()) {
                return usage(format!("--delete-config expects a config name, got '{k}'"));
            }
            if let Some((k, _)) = pairs.iter().find(|(k, _)| delete_configs.contains(k)) {
                return usage(format!("{k} is both set and deleted"));
            }
            let t = client
                .alter_topic_configs(&name, &pairs, &delete_configs)
                .await
                .with_context(|| format!("alter topic {name}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&t)?);
            } else {
                let mut changes: Vec<String> =
                    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                changes.extend(
                    delete_configs
                        .iter()
                        .map(|k| format!("{k} reset to default")),
                );
                println!("altered topic {}: {}", t.name, changes.join(", "));
                if t.configs.is_empty() {
                    println!("configs: (all defaults)");
                } else {
                    let configs: Vec<String> =
                        t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("configs: {}", configs.join(", "));
                }
                print_partitions(&t, out);
            }
        }
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            wait,
        } => return moves::reassign(client, &name, partition, &replicas, wait, out).await,
        TopicCommand::Delete { name } => {
            client
                .delete_topic(&name)
                .await
                .with_context(|| format!("delete topic {name}"))?;
            if out.json() {
                out.print_json(&json!({"name": name, "deleted": true}));
            } else {
                println!("deleted topic {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--config KEY=VALUE` arguments as pairs.
fn config_pairs(configs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for c in configs {
        match c.split_once('=') {
            Some((k, v)) if !k.is_empty() => pairs.push((k.to_string(), v.to_string())),
            _ => return usage(format!("--config expects KEY=VALUE, got '{c}'")),
        }
    }
    Ok(pairs)
}

fn print_partitions(t: &TopicDescription, out: &Out) {
    let mut table = Table::new(vec![
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "HIGH_WATERMARK",
        "LOG_START",
        "LAGGING",
    ]);
    for p in &t.partitions {
        table.row(vec![
            p.partition.to_string().into(),
            match p.leader {
                Some(l) => l.to_string().into(),
                None => colored("none", Color::Red),
            },
            ids(&p.replicas).into(),
            p.high_watermark.to_string().into(),
            p.log_start_offset.to_string().into(),
            lagging(p),
        ]);
    }
    table.print(out);
}

/// The replicas behind the leader as `node:entries` (`-` when none, `?` when the leader did not
/// say).
fn lagging(p: &PartitionInfo) -> Cell {
    match &p.replicas_lag {
        None => "?".into(),
        Some(lags) => {
            let behind: Vec<String> = lags
                .iter()
                .filter(|l| l.lag > 0)
                .map(|l| format!("{}:{}", l.node, l.lag))
                .collect();
            if behind.is_empty() {
                "-".into()
            } else {
                colored(behind.join(","), Color::Red)
            }
        }
    }
}

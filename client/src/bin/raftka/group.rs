//! `raftka group list|describe|reset-offsets|delete`: consumer groups, their members,
//! assignment, committed offsets and lag.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::{
    Client, GroupDeleted, GroupDescription, GroupList, GroupStateName, ResetReply, ResetRequest,
    TopicPartitionRef,
};
use reqwest::Method;
use serde_json::json;

use crate::output::{colored, Color, Out, Table};
use crate::usage;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their member count, generation and state.
    List,
    /// Show a group's members and, per partition, its owner, committed offset, end offset and
    /// lag (end - committed).
    #[command(after_help = "Example:\n  raftka group describe billing")]
    Describe {
        /// Group name.
        group: String,
    },
    /// Move a group's committed offsets on a topic. Only while the group has no members (stop
    /// its consumers first); otherwise the server refuses with group_not_empty.
    #[command(after_help = "\
Examples:
  raftka group reset-offsets billing --topic orders --to earliest
  raftka group reset-offsets billing --topic orders --to offset:100 --partitions 0,2
  raftka group reset-offsets billing --topic orders --to timestamp:1763900000000")]
    ResetOffsets {
        /// Group name.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Target: earliest, latest, offset:N, or timestamp:MS (the first record at or after
        /// that time; the end when none is that recent).
        #[arg(long)]
        to: String,
        /// Only these partitions (comma-separated); default: all of the topic's partitions.
        #[arg(long, value_delimiter = ',')]
        partitions: Vec<u32>,
    },
    /// Delete a group and its committed offsets. Only a group without members.
    Delete {
        /// Group name.
        group: String,
    },
}

/// The `reset-offsets` request: `--to` as its target fields, for `topic` and `partitions`
/// (all of them when empty).
fn reset_request(topic: &str, to: &str, partitions: &[u32]) -> anyhow::Result<ResetRequest> {
    let bad = || {
        usage(format!(
            "--to expects earliest, latest, offset:N or timestamp:MS, got '{to}'"
        ))
    };
    let mut request = ResetRequest {
        topic: topic.to_string(),
        to: to.to_string(),
        offset: None,
        timestamp_ms: None,
        partitions: (!partitions.is_empty()).then(|| partitions.to_vec()),
    };
    match to.split_once(':') {
        None if to == "earliest" || to == "latest" => {}
        Some(("offset", n)) => match n.parse::<u64>() {
            Ok(n) => {
                request.to = "offset".into();
                request.offset = Some(n);
            }
            Err(_) => return bad(),
        },
        Some(("timestamp", n)) => match n.parse::<i64>() {
            Ok(n) => {
                request.to = "timestamp".into();
                request.timestamp_ms = Some(n);
            }
            Err(_) => return bad(),
        },
        _ => return bad(),
    }
    Ok(request)
}

/// A number, `-` when there is none.
fn num(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |n| n.to_string())
}

/// A group state as the API names it.
fn state_name(s: GroupStateName) -> &'static str {
    match s {
        GroupStateName::Empty => "empty",
        GroupStateName::Stable => "stable",
        GroupStateName::Rebalancing => "rebalancing",
    }
}

/// `[{"topic":"t","partition":0},…]` → `t/0,t/1`.
fn tps(v: &[TopicPartitionRef]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let list: Vec<String> = v
        .iter()
        .map(|tp| format!("{}/{}", tp.topic, tp.partition))
        .collect();
    list.join(",")
}

pub async fn run(client: &Client, cmd: GroupCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        GroupCommand::List => {
            let list: GroupList = client
                .call_json(Method::GET, "/v1/groups", None)
                .await
                .context("list groups")?;
            if out.json() {
                out.print_json(&serde_json::to_value(&list)?);
            } else if list.groups.is_empty() {
                println!("no groups");
            } else {
                let mut table = Table::new(vec!["GROUP", "MEMBERS", "GENERATION", "STATE"]);
                for g in &list.groups {
                    table.row(vec![
                        g.group.as_str().into(),
                        g.members.to_string().into(),
                        g.generation.to_string().into(),
                        state_name(g.state).into(),
                    ]);
                }
                table.print(out);
            }
        }
        GroupCommand::Describe { group } => {
            let d: GroupDescription = client
                .call_json(Method::GET, &format!("/v1/groups/{group}"), None)
                .await
                .with_context(|| format!("describe group {group}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&d)?);
            } else {
                print_description(&d, out);
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            partitions,
        } => {
            let request = reset_request(&topic, &to, &partitions)?;
            let reply: ResetReply = client
                .call_with_body(
                    Method::POST,
                    &format!("/v1/groups/{group}/offsets/reset"),
                    &request,
                )
                .await
                .with_context(|| format!("reset offsets of group {group}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&reply)?);
            } else {
                println!("reset offsets of group {group} on topic {topic}");
                let mut table = Table::new(vec!["TOPIC", "PARTITION", "OFFSET"]);
                for o in &reply.offsets {
                    table.row(vec![
                        o.topic.as_str().into(),
                        o.partition.to_string().into(),
                        o.offset.to_string().into(),
                    ]);
                }
                table.print(out);
            }
        }
        GroupCommand::Delete { group } => {
            let _: GroupDeleted = client
                .call_json(Method::DELETE, &format!("/v1/groups/{group}"), None)
                .await
                .with_context(|| format!("delete group {group}"))?;
            if out.json() {
                out.print_json(&json!({"group": group, "deleted": true}));
            } else {
                println!("deleted group {group}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_description(d: &GroupDescription, out: &Out) {
    let total_lag: u64 = d.partitions.iter().filter_map(|p| p.lag).sum();
    println!(
        "group {}: {}, generation {}, {} member(s), total lag {total_lag}",
        d.group,
        state_name(d.state),
        d.generation,
        d.members.len()
    );
    if !d.members.is_empty() {
        let mut table = Table::new(vec!["MEMBER", "CLIENT", "TOPICS", "ASSIGNMENT"]);
        for m in &d.members {
            table.row(vec![
                m.member_id.as_str().into(),
                m.client_id.as_str().into(),
                m.topics.join(",").into(),
                tps(&m.assignment).into(),
            ]);
        }
        table.print(out);
    }
    if d.partitions.is_empty() {
        println!("no partitions assigned or committed");
        return;
    }
    let mut table = Table::new(vec![
        "TOPIC",
        "PARTITION",
        "OWNER",
        "COMMITTED",
        "END",
        "LAG",
    ]);
    for p in &d.partitions {
        let lag = num(p.lag);
        table.row(vec![
            p.topic.as_str().into(),
            p.partition.to_string().into(),
            p.owner.as_deref().unwrap_or("-").into(),
            num(p.committed_offset).into(),
            num(p.end_offset).into(),
            match p.lag {
                Some(l) if l > 0 => colored(lag, Color::Red),
                _ => lag.into(),
            },
        ]);
    }
    table.print(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets_become_request_fields() {
        let body = |to: &str, partitions: &[u32]| {
            reset_request("orders", to, partitions)
                .ok()
                .map(|r| serde_json::to_value(r).unwrap())
        };
        assert_eq!(
            body("earliest", &[]),
            Some(json!({"topic": "orders", "to": "earliest"}))
        );
        assert_eq!(
            body("latest", &[0, 2]),
            Some(json!({"topic": "orders", "to": "latest", "partitions": [0, 2]}))
        );
        assert_eq!(
            body("offset:42", &[]),
            Some(json!({"topic": "orders", "to": "offset", "offset": 42}))
        );
        assert_eq!(
            body("timestamp:1763900000000", &[]),
            Some(
                json!({"topic": "orders", "to": "timestamp", "timestamp_ms": 1_763_900_000_000i64})
            )
        );
        for bad in ["offset:x", "offset", "nope", "timestamp:", "earliest:1"] {
            let e = reset_request("orders", bad, &[]).err();
            assert!(
                e.is_some_and(|e| e.downcast_ref::<crate::UsageError>().is_some()),
                "{bad}"
            );
        }
    }
}

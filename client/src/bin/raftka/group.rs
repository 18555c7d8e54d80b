//! `raftka group list|describe|reset-offsets|delete`: consumer groups, their members,
//! assignment, committed offsets and lag.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::Client;
use reqwest::Method;
use serde_json::{json, Value};

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

/// `--to` as the request body fields.
fn reset_target(to: &str) -> anyhow::Result<Value> {
    let bad = || {
        usage(format!(
            "--to expects earliest, latest, offset:N or timestamp:MS, got '{to}'"
        ))
    };
    Ok(match to.split_once(':') {
        None if to == "earliest" || to == "latest" => json!({"to": to}),
        Some(("offset", n)) => match n.parse::<u64>() {
            Ok(n) => json!({"to": "offset", "offset": n}),
            Err(_) => return bad(),
        },
        Some(("timestamp", n)) => match n.parse::<i64>() {
            Ok(n) => json!({"to": "timestamp", "timestamp_ms": n}),
            Err(_) => return bad(),
        },
        _ => return bad(),
    })
}

/// A JSON number as text, `-` for null or missing.
fn num(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn text(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_string(),
        None => num(v),
    }
}

/// `[{"topic":"t","partition":0},…]` → `t/0,t/1`.
fn tps(v: &Value) -> String {
    let list: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|tp| format!("{}/{}", text(&tp["topic"]), num(&tp["partition"])))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

pub async fn run(client: &Client, cmd: GroupCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        GroupCommand::List => {
            let v: Value = client
                .call_json(Method::GET, "/v1/groups", None)
                .await
                .context("list groups")?;
            let groups = v["groups"].as_array().cloned().unwrap_or_default();
            if out.json() {
                out.print_json(&v);
            } else if groups.is_empty() {
                println!("no groups");
            } else {
                let mut table = Table::new(vec!["GROUP", "MEMBERS", "GENERATION", "STATE"]);
                for g in &groups {
                    table.row(vec![
                        text(&g["group"]).into(),
                        num(&g["members"]).into(),
                        num(&g["generation"]).into(),
                        text(&g["state"]).into(),
                    ]);
                }
                table.print(out);
            }
        }
        GroupCommand::Describe { group } => {
            let v: Value = client
                .call_json(Method::GET, &format!("/v1/groups/{group}"), None)
                .await
                .with_context(|| format!("describe group {group}"))?;
            if out.json() {
                out.print_json(&v);
            } else {
                print_description(&v, out);
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            partitions,
        } => {
            let mut body = reset_target(&to)?;
            body["topic"] = json!(topic);
            if !partitions.is_empty() {
                body["partitions"] = json!(partitions);
            }
            let v: Value = client
                .call_json(
                    Method::POST,
                    &format!("/v1/groups/{group}/offsets/reset"),
                    Some(body),
                )
                .await
                .with_context(|| format!("reset offsets of group {group}"))?;
            if out.json() {
                out.print_json(&v);
            } else {
                println!("reset offsets of group {group} on topic {topic}");
                let mut table = Table::new(vec!["TOPIC", "PARTITION", "OFFSET"]);
                for o in v["offsets"].as_array().cloned().unwrap_or_default() {
                    table.row(vec![
                        text(&o["topic"]).into(),
                        num(&o["partition"]).into(),
                        num(&o["offset"]).into(),
                    ]);
                }
                table.print(out);
            }
        }
        GroupCommand::Delete { group } => {
            let _: Value = client
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

fn print_description(v: &Value, out: &Out) {
    let members = v["members"].as_array().cloned().unwrap_or_default();
    let partitions = v["partitions"].as_array().cloned().unwrap_or_default();
    let total_lag: u64 = partitions.iter().filter_map(|p| p["lag"].as_u64()).sum();
    println!(
        "group {}: {}, generation {}, {} member(s), total lag {total_lag}",
        text(&v["group"]),
        text(&v["state"]),
        num(&v["generation"]),
        members.len()
    );
    if !members.is_empty() {
        let mut table = Table::new(vec!["MEMBER", "CLIENT", "TOPICS", "ASSIGNMENT"]);
        for m in &members {
            let topics: Vec<String> = m["topics"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            table.row(vec![
                text(&m["member_id"]).into(),
                text(&m["client_id"]).into(),
                topics.join(",").into(),
                tps(&m["assignment"]).into(),
            ]);
        }
        table.print(out);
    }
    if partitions.is_empty() {
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
    for p in &partitions {
        let lag = num(&p["lag"]);
        table.row(vec![
            text(&p["topic"]).into(),
            num(&p["partition"]).into(),
            text(&p["owner"]).into(),
            num(&p["committed_offset"]).into(),
            num(&p["end_offset"]).into(),
            match p["lag"].as_u64() {
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
        assert_eq!(
            reset_target("earliest").ok(),
            Some(json!({"to": "earliest"}))
        );
        assert_eq!(reset_target("latest").ok(), Some(json!({"to": "latest"})));
        assert_eq!(
            reset_target("offset:42").ok(),
            Some(json!({"to": "offset", "offset": 42}))
        );
        assert_eq!(
            reset_target("timestamp:1763900000000").ok(),
            Some(json!({"to": "timestamp", "timestamp_ms": 1_763_900_000_000i64}))
        );
        for bad in ["offset:x", "offset", "nope", "timestamp:", "earliest:1"] {
            let e = reset_target(bad).err();
            assert!(
                e.is_some_and(|e| e.downcast_ref::<crate::UsageError>().is_some()),
                "{bad}"
            );
        }
    }
}

//! Acceptance: `raftka consume --group` interrupted by SIGINT and restarted resumes right after
//! the last record it printed (nothing lost, nothing duplicated), and `raftka group`
//! describe / reset-offsets / delete work, refusing to reset a group that has members.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic with a message on failure

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ok, Cluster};

const RECORDS: usize = 3_000;
const TOPIC: &str = "resume";

/// Starts `raftka ARGS` in the background with stdout piped (or discarded).
fn spawn_raftka(cluster: &Cluster, args: &[&str], stdout: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_raftka"))
        .args(args)
        .env("RAFTKA_BOOTSTRAP", &cluster.bootstrap)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn raftka")
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
}

/// Waits for the child to exit (at most 30 s, then kills it and fails).
fn wait_exit(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "raftka did not exit after SIGINT; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The record values of `--format json` lines.
fn values(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            r["value"].as_str().expect("string value").to_string()
        })
        .collect()
}

fn describe(cluster: &Cluster, group: &str) -> serde_json::Value {
    let out = ok(
        &cluster.raftka(&["group", "describe", group, "--output", "json"]),
        "group describe",
    );
    serde_json::from_str(out.trim()).expect("JSON description")
}

/// Committed offsets by partition, and the total lag.
fn committed(d: &serde_json::Value) -> (Vec<(u64, Option<u64>)>, u64) {
    let parts = d["partitions"].as_array().expect("partitions");
    let committed = parts
        .iter()
        .map(|p| {
            (
                p["partition"].as_u64().expect("partition"),
                p["committed_offset"].as_u64(),
            )
        })
        .collect();
    let lag = parts.iter().filter_map(|p| p["lag"].as_u64()).sum();
    (committed, lag)
}

fn assert_one_line_error(out: &Output, contains: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, got: {stderr}");
    assert!(lines[0].starts_with("raftka: error: "), "{stderr}");
    assert!(
        lines[0].contains(contains),
        "{stderr} should say {contains}"
    );
}

#[test]
fn group_consumer_resumes_after_sigint_and_groups_can_be_administered() {
    let cluster = Cluster::start();
    ok(
        &cluster.raftka(&["topic", "create", TOPIC, "--partitions", "3"]),
        "topic create",
    );
    let mut input = String::new();
    for n in 0..RECORDS {
        input.push_str(&format!("key-{}:v-{n}\n", n % 50));
    }
    ok(
        &cluster.raftka_stdin(
            &["produce", TOPIC, "--key-separator", ":"],
            input.as_bytes(),
        ),
        "produce",
    );
    let all: BTreeSet<String> = (0..RECORDS).map(|n| format!("v-{n}")).collect();

    // ---- Group resume ----
    // Run 1: small batches (one commit each), interrupted after 200 records.
    let mut child = spawn_raftka(
        &cluster,
        &[
            "consume",
            TOPIC,
            "--group",
            "g",
            "--follow",
            "--format",
            "json",
            "--fetch-max-records",
            "10",
        ],
        Stdio::piped(),
    );
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.len() < 200 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            first.push(line);
        }
    }
    assert!(first.len() >= 200, "the first run printed {}", first.len());
    sigint(&child);
    let out = wait_exit(child);
    reader.join().expect("reader thread");
    first.extend(rx.try_iter());
    assert_eq!(
        out.status.code(),
        Some(0),
        "Ctrl-C exits 0; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        first.len() < RECORDS,
        "the first run was interrupted before the end"
    );
    let first = values(&first);
    eprintln!(
        "first run printed {} of {RECORDS} before exiting on SIGINT",
        first.len()
    );

    // Everything printed was committed: lag is exactly what was not printed.
    let (_, lag) = committed(&describe(&cluster, "g"));
    assert_eq!(lag as usize, RECORDS - first.len(), "committed = printed");

    // Run 2: the remainder, then stops at --max.
    let remainder = (RECORDS - first.len()).to_string();
    let second = ok(
        &cluster.raftka(&[
            "consume", TOPIC, "--group", "g", "--max", &remainder, "--format", "json",
        ]),
        "second run",
    );
    let second: Vec<String> = second.lines().map(str::to_string).collect();
    let second = values(&second);
    let first_set: BTreeSet<String> = first.iter().cloned().collect();
    let second_set: BTreeSet<String> = second.iter().cloned().collect();
    assert_eq!(first_set.len(), first.len(), "no duplicates within run 1");
    assert_eq!(second_set.len(), second.len(), "no duplicates within run 2");
    let dup: Vec<&String> = first_set.intersection(&second_set).collect();
    assert!(dup.is_empty(), "printed twice: {dup:?}");
    let union: BTreeSet<String> = first_set.union(&second_set).cloned().collect();
    assert_eq!(union, all, "every record printed exactly once overall");

    // ---- Group administration ----
    let d = describe(&cluster, "g");
    assert_eq!(d["members"].as_array().map(Vec::len), Some(0));
    let (offsets, lag) = committed(&d);
    assert_eq!(lag, 0);
    let total: u64 = offsets.iter().filter_map(|(_, c)| *c).sum();
    assert_eq!(total as usize, RECORDS, "{d}");

    let list = ok(&cluster.raftka(&["group", "list"]), "group list");
    assert!(list.starts_with("GROUP"), "{list}");
    assert!(list.lines().any(|l| l.starts_with("g ")), "{list}");
    let table = ok(&cluster.raftka(&["group", "describe", "g"]), "describe");
    assert!(table.contains("COMMITTED"), "{table}");
    assert!(table.contains("total lag 0"), "{table}");

    ok(
        &cluster.raftka(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            TOPIC,
            "--to",
            "earliest",
        ]),
        "reset to earliest",
    );
    let (offsets, lag) = committed(&describe(&cluster, "g"));
    assert!(offsets.iter().all(|(_, c)| *c == Some(0)), "{offsets:?}");
    assert_eq!(lag as usize, RECORDS);
    ok(
        &cluster.raftka(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            TOPIC,
            "--to",
            "offset:5",
            "--partitions",
            "0",
        ]),
        "reset to offset:5",
    );
    let (offsets, _) = committed(&describe(&cluster, "g"));
    assert!(offsets.contains(&(0, Some(5))), "{offsets:?}");
    assert!(offsets.contains(&(1, Some(0))), "{offsets:?}");
    let out = cluster.raftka(&[
        "group",
        "reset-offsets",
        "g",
        "--topic",
        TOPIC,
        "--to",
        "offset",
    ]);
    assert_eq!(out.status.code(), Some(2), "a bad --to is a usage error");

    // --max cuts a polled batch: only the records printed are committed.
    let out = ok(
        &cluster.raftka(&["consume", TOPIC, "--group", "g", "--max", "7"]),
        "consume --max 7",
    );
    assert_eq!(out.lines().count(), 7);
    let (_, lag) = committed(&describe(&cluster, "g"));
    assert_eq!(
        lag as usize,
        RECORDS - 5 - 7,
        "committed 7 more than before"
    );

    // A group with a member refuses reset and delete.
    let member = spawn_raftka(
        &cluster,
        &["consume", TOPIC, "--group", "g", "--follow"],
        Stdio::null(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut members = 0;
    while members == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        members = describe(&cluster, "g")["members"]
            .as_array()
            .map_or(0, Vec::len);
    }
    assert_eq!(members, 1, "the consumer joined");
    let out = cluster.raftka(&[
        "group",
        "reset-offsets",
        "g",
        "--topic",
        TOPIC,
        "--to",
        "latest",
    ]);
    assert_one_line_error(&out, "group_not_empty (40904)");
    let out = cluster.raftka(&["group", "delete", "g"]);
    assert_one_line_error(&out, "group_not_empty (40904)");
    sigint(&member);
    let out = wait_exit(member);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Empty again: delete works, and the group is gone.
    ok(&cluster.raftka(&["group", "delete", "g"]), "group delete");
    let out = cluster.raftka(&["group", "describe", "g"]);
    assert_one_line_error(&out, "group_not_found (40405)");
}

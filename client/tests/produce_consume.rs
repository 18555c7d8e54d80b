//! Acceptance: a keyed file produced through `raftka produce` comes back through
//! `raftka consume` partition by partition with the same records and the same per-key order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic with a message on failure

mod common;

use std::collections::BTreeMap;

use common::{ok, Cluster};
use raftka_client::partitioner::partition_for_key;

const LINES: usize = 10_000;
const PARTITIONS: u32 = 4;

#[test]
fn produced_file_is_consumed_back_with_the_same_records_in_per_key_order() {
    let cluster = Cluster::start();
    ok(
        &cluster.raftka(&["topic", "create", "roundtrip", "--partitions", "4"]),
        "topic create",
    );

    // 10,000 lines over 97 keys; the value names its key and its line, so order is checkable.
    let mut input = String::new();
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in 0..LINES {
        let key = format!("user-{}", (n * 31) % 97);
        let value = format!("{key}/line-{n}");
        input.push_str(&format!("{key}:{value}\n"));
        sent.entry(key).or_default().push(value);
    }
    let file = cluster.dir().join("input.txt");
    std::fs::write(&file, &input).expect("write input");
    let summary = ok(
        &cluster.raftka(&[
            "produce",
            "roundtrip",
            "--file",
            file.to_str().expect("utf-8 path"),
            "--key-separator",
            ":",
            "--output",
            "json",
        ]),
        "produce",
    );
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).expect("JSON summary");
    assert_eq!(summary["stored"], LINES as u64, "{summary}");
    assert_eq!(summary["not_stored"], 0);
    assert_eq!(summary["outcome_unknown"], 0);

    let mut received: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut total = 0;
    let mut partition0_values = Vec::new();
    for p in 0..PARTITIONS {
        let out = ok(
            &cluster.raftka(&[
                "consume",
                "roundtrip",
                "--partition",
                &p.to_string(),
                "--offset",
                "earliest",
                "--max",
                &LINES.to_string(),
                "--format",
                "json",
            ]),
            "consume",
        );
        let mut values = Vec::new();
        for (expected_offset, line) in out.lines().enumerate() {
            let r: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(r["partition"], p);
            assert_eq!(r["offset"], expected_offset, "dense offsets from 0");
            let key = r["key"].as_str().expect("key").to_string();
            assert_eq!(
                partition_for_key(key.as_bytes(), PARTITIONS),
                p,
                "{key} is in the partition Kafka's partitioner picks"
            );
            let value = r["value"].as_str().expect("string value").to_string();
            values.push(value.clone());
            received.entry(key).or_default().push(value);
            total += 1;
        }
        if p == 0 {
            partition0_values = values;
        }
    }
    assert_eq!(total, LINES);
    assert_eq!(received, sent, "same records, same order per key");

    // The plain value format prints exactly the values, in offset order.
    let values = ok(
        &cluster.raftka(&["consume", "roundtrip", "-p", "0", "--max", "3"]),
        "consume values",
    );
    let first: Vec<&str> = values.lines().collect();
    assert_eq!(first, partition0_values[..3].to_vec());
}

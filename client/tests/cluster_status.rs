//! `raftka cluster status` and `raftka topic describe` show a replica lagging behind its
//! leader while it is down, and stop showing it once it has caught up.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test: panics with a message

mod common;

use std::time::{Duration, Instant};

use common::{ok, Cluster};

fn status_json(c: &Cluster) -> serde_json::Value {
    let out = c.raftka(&["cluster", "status", "--output", "json"]);
    serde_json::from_str(ok(&out, "cluster status").trim()).expect("status is JSON")
}

/// Polls `cluster status --output json` until `check` holds (at most 30 s).
fn wait_status(
    c: &Cluster,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status_json(c);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: last status {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lagging_nodes(s: &serde_json::Value) -> Vec<u64> {
    s["replicas_lagging"]
        .as_array()
        .expect("replicas_lagging")
        .iter()
        .filter(|r| r["topic"] == "lagt")
        .map(|r| r["node"].as_u64().expect("node"))
        .collect()
}

#[test]
fn a_stopped_follower_shows_as_lagging_until_it_catches_up() {
    let c = Cluster::start();
    ok(
        &c.raftka(&["topic", "create", "lagt", "-p", "1", "-r", "3"]),
        "topic create",
    );
    let described: serde_json::Value = serde_json::from_str(
        ok(
            &c.raftka(&["topic", "describe", "lagt", "--output", "json"]),
            "describe",
        )
        .trim(),
    )
    .expect("describe JSON");
    let leader = described["partitions"][0]["leader"]
        .as_u64()
        .expect("a leader after create");
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");
    let produce = |n: usize| {
        for i in 0..n {
            let line = format!("v{i}\n");
            ok(
                &c.raftka_stdin(&["produce", "lagt", "--progress", "never"], line.as_bytes()),
                "produce",
            );
        }
    };
    produce(3);
    wait_status(&c, "every replica caught up", |s| {
        lagging_nodes(s).is_empty()
    });

    c.kill(follower);
    // Each `raftka produce` run here is one batch, so one log entry.
    produce(10);
    let s = wait_status(&c, "the stopped follower lags", |s| {
        lagging_nodes(s) == vec![follower]
    });
    let entry = &s["replicas_lagging"][0];
    assert!(entry["lag"].as_u64().expect("lag") >= 10, "{s}");
    assert_eq!(entry["leader"].as_u64(), Some(leader), "{s}");

    let table = ok(&c.raftka(&["cluster", "status"]), "cluster status");
    assert!(
        table.contains("1 replica(s) more than 0 log entries behind their leader"),
        "{table}"
    );
    assert!(table.contains("LAST_ACK"), "{table}");
    // With a threshold above the lag, nothing is listed.
    let quiet = ok(
        &c.raftka(&["cluster", "status", "--lag-threshold", "1000"]),
        "cluster status --lag-threshold",
    );
    assert!(quiet.contains("0 replica(s) more than 1000"), "{quiet}");
    let describe = ok(&c.raftka(&["topic", "describe", "lagt"]), "describe");
    assert!(describe.contains("LAGGING"), "{describe}");
    assert!(
        describe.contains(&format!(" {follower}:")),
        "the follower's lag in the LAGGING column: {describe}"
    );

    c.restart(follower);
    wait_status(&c, "the restarted follower catches up", |s| {
        lagging_nodes(s).is_empty()
    });
}

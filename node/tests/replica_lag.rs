//! Per-replica replication lag in `GET /v1/cluster` and `GET /v1/topics/{t}`: reported by the
//! partition leader whichever node is asked, zero when followers are caught up, growing for a
//! follower that is down, and back to zero once it has caught up after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use serde_json::{json, Value};

/// The `replicas_lag` array of partition 0 of topic `t`, as node `via` reports it in
/// `/v1/cluster`, as `(node, lag, last_ack_ms)`.
async fn lag_via_cluster(c: &TestCluster, via: u64) -> Option<Vec<(u64, u64, Option<u64>)>> {
    let (s, b) = c.get(via, "/v1/cluster").await;
    assert_eq!(s, 200, "{b}");
    let p = b["partitions"]
        .as_array()?
        .iter()
        .find(|p| p["topic"] == "t" && p["partition"] == 0)?
        .clone();
    parse(&p["replicas_lag"])
}

fn parse(v: &Value) -> Option<Vec<(u64, u64, Option<u64>)>> {
    let mut out: Vec<_> = v
        .as_array()?
        .iter()
        .map(|r| {
            (
                r["node"].as_u64().unwrap(),
                r["lag"].as_u64().unwrap(),
                r["last_ack_ms"].as_u64(),
            )
        })
        .collect();
    out.sort_unstable();
    Some(out)
}

/// Polls `check` on node `via`'s view until it holds, for at most 20 s.
async fn wait_for<F>(
    c: &TestCluster,
    via: u64,
    what: &str,
    check: F,
) -> Vec<(u64, u64, Option<u64>)>
where
    F: Fn(&[(u64, u64, Option<u64>)]) -> bool,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        last = lag_via_cluster(c, via).await;
        if let Some(l) = &last {
            if check(l) {
                return l.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: last seen {last:?}");
}

async fn produce(c: &TestCluster, via: u64, n: u64) {
    for i in 0..n {
        let (s, b) = c
            .post(
                via,
                "/v1/topics/t/records",
                json!({"records": [{"value": i, "partition": 0}]}),
            )
            .await;
        assert_eq!(s, 200, "produce: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_reports_each_followers_lag_which_grows_while_it_is_down() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("t", 1, 3).await;
    let leader = loop {
        if let Some(l) = c.leader_of(1, "t", 0).await {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let followers: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    let (down, up) = (followers[0], followers[1]);
    produce(&c, leader, 5).await;

    // Asked through a follower, the answer still comes from the leader: one entry per follower,
    // both caught up.
    let caught_up = wait_for(&c, down, "followers catch up", |l| {
        l.len() == 2 && l.iter().all(|(_, lag, _)| *lag == 0)
    })
    .await;
    let nodes: Vec<u64> = caught_up.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(
        nodes, followers,
        "one entry per follower, none for the leader"
    );
    let (s, d) = c.get(up, "/v1/topics/t").await;
    assert_eq!(s, 200);
    let described = parse(&d["partitions"][0]["replicas_lag"]).expect("describe has replicas_lag");
    assert_eq!(described.len(), 2, "{d}");

    // A follower down: every new entry adds to its lag, and it stops acknowledging.
    c.crash(down).await;
    produce(&c, leader, 20).await;
    let behind = wait_for(&c, up, "the stopped follower lags", |l| {
        l.iter()
            .any(|(n, lag, ack)| *n == down && *lag >= 20 && ack.is_none_or(|a| a >= 1000))
            && l.iter().any(|(n, lag, _)| *n == up && *lag == 0)
    })
    .await;
    eprintln!("while node {down} is down: {behind:?}");

    // Back up: it catches up.
    c.restart(down).await;
    wait_for(&c, leader, "the restarted follower catches up", |l| {
        l.len() == 2 && l.iter().all(|(_, lag, _)| *lag == 0)
    })
    .await;
    c.shutdown().await;
}

//! The metadata group snapshots and purges its log, so consumer-group commits do not grow it
//! without bound; a node that was down past the purge catches up from the snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use openraft::async_runtime::WatchReceiver;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_log_is_purged_and_a_lagging_node_installs_its_snapshot() {
    let mut c = TestCluster::start_with(3, |cfg| cfg.metadata_snapshot_entries = 50).await;
    c.create_topic("meta", 1, 3).await;
    let (s, _) = c
        .post(
            1,
            "/v1/topics/meta/records",
            json!({"records": [{"value": 1}, {"value": 2}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, j) = c
        .post(
            1,
            "/v1/groups/g/members",
            json!({"topics": ["meta"], "session_timeout_ms": 30_000}),
        )
        .await;
    assert_eq!(s, 200, "{j}");
    let member = j["member_id"].as_str().unwrap().to_string();
    let generation = j["generation"].as_u64().unwrap();
    let down = 3;
    let down_index = c
        .node(down)
        .meta_raft()
        .metrics()
        .borrow_watched()
        .last_log_index
        .unwrap();
    c.crash(down).await;
    // 200 commits: 200 metadata log entries, 4 snapshot intervals.
    for i in 0..200u64 {
        let (s, b) = c
            .post(
                1 + (i % 2),
                "/v1/groups/g/offsets",
                json!({"member_id": member, "generation": generation,
                       "offsets": [{"topic": "meta", "partition": 0, "offset": 1 + (i % 2)}]}),
            )
            .await;
        assert_eq!(s, 200, "commit {i}: {b}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in [1, 2] {
        loop {
            let m = c.node(id).meta_raft().metrics().borrow_watched().clone();
            if m.purged.as_ref().is_some_and(|p| p.index() > down_index) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} purged its metadata log: {:?}",
                m.purged
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    c.restart(down).await;
    c.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let committed = c.node(down).with_metadata(|m| {
            m.groups
                .get("g")
                .map(|g| g.offsets.get(&("meta".to_string(), 0)).copied())
        });
        if committed == Some(Some(2)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {down} caught up: {committed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = c.node(down).meta_raft().metrics().borrow_watched().clone();
    assert!(
        m.snapshot.is_some(),
        "node {down} installed a metadata snapshot"
    );
    assert!(c.node(down).metadata().topic("meta").is_some());
    c.shutdown().await;
}

//! Growing a topic's partition count (`PATCH /v1/topics/{t}`, only up, as Kafka): existing
//! records stay where they are, the new partitions elect leaders and take writes, keyed records
//! follow the new count, consumer groups get the new partitions, and bad requests change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use raftka_node::partitioner::partition_for_key;
use serde_json::json;

async fn patch(
    c: &TestCluster,
    via: u64,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    c.patch(via, path, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_grow_keep_records_and_reach_consumer_groups() {
    let c = TestCluster::start(3).await;
    c.create_topic("grow", 2, 3).await;
    for i in 0..10 {
        let (s, b) = c
            .post(
                1,
                "/v1/topics/grow/records",
                json!({"records": [{"key": format!("k{i}"), "value": i}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let before = [
        c.read_all(2, "grow", 0).await,
        c.read_all(2, "grow", 1).await,
    ];
    let (s, joined) = c
        .post(1, "/v1/groups/g/members", json!({"topics": ["grow"]}))
        .await;
    assert_eq!(s, 200, "{joined}");
    assert_eq!(joined["assignment"].as_array().unwrap().len(), 2);
    let member = joined["member_id"].as_str().unwrap().to_string();

    let (s, b) = patch(&c, 2, "/v1/topics/grow", json!({"partitions": 4})).await;
    assert_eq!(s, 200, "{b}");
    let parts = b["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| p["leader"].as_u64().is_some()), "{b}");
    assert!(
        parts
            .iter()
            .all(|p| p["replicas"].as_array().unwrap().len() == 3),
        "{b}"
    );

    // Old records are untouched; the new partitions take writes, keyed ones by the new count.
    assert_eq!(
        [
            c.read_all(3, "grow", 0).await,
            c.read_all(3, "grow", 1).await
        ],
        before
    );
    for p in 2..4 {
        let (s, b) = c
            .post(
                3,
                "/v1/topics/grow/records",
                json!({"records": [{"value": "new", "partition": p}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["offsets"][0]["offset"], 0, "{b}");
    }
    let (s, b) = c
        .post(
            1,
            "/v1/topics/grow/records",
            json!({"records": [{"key": "alice", "value": 1}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["offsets"][0]["partition"],
        partition_for_key(b"alice", 4),
        "{b}"
    );

    // The group's member gets the new partitions.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (s, hb) = c
            .post(
                2,
                &format!("/v1/groups/g/members/{member}/heartbeat"),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{hb}");
        if hb["assignment"].as_array().unwrap().len() == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "assignment {hb}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Bad requests: a clear 4xx, nothing changes.
    for (body, status, code) in [
        (json!({"partitions": 4}), 400, "invalid_topic"),
        (json!({"partitions": 3}), 400, "invalid_topic"),
        (json!({"partitions": 0}), 400, "invalid_topic"),
        (json!({"partitions": 5000}), 400, "invalid_topic"),
        (json!({"partitions": "six"}), 400, "bad_request"),
        (json!({"partitions": 6, "replicas": 2}), 400, "bad_request"),
    ] {
        let (s, b) = patch(&c, 1, "/v1/topics/grow", body.clone()).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (status, Some(code)),
            "{body}: {b}"
        );
        assert_eq!(b["outcome"], "not_applied", "{b}");
    }
    let (s, b) = patch(&c, 1, "/v1/topics/nope", json!({"partitions": 4})).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("topic_not_found")),
        "{b}"
    );
    let (_, d) = c.get(3, "/v1/topics/grow").await;
    assert_eq!(d["partitions"].as_array().unwrap().len(), 4, "{d}");
    c.shutdown().await;
}

//! Replay by time: the first offset at or after a timestamp, with producer timestamps that are
//! not monotonic, through the offsets endpoint and a consumer-group reset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timestamp_lookup_matches_kafka_list_offsets_semantics() {
    let c = TestCluster::start(3).await;
    // The timestamps are from 1970: keep them, or the default 7-day retention deletes them.
    c.create_topic_with("ts", 1, 3, json!({"retention.ms": -1}))
        .await;
    // Offsets 0..=7 with timestamps that go back and forth, over several requests.
    for chunk in [[1000, 3000], [2000, 2500], [4000, 500], [5000, 4500]] {
        let recs: Vec<_> = chunk
            .iter()
            .map(|t| json!({"value": t, "timestamp_ms": t}))
            .collect();
        let (s, b) = c
            .post(1, "/v1/topics/ts/records", json!({ "records": recs }))
            .await;
        assert_eq!(s, 200, "{b}");
    }
    // Brute force over the log: the first offset whose timestamp is >= T.
    let log = c.read_all(2, "ts", 0).await;
    let expect = |t: i64| {
        log.iter()
            .find(|r| r["timestamp_ms"].as_i64().unwrap() >= t)
            .map(|r| r["offset"].as_u64().unwrap())
    };
    for t in [0, 1000, 1001, 2100, 3000, 3001, 4001, 4600, 5000, 5001] {
        let (s, b) = c
            .get(
                3,
                &format!("/v1/topics/ts/partitions/0/offsets?timestamp_ms={t}"),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["offset"].as_u64(), expect(t), "t={t}: {b}");
        assert_eq!(
            (b["earliest"].as_u64(), b["latest"].as_u64()),
            (Some(0), Some(8))
        );
    }
    let (s, b) = c
        .get(1, "/v1/topics/ts/partitions/0/offsets?timestamp_ms=abc")
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")));

    // A consumer group replays from a point in time.
    let (s, b) = c
        .post(
            1,
            "/v1/groups/replay/offsets/reset",
            json!({"topic": "ts", "to": "timestamp", "timestamp_ms": 3001}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["offsets"][0]["offset"].as_u64(), expect(3001));
    let (s, b) = c
        .post(
            1,
            "/v1/groups/replay/offsets/reset",
            json!({"topic": "ts", "to": "timestamp", "timestamp_ms": 99_999}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["offsets"][0]["offset"].as_u64(),
        Some(8),
        "no record that recent: the end"
    );
    c.shutdown().await;
}

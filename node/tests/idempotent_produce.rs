//! Exactly-once produce over HTTP: idempotent producer sequences and Idempotency-Key retries
//! return the original offsets, also through another node after the leader crashed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestCluster;
use serde_json::{json, Value};

fn offsets(b: &Value) -> Vec<(u64, u64, bool)> {
    b["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_u64().unwrap(),
                o["offset"].as_u64().unwrap(),
                o["duplicate"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_batches_get_their_original_offsets_and_are_stored_once() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("eo", 2, 3).await;
    let batch = json!({"producer_id": "p-1", "records": [
        {"partition": 0, "sequence": 0, "value": "a"},
        {"partition": 0, "sequence": 1, "value": "b"},
        {"partition": 1, "sequence": 0, "value": "c"},
    ]});
    let (s, first) = c.post(1, "/v1/topics/eo/records", batch.clone()).await;
    assert_eq!(s, 200, "{first}");
    let (s, again) = c.post(2, "/v1/topics/eo/records", batch.clone()).await;
    assert_eq!(s, 200, "{again}");
    let strip =
        |v: Vec<(u64, u64, bool)>| v.into_iter().map(|(p, o, _)| (p, o)).collect::<Vec<_>>();
    assert_eq!(
        strip(offsets(&again)),
        strip(offsets(&first)),
        "the retry gets the original offsets"
    );
    assert!(
        offsets(&again).iter().all(|o| o.2),
        "and is marked duplicate"
    );
    assert_eq!(c.read_all(3, "eo", 0).await.len(), 2, "stored once");

    // The next batch continues the sequence; a gap is refused and changes nothing.
    let (s, b) = c
        .post(1, "/v1/topics/eo/records", json!({"producer_id": "p-1", "records": [{"partition": 0, "sequence": 5, "value": "gap"}]}))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("out_of_order_sequence")),
        "{b}"
    );
    assert_eq!(b["outcome"], "not_applied");
    let (s, b) = c
        .post(1, "/v1/topics/eo/records", json!({"producer_id": "p-1", "records": [{"partition": 0, "sequence": 2, "value": "d"}]}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(c.read_all(3, "eo", 0).await.len(), 3);

    // Idempotency-Key: the whole request is deduplicated.
    let send_keyed = |via: u64| {
        c.http
            .post(c.url(via, "/v1/topics/eo/records"))
            .header("idempotency-key", "order-42")
            .json(&json!({"records": [{"key": "x", "value": 1}, {"key": "y", "value": 2}]}))
            .send()
    };
    let r1: Value = send_keyed(1).await.unwrap().json().await.unwrap();
    let r2: Value = send_keyed(3).await.unwrap().json().await.unwrap();
    assert_eq!(strip(offsets(&r1)), strip(offsets(&r2)), "{r1} {r2}");

    // After the leader of partition 0 crashes, a retry through another node still finds the
    // batch: the dedup memory is part of the replicated state machine.
    let leader = c.leader_of(1, "eo", 0).await.unwrap();
    let last =
        json!({"producer_id": "p-1", "records": [{"partition": 0, "sequence": 3, "value": "e"}]});
    let (s, before) = c.post(leader, "/v1/topics/eo/records", last.clone()).await;
    assert_eq!(s, 200, "{before}");
    c.crash(leader).await;
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let t0 = std::time::Instant::now();
    let after = loop {
        let (s, b) = c.post(via, "/v1/topics/eo/records", last.clone()).await;
        if s == 200 {
            break b;
        }
        assert_eq!(b["outcome"], "not_applied", "{b}");
        assert!(t0.elapsed() < Duration::from_secs(20), "no new leader: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(strip(offsets(&after)), strip(offsets(&before)));
    let values: Vec<String> = c
        .read_all(via, "eo", 0)
        .await
        .iter()
        .filter_map(|r| r["value"].as_str().map(String::from))
        .collect();
    assert_eq!(values, vec!["a", "b", "d", "e"], "no duplicate in the log");
    c.restart(leader).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_idempotent_requests_are_rejected() {
    let c = TestCluster::start(3).await;
    c.create_topic("eo2", 1, 3).await;
    let cases = [
        json!({"records": [{"value": 1, "sequence": 0}]}),
        json!({"producer_id": "p", "records": [{"value": 1}]}),
        json!({"producer_id": "", "records": [{"value": 1, "sequence": 0}]}),
    ];
    for body in cases {
        let (s, b) = c.post(1, "/v1/topics/eo2/records", body.clone()).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (400, Some("bad_request")),
            "{body} -> {b}"
        );
    }
    let (s, b) = c
        .post(1, "/v1/topics/eo2/records", json!({"producer_id": "p", "records": [{"value": 1, "sequence": 0}, {"value": 2, "sequence": 2}]}))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("out_of_order_sequence")),
        "{b}"
    );
    assert!(c.read_all(2, "eo2", 0).await.is_empty(), "nothing written");
    c.shutdown().await;
}

/// The leader is cut off from its followers while an idempotent write is in flight (so it can
/// be neither committed nor refused), then killed before it answers: the client has sent and
/// got no reply, the outcome is unknown. The same batch retried through another node, until
/// acknowledged, must leave exactly one copy, whichever way the first attempt went.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_the_leader_died_mid_request_stores_the_batch_once() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("eo3", 1, 3).await;
    let first = json!({"producer_id": "p-crash", "records": [{"partition": 0, "sequence": 0, "value": "one"}]});
    let (s, b) = c.post(1, "/v1/topics/eo3/records", first).await;
    assert_eq!(s, 200, "{b}");
    let leader = c.leader_of(1, "eo3", 0).await.unwrap();
    let batch = json!({"producer_id": "p-crash", "records": [
        {"partition": 0, "sequence": 1, "value": "two"},
        {"partition": 0, "sequence": 2, "value": "three"},
    ]});
    c.faults.isolate(leader, &c.ids());
    let in_flight = {
        let http = c.http.clone();
        let url = c.url(leader, "/v1/topics/eo3/records");
        let body = batch.clone();
        tokio::spawn(async move { http.post(url).json(&body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.crash(leader).await;
    match in_flight.await.unwrap() {
        // The connection died with the node: no reply, the outcome is unknown.
        Err(_) => {}
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 200, "an isolated leader acknowledged: {body}");
        }
    }
    c.faults.heal();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let t0 = std::time::Instant::now();
    let acked = loop {
        let (s, b) = c.post(via, "/v1/topics/eo3/records", batch.clone()).await;
        if s == 200 {
            break b;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never acknowledged: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.restart(leader).await;
    c.wait_ready().await;
    // One more retry after the old leader is back (it may win the next election).
    let (s, again) = c
        .post(leader, "/v1/topics/eo3/records", batch.clone())
        .await;
    assert_eq!(s, 200, "{again}");
    let strip =
        |v: Vec<(u64, u64, bool)>| v.into_iter().map(|(p, o, _)| (p, o)).collect::<Vec<_>>();
    assert_eq!(strip(offsets(&again)), strip(offsets(&acked)));
    for node in c.ids() {
        let values: Vec<String> = c
            .read_all(node, "eo3", 0)
            .await
            .iter()
            .filter_map(|r| r["value"].as_str().map(String::from))
            .collect();
        assert_eq!(
            values,
            vec!["one", "two", "three"],
            "exactly one copy, via node {node}"
        );
    }
    c.shutdown().await;
}

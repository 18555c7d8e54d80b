//! The Rust client's `Consumer` against an in-process cluster: sharing partitions in a group,
//! handing them over on a rebalance without loss or duplication, and leaving on close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestCluster;
use raftka_client::{Client, Consumer, ConsumerConfig, RebalanceListener};
use serde_json::{json, Value};

struct Log(Arc<Mutex<Vec<String>>>);
impl RebalanceListener for Log {
    fn on_revoked(&mut self, p: &[(String, u32)]) {
        self.0.lock().unwrap().push(format!("revoked {p:?}"));
    }
    fn on_assigned(&mut self, p: &[(String, u32)]) {
        self.0.lock().unwrap().push(format!("assigned {p:?}"));
    }
}

fn config() -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new("rust-group", &["orders"]);
    cfg.auto_commit_interval = None;
    cfg.session_timeout = Duration::from_secs(3);
    cfg.poll_wait = Duration::from_millis(100);
    cfg
}

async fn drain(c: &mut Consumer, seen: &mut BTreeMap<u64, u32>, until: usize) {
    let t0 = Instant::now();
    while seen.len() < until && t0.elapsed() < Duration::from_secs(20) {
        for r in c.poll().await.unwrap() {
            *seen.entry(r.record.value.as_u64().unwrap()).or_insert(0) += 1;
        }
        c.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_share_partitions_and_hand_over_without_loss_or_duplicates() {
    let c = TestCluster::start(3).await;
    c.create_topic("orders", 4, 3).await;
    let recs: Vec<Value> = (0..200u64)
        .map(|i| json!({"key": format!("k{i}"), "value": i}))
        .collect();
    let (s, b) = c
        .post(1, "/v1/topics/orders/records", json!({ "records": recs }))
        .await;
    assert_eq!(s, 200, "{b}");
    let addrs: Vec<String> = c.addrs.values().map(|a| a.to_string()).collect();
    let client = Client::new(&addrs).unwrap();

    let events = Arc::new(Mutex::new(vec![]));
    let mut a =
        Consumer::join_with_listener(client.clone(), config(), Box::new(Log(events.clone())))
            .await
            .unwrap();
    assert_eq!(
        a.assignment().len(),
        4,
        "a lone member owns every partition"
    );
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    drain(&mut a, &mut seen, 80).await;

    // A second member joins: two partitions move from a to b once a commits and releases them.
    let mut b_consumer = Consumer::join(client.clone(), config()).await.unwrap();
    let t0 = Instant::now();
    while (a.assignment().len(), b_consumer.assignment().len()) != (2, 2) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no handover: a={:?} b={:?}",
            a.assignment(),
            b_consumer.assignment()
        );
        for r in a.poll().await.unwrap() {
            *seen.entry(r.record.value.as_u64().unwrap()).or_insert(0) += 1;
        }
        a.commit().await.unwrap();
        for r in b_consumer.poll().await.unwrap() {
            *seen.entry(r.record.value.as_u64().unwrap()).or_insert(0) += 1;
        }
        b_consumer.commit().await.unwrap();
    }
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("revoked")),
        "rebalance callback ran"
    );
    drain(&mut a, &mut seen, 200).await;
    drain(&mut b_consumer, &mut seen, 200).await;
    assert_eq!(seen.len(), 200, "every record consumed");
    assert!(
        seen.values().all(|n| *n == 1),
        "no record delivered twice across the handover"
    );

    // Closing b hands its partitions back to a at once.
    b_consumer.close().await.unwrap();
    let t0 = Instant::now();
    while a.assignment().len() != 4 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "partitions did not return"
        );
        a.poll().await.unwrap();
    }
    a.close().await.unwrap();
    let (_, d) = c.get(2, "/v1/groups/rust-group").await;
    assert_eq!(d["members"].as_array().unwrap().len(), 0);
    c.shutdown().await;
}

//! In-process 3-node clusters: keyed ordering, minority partitions, crashes, topic lifecycle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::TestCluster;
use raftka_node::partitioner::partition_for_key;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_records_land_in_kafkas_partition_in_send_order_at_dense_offsets() {
    let c = TestCluster::start(3).await;
    c.create_topic("orders", 4, 3).await;
    let keys: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    // (key) -> acknowledged (partition, offset, seq) in send order
    let mut acked: HashMap<String, Vec<(u32, u64, u64)>> = HashMap::new();
    let mut seq = 0u64;
    for round in 0..15 {
        let via = (round % 3) + 1;
        let mut records = vec![];
        let mut sent = vec![];
        for k in &keys {
            for _ in 0..2 {
                records.push(json!({"key": k, "value": {"seq": seq, "key": k}}));
                sent.push((k.clone(), seq));
                seq += 1;
            }
        }
        let (s, b) = c
            .post(
                via,
                "/v1/topics/orders/records",
                json!({ "records": records }),
            )
            .await;
        assert_eq!(s, 200, "produce: {b}");
        let offs = b["offsets"].as_array().unwrap();
        assert_eq!(offs.len(), sent.len());
        for ((k, sq), o) in sent.iter().zip(offs) {
            let p = o["partition"].as_u64().unwrap() as u32;
            assert_eq!(
                p,
                partition_for_key(k.as_bytes(), 4),
                "key {k} in Kafka's partition"
            );
            acked
                .entry(k.clone())
                .or_default()
                .push((p, o["offset"].as_u64().unwrap(), *sq));
        }
    }
    // Per key: offsets strictly increase in send order.
    for (k, v) in &acked {
        for w in v.windows(2) {
            assert!(w[0].1 < w[1].1, "key {k}: send order kept");
        }
    }
    // Each partition, read through every node: dense, and every ack is at its offset.
    let mut by_offset: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for v in acked.values() {
        for (p, o, sq) in v {
            assert!(
                by_offset.insert((*p, *o), *sq).is_none(),
                "two records acked at one offset"
            );
        }
    }
    for via in c.ids() {
        for p in 0..4u32 {
            let recs = c.read_all(via, "orders", p).await;
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(r["offset"].as_u64().unwrap(), i as u64, "dense offsets");
                let sq = r["value"]["seq"].as_u64().unwrap();
                assert_eq!(
                    by_offset.get(&(p, i as u64)),
                    Some(&sq),
                    "ack matches the log"
                );
            }
            let n = by_offset.keys().filter(|(pp, _)| *pp == p).count();
            assert_eq!(
                recs.len(),
                n,
                "partition {p} holds exactly the acked records"
            );
        }
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_leader_does_not_acknowledge_and_majority_elects_a_new_one() {
    let c = TestCluster::start(3).await;
    c.create_topic("t", 1, 3).await;
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": "before"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let old = c.leader_of(1, "t", 0).await.expect("leader");
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != old).collect();
    c.faults.isolate(old, &c.ids());

    // The isolated leader must not acknowledge.
    let (s, b) = c
        .post(
            old,
            "/v1/topics/t/records",
            json!({"records": [{"value": "isolated"}]}),
        )
        .await;
    assert_ne!(s, 200, "an isolated leader acknowledged: {b}");
    assert!(
        b["outcome"] == "unknown" || b["outcome"] == "not_applied",
        "{b}"
    );

    // The majority elects a new leader and accepts writes.
    let mut acked = vec!["before".to_string()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, b) = c
            .post(
                others[0],
                "/v1/topics/t/records",
                json!({"records": [{"value": "majority"}]}),
            )
            .await;
        if s == 200 {
            acked.push("majority".into());
            break;
        }
        assert_eq!(
            b["outcome"], "not_applied",
            "only a not_applied failure is retried: {b}"
        );
        assert!(tokio::time::Instant::now() < deadline, "no new leader: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new = c.leader_of(others[0], "t", 0).await.expect("new leader");
    assert_ne!(new, old);

    c.faults.heal();
    // After healing, every node serves the same log: acked records present, the isolated
    // write absent (it never reached a majority).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for via in c.ids() {
        let recs = c.read_all(via, "t", 0).await;
        let values: Vec<String> = recs
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(values, acked, "via node {via}");
    }
    c.shutdown().await;
}

async fn produce_values(
    c: &TestCluster,
    via: u64,
    base: i64,
    n: i64,
) -> Option<Vec<(u32, u64, i64)>> {
    let recs: Vec<Value> = (base..base + n)
        .map(|v| json!({"partition": v % 2, "value": v}))
        .collect();
    let (s, b) = c
        .post(via, "/v1/topics/t/records", json!({ "records": recs }))
        .await;
    if s != 200 {
        return None;
    }
    let offs = b["offsets"].as_array().unwrap();
    Some(
        (base..base + n)
            .zip(offs)
            .map(|(v, o)| {
                (
                    o["partition"].as_u64().unwrap() as u32,
                    o["offset"].as_u64().unwrap(),
                    v,
                )
            })
            .collect(),
    )
}

fn check_log(acked: &[(u32, u64, i64)], partition: u32, recs: &[Value]) {
    let want: BTreeMap<u64, i64> = acked
        .iter()
        .filter(|a| a.0 == partition)
        .map(|a| (a.1, a.2))
        .collect();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["offset"].as_u64().unwrap(), i as u64, "dense");
        if let Some(v) = want.get(&(i as u64)) {
            assert_eq!(r["value"].as_i64().unwrap(), *v, "ack at offset {i}");
        }
    }
    assert!(
        want.keys().all(|o| (*o as usize) < recs.len()),
        "every ack present"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashed_follower_catches_up_and_crashed_leader_loses_nothing() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("t", 2, 3).await;
    let mut acked = vec![];
    let mut next = 0i64;
    for _ in 0..5 {
        acked.extend(produce_values(&c, 1, next, 20).await.expect("produce"));
        next += 20;
    }
    // Crash a follower of partition 0, keep writing, restart it.
    let leader = c.leader_of(1, "t", 0).await.expect("leader");
    let follower = c.ids().into_iter().find(|i| *i != leader).unwrap();
    c.crash(follower).await;
    let via = c.ids().into_iter().find(|i| *i != follower).unwrap();
    for _ in 0..5 {
        acked.extend(
            produce_values(&c, via, next, 20)
                .await
                .expect("produce with a follower down"),
        );
        next += 20;
    }
    c.restart(follower).await;
    // Crash the leader of partition 0 and write through the survivors until it succeeds.
    let leader = c.leader_of(via, "t", 0).await.expect("leader");
    c.crash(leader).await;
    let via = c
        .ids()
        .into_iter()
        .find(|i| *i != leader && *i != follower)
        .unwrap_or(follower);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut ok_after_crash = 0;
    while ok_after_crash < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress after leader crash"
        );
        if let Some(a) = produce_values(&c, via, next, 20).await {
            acked.extend(a);
            ok_after_crash += 1;
        }
        next += 20;
    }
    c.restart(leader).await;
    c.wait_ready().await;
    for via in c.ids() {
        for p in 0..2 {
            let recs = c.read_all(via, "t", p).await;
            check_log(&acked, p, &recs);
        }
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_lifecycle_create_conflict_describe_list_delete() {
    let c = TestCluster::start(3).await;
    let d = c.create_topic("life", 3, 2).await;
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    for p in d["partitions"].as_array().unwrap() {
        assert_eq!(p["replicas"].as_array().unwrap().len(), 2);
        assert!(
            p["leader"].as_u64().is_some(),
            "leader elected before 201: {d}"
        );
        assert_eq!(p["high_watermark"], 0);
        assert_eq!(p["log_start_offset"], 0);
    }
    let (s, b) = c
        .post(2, "/v1/topics", json!({"name": "life", "partitions": 1}))
        .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("topic_exists")));
    // Visible at once through every node.
    for id in c.ids() {
        let (s, l) = c.get(id, "/v1/topics").await;
        assert_eq!(s, 200);
        assert!(l["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "life"));
        let (s, _) = c.get(id, "/v1/topics/life").await;
        assert_eq!(s, 200);
    }
    let (s, cl) = c.get(3, "/v1/cluster").await;
    assert_eq!(s, 200);
    assert_eq!(cl["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(cl["partitions"].as_array().unwrap().len(), 3);
    let r = c
        .http
        .delete(c.url(3, "/v1/topics/life"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, b) = c.get(1, "/v1/topics/life").await;
    assert_eq!((s, b["error"].as_str()), (404, Some("topic_not_found")));
    c.shutdown().await;
}

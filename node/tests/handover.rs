//! Leadership moves without elections:
//! - a graceful stop hands leadership over: the partitions a stopping node led keep taking
//!   writes with a pause far shorter than an election after a lease expiry, and no send fails;
//! - leaderships return to their preferred replicas (each partition's first) after a restart,
//!   on demand (`POST /v1/cluster/rebalance-leaders`) and on their own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestCluster;
use raftka_client::{Client, NewRecord, Producer, ProducerConfig};

/// Partitions of the test topic.
const PARTITIONS: u32 = 6;
/// The longest pause allowed around the stop. Without a handover the test cluster's timings
/// (lease = election max 1000 ms, then 500-1000 ms more before a campaign) pause a led
/// partition for at least 1.5 s.
const MAX_STALL: Duration = Duration::from_millis(1000);

/// Each partition's acknowledgement times, from one sequential writer per partition.
type Acks = Arc<Mutex<BTreeMap<u32, Vec<Instant>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_stop_hands_leadership_over_without_an_election_pause() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("handover", PARTITIONS, 3).await;
    // The node to stop: the one leading the most partitions.
    let mut led: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let l = c.leader_of(1, "handover", p).await.expect("a leader");
        led.entry(l).or_default().push(p);
    }
    let (victim, victim_parts) = led
        .iter()
        .max_by_key(|(_, ps)| ps.len())
        .map(|(n, ps)| (*n, ps.clone()))
        .unwrap();
    let others: Vec<String> = c
        .ids()
        .into_iter()
        .filter(|i| *i != victim)
        .map(|i| c.addrs[&i].to_string())
        .collect();
    let producer = Producer::new(Client::new(others).unwrap(), ProducerConfig::default());
    let acks: Acks = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(6);
    let mut writers = Vec::new();
    for p in 0..PARTITIONS {
        let (producer, acks) = (producer.clone(), acks.clone());
        // Bounded: at most 20,000 sends or until `stop_at`.
        writers.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..20_000u32 {
                if Instant::now() >= stop_at {
                    break;
                }
                let record = NewRecord::string(format!("p{p}-{i}")).with_partition(p);
                let delivered = match producer.send("handover", record).await {
                    Ok(d) => d.await,
                    Err(e) => Err(e),
                };
                match delivered {
                    Ok(_) => acks
                        .lock()
                        .unwrap()
                        .entry(p)
                        .or_default()
                        .push(Instant::now()),
                    Err(e) => {
                        eprintln!("partition {p}: send {i} failed: {e}");
                        failed += 1;
                    }
                }
            }
            failed
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = Instant::now();
    c.stop(victim).await;
    let stop_took = stopping.elapsed();
    let mut failed = 0;
    for w in writers {
        failed += w.await.unwrap();
    }
    assert_eq!(failed, 0, "no send fails across a graceful stop");

    let acks = std::mem::take(&mut *acks.lock().unwrap());
    for p in 0..PARTITIONS {
        let times = &acks[&p];
        let stall = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        let was_led = victim_parts.contains(&p);
        eprintln!(
            "partition {p} (led by the stopped node {victim}: {was_led}): {} acks, longest pause {stall:?}",
            times.len()
        );
        assert!(
            times.iter().any(|t| *t > stopping + stop_took),
            "partition {p} took writes after the stop"
        );
        assert!(
            stall <= MAX_STALL,
            "partition {p}: a {stall:?} pause around the graceful stop of node {victim}"
        );
    }
    // The stopped node's partitions are led elsewhere now.
    for p in &victim_parts {
        let survivor = c.ids().into_iter().find(|i| *i != victim).unwrap();
        let leader = c.leader_of(survivor, "handover", *p).await;
        assert!(
            leader.is_some_and(|l| l != victim),
            "partition {p}: {leader:?}"
        );
    }
    c.restart(victim).await;
    c.shutdown().await;
}

/// Every partition's leader and preferred replica (its first), through node `via`.
async fn leaders_and_preferred(c: &TestCluster, via: u64, topic: &str) -> Vec<(Option<u64>, u64)> {
    let (_, d) = c.get(via, &format!("/v1/topics/{topic}")).await;
    d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["leader"].as_u64(), p["replicas"][0].as_u64().unwrap()))
        .collect()
}

/// Waits (bounded) until every partition is led by its preferred replica.
async fn wait_all_preferred(c: &TestCluster, via: u64, topic: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let lp = leaders_and_preferred(c, via, topic).await;
        if lp.iter().all(|(l, p)| *l == Some(*p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Crashes `victim`, waits until its preferred partitions are led elsewhere, writes to every
/// partition, and restarts it.
async fn move_leaders_away_and_back(c: &mut TestCluster, victim: u64, survivor: u64) {
    c.crash(victim).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lp = leaders_and_preferred(c, survivor, "preferred").await;
        if lp.iter().all(|(l, _)| l.is_some_and(|l| l != victim)) {
            break;
        }
        assert!(Instant::now() < deadline, "no failover: {lp:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in 0..PARTITIONS {
        let (s, b) = c
            .post(
                survivor,
                "/v1/topics/preferred/records",
                serde_json::json!({"records": [{"value": p, "partition": p}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    c.restart(victim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalance_leaders_returns_every_partition_to_its_preferred_replica() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("preferred", PARTITIONS, 3).await;
    assert!(wait_all_preferred(&c, 1, "preferred", Duration::from_secs(10)).await);
    move_leaders_away_and_back(&mut c, 2, 1).await;
    let lp = leaders_and_preferred(&c, 1, "preferred").await;
    let away = lp.iter().filter(|(l, p)| *l != Some(*p)).count();
    assert!(
        away > 0,
        "node 2's preferred partitions are led elsewhere: {lp:?}"
    );

    // Rebalance on demand, through a node that leads none of the moved partitions' groups;
    // the restarted node may need a moment to catch up (target_not_ready until then).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, b) = c
            .post(3, "/v1/cluster/rebalance-leaders", serde_json::json!({}))
            .await;
        assert_eq!(s, 200, "{b}");
        let moves = b["moves"].as_array().unwrap();
        eprintln!("rebalance: {b}");
        if moves.iter().all(|m| m["outcome"] == "moved") {
            break;
        }
        assert!(Instant::now() < deadline, "not every leader returned: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(wait_all_preferred(&c, 3, "preferred", Duration::from_secs(5)).await);
    // Nothing written was lost by the moves.
    for p in 0..PARTITIONS {
        assert_eq!(
            c.read_all(2, "preferred", p).await.len(),
            1,
            "partition {p}"
        );
    }
    let (s, b) = c
        .post(1, "/v1/cluster/rebalance-leaders", serde_json::json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["moves"], serde_json::json!([]), "{b}");
    assert_eq!(b["already_preferred"], PARTITIONS, "{b}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaders_return_to_preferred_replicas_on_their_own_after_a_restart() {
    let mut c = TestCluster::start_with(3, |cfg| cfg.leader_rebalance_interval_ms = 300).await;
    c.create_topic("preferred", PARTITIONS, 3).await;
    assert!(wait_all_preferred(&c, 1, "preferred", Duration::from_secs(10)).await);
    move_leaders_away_and_back(&mut c, 3, 1).await;
    assert!(
        wait_all_preferred(&c, 1, "preferred", Duration::from_secs(15)).await,
        "{:?}",
        leaders_and_preferred(&c, 1, "preferred").await
    );
    for p in 0..PARTITIONS {
        assert_eq!(
            c.read_all(3, "preferred", p).await.len(),
            1,
            "partition {p}"
        );
    }
    c.shutdown().await;
}

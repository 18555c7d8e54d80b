//! A graceful stop hands leadership over: the partitions a stopping node led keep taking writes
//! with a pause far shorter than an election after a lease expiry, and no send fails.
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

//! Exactly-once through the client `Producer` under leader kills (issue 6, acceptance 5c).
//!
//! Several idempotent `Producer`s send distinct values to a 3-partition, 3-replica topic while
//! the leader of one partition after another is killed with `kill -9` and restarted through
//! `scripts/cluster.sh`. The producers resend after timeouts, broken connections and
//! `write_outcome_unknown`, with the same producer id and sequences. At the end the whole log is
//! read through every node and checked:
//!
//! - every node serves the same log;
//! - no value appears twice (a resend was never stored again);
//! - every value whose send was acknowledged is present, at its acknowledged partition and
//!   offset.
//!
//! Bounded: at most `MAX_PER_PRODUCER` records per producer, `KILLS` kills, and a deadline.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test: panics with a message

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ok, read_partition, Cluster};
use raftka_client::{
    Client, DeliveryFuture, NewRecord, Outcome, Producer, ProducerConfig, RecordOffset,
};

const TOPIC: &str = "eo";
const PARTITIONS: u32 = 3;
const PRODUCERS: usize = 4;
const MAX_PER_PRODUCER: u64 = 20_000;
const KILLS: u32 = 3;

/// Waits until every partition of the topic has a leader, as node-independent as the client.
async fn leaders(client: &Client, deadline: Instant) -> Vec<u64> {
    loop {
        if let Ok(t) = client.describe_topic(TOPIC).await {
            let l: Vec<u64> = t.partitions.iter().filter_map(|p| p.leader).collect();
            if l.len() == t.partitions.len() {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "partitions without a leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn idempotent_producers_under_leader_kills_store_each_value_at_most_once() {
    let cluster = Cluster::start();
    ok(
        &cluster.raftka(&["topic", "create", TOPIC, "-p", "3", "-r", "3"]),
        "topic create",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = Arc::new(cluster);
    rt.block_on(run(cluster));
}

async fn run(cluster: Arc<Cluster>) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let addrs: Vec<String> = (1..=3).map(|i| cluster.addr(i)).collect();
    let client = Client::new(&addrs).expect("client");
    leaders(&client, deadline).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (client, stop) = (client.clone(), stop.clone());
        producers.push(tokio::spawn(async move {
            let producer = Producer::new(client, ProducerConfig::default());
            assert!(producer.producer_id().is_some(), "idempotent by default");
            let mut sent: Vec<(String, DeliveryFuture)> = Vec::new();
            let mut n = 0u64;
            while n < MAX_PER_PRODUCER && !stop.load(Ordering::Relaxed) {
                let value = format!("p{p}-{n}");
                let record = NewRecord::string(value.clone()).with_key(format!("k{}", n % 11));
                match producer.send(TOPIC, record).await {
                    Ok(d) => sent.push((value, d)),
                    // Refused before queueing (topic lookup failed): not sent at all.
                    Err(e) => assert_eq!(e.outcome(), Outcome::NotApplied, "{e}"),
                }
                n += 1;
                // About 500 records/s per producer, so that sends span every kill.
                if n.is_multiple_of(5) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            producer.flush().await.expect("flush");
            let mut acked: Vec<(String, RecordOffset)> = Vec::new();
            let mut failed: BTreeMap<String, u64> = BTreeMap::new();
            for (value, d) in sent {
                match d.await {
                    Ok(at) => acked.push((value, at)),
                    Err(e) => {
                        *failed
                            .entry(format!(
                                "{:?}: {}",
                                e.outcome(),
                                e.name().unwrap_or("client")
                            ))
                            .or_default() += 1
                    }
                }
            }
            (n, acked, failed, producer.stats())
        }));
    }

    // The faults: kill the leader of one partition after another, then restart it.
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let l = leaders(&client, deadline).await;
        let victim = l[(round % PARTITIONS) as usize];
        eprintln!(
            "[{:>6.1}s] kill -9 node {victim}, leader of partition {}",
            started.elapsed().as_secs_f64(),
            round % PARTITIONS
        );
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.kill(victim))
            .await
            .expect("kill");
        tokio::time::sleep(Duration::from_secs(4)).await;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.restart(victim))
            .await
            .expect("restart");
        eprintln!(
            "[{:>6.1}s] node {victim} restarted",
            started.elapsed().as_secs_f64()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<String, RecordOffset> = HashMap::new();
    let (mut sent, mut retries, mut unknown_retries, mut duplicates) = (0, 0, 0, 0);
    for p in producers {
        let (n, a, failed, stats) = p.await.expect("producer task");
        eprintln!(
            "producer: {n} sent, {} acknowledged, failed {failed:?}, {stats:?}",
            a.len()
        );
        sent += n;
        retries += stats.retries;
        unknown_retries += stats.unknown_retries;
        duplicates += stats.duplicate_batches;
        acked.extend(a);
    }
    eprintln!(
        "[{:>6.1}s] {sent} sent, {} acknowledged, {retries} resends ({unknown_retries} after an unknown outcome), {duplicates} duplicate batches answered with their original offsets",
        started.elapsed().as_secs_f64(),
        acked.len()
    );
    assert!(Instant::now() < deadline, "the run overran its deadline");
    assert!(
        retries > 0,
        "the kills should have made the producers resend"
    );
    assert!(
        acked.len() as u64 * 10 >= sent * 9,
        "most records should be acknowledged: {} of {sent}",
        acked.len()
    );

    // Read the whole log through every node.
    leaders(&client, deadline).await;
    let mut first: Option<Vec<Vec<(u64, String)>>> = None;
    for addr in &addrs {
        let via = Client::new([addr]).expect("client");
        let mut log = Vec::new();
        for p in 0..PARTITIONS {
            log.push(read_partition(&via, TOPIC, p).await);
        }
        match &first {
            None => first = Some(log),
            Some(f) => assert!(f == &log, "node {addr} serves a different log"),
        }
    }
    let log = first.expect("three reads");
    let mut seen: HashMap<&str, (u32, u64)> = HashMap::new();
    let mut stored = 0;
    for (p, records) in log.iter().enumerate() {
        for (offset, value) in records {
            stored += 1;
            if let Some(prev) = seen.insert(value, (p as u32, *offset)) {
                panic!("value {value} stored twice: at {prev:?} and at ({p}, {offset})");
            }
        }
    }
    for (value, at) in &acked {
        match seen.get(value.as_str()) {
            Some(&(p, o)) => assert_eq!(
                (p, o),
                (at.partition, at.offset),
                "value {value} acknowledged at {at:?}"
            ),
            None => panic!("acknowledged value {value} ({at:?}) is missing"),
        }
    }
    eprintln!(
        "verified through all 3 nodes: {stored} records, no value twice, all {} acknowledged values at their offsets",
        acked.len()
    );
}

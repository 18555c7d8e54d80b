//! A rolling restart (`scripts/cluster.sh rolling-restart`) of a 5-node cluster under load:
//! idempotent `Producer`s keep sending while every node is restarted in turn, each with a
//! graceful stop that hands its leaderships over. No send fails, every acknowledged value is read
//! back once at its offset through every node, and the longest pause between acknowledgements
//! is reported.
//!
//! Bounded: at most `MAX_PER_PRODUCER` records per producer and a deadline.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test: panics with a message

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ok, read_partition, Cluster};
use raftka_client::{Client, NewRecord, Producer, ProducerConfig, RecordOffset};

const TOPIC: &str = "rolling";
const NODES: u16 = 5;
const PARTITIONS: u32 = 6;
const PRODUCERS: usize = 2;
const MAX_PER_PRODUCER: u64 = 100_000;

#[test]
fn rolling_restart_under_load_fails_no_send_and_loses_no_record() {
    let cluster = Cluster::start_n(NODES);
    ok(
        &cluster.raftka(&["topic", "create", TOPIC, "-p", "6", "-r", "3"]),
        "topic create",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(Arc::new(cluster)));
}

/// What one producer saw: values sent, acknowledged values with their offsets, failures, and
/// the longest time between two consecutive acknowledgements.
struct Report {
    sent: u64,
    acked: Vec<(String, RecordOffset)>,
    failed: Vec<String>,
    longest_pause: Duration,
}

async fn produce(client: Client, p: usize, stop: Arc<AtomicBool>) -> Report {
    let producer = Producer::new(client, ProducerConfig::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
    // Acknowledgements are awaited in send order, by a second task, to time the pauses.
    let collector = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut failed = Vec::new();
        let mut last = Instant::now();
        let mut longest_pause = Duration::ZERO;
        while let Some((value, delivery)) = rx.recv().await {
            let delivery: raftka_client::DeliveryFuture = delivery;
            match delivery.await {
                Ok(at) => {
                    let now = Instant::now();
                    longest_pause = longest_pause.max(now - last);
                    last = now;
                    acked.push((value, at));
                }
                Err(e) => failed.push(format!("{value}: {e}")),
            }
        }
        (acked, failed, longest_pause)
    });
    let mut n = 0u64;
    while n < MAX_PER_PRODUCER && !stop.load(Ordering::Relaxed) {
        let value = format!("p{p}-{n}");
        let record = NewRecord::string(value.clone()).with_key(format!("k{}", n % 13));
        match producer.send(TOPIC, record).await {
            Ok(d) => tx.send((value, d)).await.expect("collector"),
            Err(e) => panic!("send {value} refused: {e}"),
        }
        n += 1;
        // About 400 records/s per producer.
        if n.is_multiple_of(4) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    producer.flush().await.expect("flush");
    drop(tx);
    let (acked, failed, longest_pause) = collector.await.expect("collector");
    Report {
        sent: n,
        acked,
        failed,
        longest_pause,
    }
}

async fn run(cluster: Arc<Cluster>) {
    let started = Instant::now();
    let addrs: Vec<String> = (1..=u64::from(NODES)).map(|i| cluster.addr(i)).collect();
    let client = Client::new(&addrs).expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(client.clone(), p, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let c = cluster.clone();
    let out =
        tokio::task::spawn_blocking(move || c.script(&["rolling-restart", "--timeout", "120"]))
            .await
            .expect("rolling restart");
    eprintln!(
        "[{:>6.1}s] rolling restart done: {out}",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<String, RecordOffset> = HashMap::new();
    let mut sent = 0;
    let mut longest = Duration::ZERO;
    for p in producers {
        let r = p.await.expect("producer task");
        assert!(r.failed.is_empty(), "failed sends: {:?}", r.failed);
        sent += r.sent;
        longest = longest.max(r.longest_pause);
        acked.extend(r.acked);
    }
    eprintln!(
        "[{:>6.1}s] {sent} sent, {} acknowledged, longest pause between acknowledgements {} ms",
        started.elapsed().as_secs_f64(),
        acked.len(),
        longest.as_millis()
    );
    assert_eq!(acked.len() as u64, sent, "every send acknowledged");

    // Read the whole log through every node: the same log, no value twice, every acknowledged
    // value at its offset.
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
    let log = first.expect("reads");
    let mut seen: HashMap<&str, (u32, u64)> = HashMap::new();
    for (p, records) in log.iter().enumerate() {
        for (offset, value) in records {
            if let Some(prev) = seen.insert(value, (p as u32, *offset)) {
                panic!("value {value} stored twice: at {prev:?} and ({p}, {offset})");
            }
        }
    }
    for (value, at) in &acked {
        assert_eq!(
            seen.get(value.as_str()),
            Some(&(at.partition, at.offset)),
            "acknowledged value {value} at {at:?}"
        );
    }
    eprintln!(
        "verified through all {NODES} nodes: {} records, every acknowledged value once at its offset",
        seen.len()
    );
}

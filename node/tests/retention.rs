//! Retention on in-process 3-node clusters: by size (with the data directories measured), by
//! time, a follower catching up past the log start, and config validation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{dir_bytes, TestCluster};
use openraft::async_runtime::WatchReceiver;
use raft_store::ReadLimits;
use serde_json::{json, Value};

/// `len` pseudo-random hex digits, different for every `seed`.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap_or('0')
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces `n` records of about `size` bytes to partition 0; returns `(offset, seq)` acked.
async fn produce(
    c: &TestCluster,
    via: u64,
    topic: &str,
    first: u64,
    n: u64,
    size: usize,
) -> Vec<(u64, u64)> {
    // Incompressible padding (RocksDB compresses its files: repeated bytes would measure nothing).
    let records: Vec<Value> = (first..first + n)
        .map(|i| json!({"partition": 0, "value": {"seq": i, "pad": noise(i, size)}}))
        .collect();
    let (s, b) = c
        .post(
            via,
            &format!("/v1/topics/{topic}/records"),
            json!({ "records": records }),
        )
        .await;
    assert_eq!(s, 200, "produce: {b}");
    b["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .zip(first..)
        .map(|(o, seq)| (o["offset"].as_u64().unwrap(), seq))
        .collect()
}

async fn offsets(c: &TestCluster, via: u64, topic: &str) -> (u64, u64) {
    let (s, b) = c
        .get(via, &format!("/v1/topics/{topic}/partitions/0/offsets"))
        .await;
    assert_eq!(s, 200, "{b}");
    (
        b["earliest"].as_u64().unwrap(),
        b["latest"].as_u64().unwrap(),
    )
}

async fn fetch(c: &TestCluster, via: u64, topic: &str, offset: u64) -> (u16, Value) {
    c.get(
        via,
        &format!("/v1/topics/{topic}/partitions/0/records?offset={offset}&max_records=100"),
    )
    .await
}

/// Waits until the partition's log start reaches `at_least`, returning it.
async fn wait_log_start(
    c: &TestCluster,
    via: u64,
    topic: &str,
    at_least: u64,
    within: Duration,
) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let (start, _) = offsets(c, via, topic).await;
        if start >= at_least {
            return start;
        }
        assert!(
            Instant::now() < deadline,
            "log start {start} did not reach {at_least} in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn small_storage(cfg: &mut raftka_node::Config) {
    cfg.storage_write_buffer_mb = 1;
    cfg.storage_max_wal_mb = 4;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_by_size_bounds_the_data_directory_and_keeps_the_newest_records() {
    let c = TestCluster::start_with(3, small_storage).await;
    // 256 KiB per partition; ~1 KiB records, 200 per request: ~200 KiB a request.
    c.create_topic_with(
        "sized",
        1,
        3,
        json!({"retention.bytes": 262_144, "retention.ms": -1}),
    )
    .await;
    let mut acked = Vec::new();
    let mut series = Vec::new();
    let started = Instant::now();
    let rounds = 400u64; // ~80 MB of records
    for r in 0..rounds {
        acked.extend(produce(&c, (r % 3) + 1, "sized", r * 200, 200, 1000).await);
        if r % 40 == 39 {
            let du: Vec<u64> = c.ids().iter().map(|i| dir_bytes(&c.data_dir(*i))).collect();
            series.push((r + 1, started.elapsed().as_millis(), du));
        }
    }
    let produced_bytes = rounds * 200 * 1000;
    // Let a few retention rounds and flushes pass.
    let hw = acked.last().unwrap().0 + 1;
    let start = wait_log_start(&c, 1, "sized", hw - 400, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let du: Vec<u64> = c.ids().iter().map(|i| dir_bytes(&c.data_dir(*i))).collect();
    series.push((rounds, started.elapsed().as_millis(), du.clone()));
    for (round, ms, du) in &series {
        eprintln!(
            "retention.bytes disk use: after {round} requests, {ms} ms: {du:?} bytes per node"
        );
    }
    eprintln!("produced {produced_bytes} record bytes; log start {start}, hw {hw}");
    // Without retention each node holds more than the record bytes produced (measured: 44 MB
    // for 40 MB). With it, disk use is bounded by the WAL and memtable limits and the few
    // files compaction has not yet met, whatever the volume produced.
    for (id, bytes) in c.ids().iter().zip(&du) {
        assert!(
            *bytes < 24_000_000,
            "node {id} holds {bytes} bytes after {produced_bytes} produced: not reclaimed"
        );
    }
    // Between the limit and the limit plus one batch is kept.
    let kept = hw - start;
    assert!((200..=400).contains(&kept), "kept {kept} records");
    // Below the log start: out of range, with the bounds; at and above: the exact records.
    let (s, b) = fetch(&c, 2, "sized", 0).await;
    assert_eq!(s, 416, "{b}");
    assert_eq!(b["error"], "offset_out_of_range");
    assert_eq!(b["log_start_offset"].as_u64(), Some(start), "{b}");
    for via in c.ids() {
        let (s, b) = fetch(&c, via, "sized", start).await;
        assert_eq!(s, 200, "{b}");
        let recs = b["records"].as_array().unwrap();
        assert!(!recs.is_empty());
        for r in recs {
            let o = r["offset"].as_u64().unwrap();
            let (ao, seq) = acked[o as usize];
            assert_eq!(ao, o);
            assert_eq!(r["value"]["seq"].as_u64(), Some(seq), "offset {o}");
        }
    }
    // Every replica agrees on the log start, and purged its log below it.
    for id in c.ids() {
        let h = c.replica(id, "sized", 0).unwrap();
        assert_eq!(h.progress.borrow().log_start_offset, start, "node {id}");
        let purged = h
            .raft
            .metrics()
            .borrow_watched()
            .purged
            .as_ref()
            .map(|l| l.index());
        assert!(purged.is_some(), "node {id} purged its log");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_by_time_deletes_old_records_and_keeps_recent_ones() {
    let c = TestCluster::start(3).await;
    c.create_topic_with("timed", 1, 3, json!({"retention.ms": 3000}))
        .await;
    let now = now_ms();
    // Old by their own (producer) timestamps, then recent ones.
    let old: Vec<Value> = (0..10)
        .map(|i| json!({"partition": 0, "value": i, "timestamp_ms": now - 60_000 + i}))
        .collect();
    let (s, b) = c
        .post(1, "/v1/topics/timed/records", json!({"records": old}))
        .await;
    assert_eq!(s, 200, "{b}");
    let recent: Vec<Value> = (10..20)
        .map(|i| json!({"partition": 0, "value": i}))
        .collect();
    let (s, b) = c
        .post(2, "/v1/topics/timed/records", json!({"records": recent}))
        .await;
    assert_eq!(s, 200, "{b}");
    // The old batch goes at the next checks; the recent one stays.
    assert_eq!(
        wait_log_start(&c, 1, "timed", 10, Duration::from_secs(5)).await,
        10
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        offsets(&c, 3, "timed").await,
        (10, 20),
        "recent records kept"
    );
    let (s, b) = fetch(&c, 3, "timed", 10).await;
    assert_eq!(s, 200);
    let values: Vec<u64> = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_u64().unwrap())
        .collect();
    assert_eq!(values, (10..20).collect::<Vec<_>>());
    // Timestamp lookups skip what is gone.
    let (_, b) = c
        .get(
            1,
            &format!(
                "/v1/topics/timed/partitions/0/offsets?timestamp_ms={}",
                now - 120_000
            ),
        )
        .await;
    assert_eq!(b["offset"].as_u64(), Some(10), "{b}");
    // Once they age out too, the log is empty and starts at the high watermark.
    assert_eq!(
        wait_log_start(&c, 1, "timed", 20, Duration::from_secs(8)).await,
        20
    );
    let (s, b) = c
        .post(
            1,
            "/v1/topics/timed/records",
            json!({"records": [{"partition": 0, "value": 20}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["offsets"][0]["offset"].as_u64(), Some(20));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_down_past_retention_catches_up_from_the_boundary_snapshot() {
    let mut c = TestCluster::start(3).await;
    c.create_topic_with(
        "catchup",
        1,
        3,
        json!({"retention.bytes": 50_000, "retention.ms": -1}),
    )
    .await;
    let mut acked = produce(&c, 1, "catchup", 0, 100, 200).await;
    let leader = c.leader_of(1, "catchup", 0).await.unwrap();
    let follower = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let follower_end = {
        let h = c.replica(follower, "catchup", 0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.progress.borrow().high_watermark < 100 {
            assert!(
                Instant::now() < deadline,
                "follower caught up before the crash"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h.raft.metrics().borrow_watched().last_log_index.unwrap()
    };
    c.crash(follower).await;
    // Well past the follower's log end, and past the leader's purge of it.
    for r in 1..40u64 {
        acked.extend(produce(&c, leader, "catchup", r * 100, 100, 200).await);
    }
    let hw = 4000;
    let start = wait_log_start(&c, leader, "catchup", hw - 500, Duration::from_secs(10)).await;
    assert!(start > 100, "the log start moved past the follower's end");
    let h = c.replica(leader, "catchup", 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let purged = h
            .raft
            .metrics()
            .borrow_watched()
            .purged
            .as_ref()
            .map(|l| l.index());
        if purged.is_some_and(|p| p > follower_end) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader purged past the follower: {purged:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.restart(follower).await;
    c.wait_ready().await;
    let f = c.replica(follower, "catchup", 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = *f.progress.borrow();
        let lp = *h.progress.borrow();
        if p.high_watermark == lp.high_watermark && p.log_start_offset == lp.log_start_offset {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "follower did not catch up: {p:?} vs {lp:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        f.raft.metrics().borrow_watched().snapshot.is_some(),
        "the follower installed the boundary snapshot"
    );
    // The follower's own copy holds the same records as the leader's.
    let p = *f.progress.borrow();
    let all = ReadLimits {
        max_records: usize::MAX,
        max_bytes: usize::MAX,
    };
    let mine = f
        .reader
        .read(p.log_start_offset, p.high_watermark, all)
        .unwrap();
    let theirs = h
        .reader
        .read(p.log_start_offset, p.high_watermark, all)
        .unwrap();
    assert_eq!(mine.len() as u64, p.high_watermark - p.log_start_offset);
    assert_eq!(mine, theirs);
    for r in &mine {
        let v: Value = serde_json::from_slice(&r.record.value).unwrap();
        assert_eq!(v["seq"].as_u64(), Some(acked[r.offset as usize].1));
    }
    // And it keeps following new writes.
    produce(&c, leader, "catchup", 4000, 10, 200).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.progress.borrow().high_watermark < 4010 {
        assert!(
            Instant::now() < deadline,
            "follower follows after the catch-up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_configs_are_validated_altered_and_enforced() {
    let c = TestCluster::start(3).await;
    for bad in [
        json!({"retention.ms": -5}),
        json!({"retention.bytes": "lots"}),
        json!({"max.message.bytes": 0}),
    ] {
        let (s, b) = c
            .post(
                1,
                "/v1/topics",
                json!({"name": "bad", "partitions": 1, "configs": bad}),
            )
            .await;
        assert_eq!(s, 400, "{b}");
        assert_eq!(b["error"], "invalid_topic");
    }
    c.create_topic_with("conf", 1, 3, json!({"max.message.bytes": 10_000}))
        .await;
    let (s, b) = c
        .patch(
            1,
            "/v1/topics/conf/configs",
            json!({"configs": {"retention.ms": "abc"}}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = c
        .patch(
            1,
            "/v1/topics/conf/configs",
            json!({"configs": {"nope": 1}}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = c
        .patch(
            1,
            "/v1/topics/missing/configs",
            json!({"configs": {"retention.ms": 1}}),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    // Lower the record limit, then a record over it is refused and nothing is written.
    let (s, b) = c
        .patch(
            2,
            "/v1/topics/conf/configs",
            json!({"configs": {"max.message.bytes": 200, "retention.ms": 86_400_000}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["configs"]["max.message.bytes"], "200");
    // Node 3 reads its own replica of the metadata, which may be a moment behind the write.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (s, b) = loop {
        let (s, b) = c.get(3, "/v1/topics/conf/configs").await;
        if b["effective"]["retention.ms"] == 86_400_000 || Instant::now() > deadline {
            break (s, b);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s, 200);
    assert_eq!(b["effective"]["retention.ms"], 86_400_000);
    assert_eq!(b["effective"]["retention.bytes"], -1);
    let (s, _) = c
        .post(
            1,
            "/v1/topics/conf/records",
            json!({"records": [{"value": "small"}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = c
        .post(
            1,
            "/v1/topics/conf/records",
            json!({"records": [{"value": "x".repeat(300)}]}),
        )
        .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["outcome"], "not_applied");
    assert_eq!(offsets(&c, 1, "conf").await, (0, 1), "the log is unchanged");
    // A reset (null) goes back to the default.
    let (s, b) = c
        .patch(
            1,
            "/v1/topics/conf/configs",
            json!({"configs": {"max.message.bytes": null}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["configs"].get("max.message.bytes").is_none(), "{b}");
    let (s, _) = c
        .post(
            1,
            "/v1/topics/conf/records",
            json!({"records": [{"value": "x".repeat(300)}]}),
        )
        .await;
    assert_eq!(s, 200);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_member_resets_to_the_log_start_when_its_commit_fell_below_it() {
    use raftka_client::{Client, Consumer, ConsumerConfig};
    let c = TestCluster::start(3).await;
    c.create_topic_with("reset", 1, 3, json!({"retention.ms": -1}))
        .await;
    let batch = |from: u64| -> Vec<Value> {
        (from..from + 10)
            .map(|i| json!({"partition": 0, "value": i}))
            .collect()
    };
    let (s, _) = c
        .post(1, "/v1/topics/reset/records", json!({"records": batch(0)}))
        .await;
    assert_eq!(s, 200);
    let addrs: Vec<String> = c.addrs.values().map(|a| a.to_string()).collect();
    let client = Client::new(&addrs).unwrap();
    let mut cfg = ConsumerConfig::new("slow", &["reset"]);
    cfg.auto_commit_interval = None;
    cfg.poll_wait = Duration::from_millis(100);
    let mut a = Consumer::join(client.clone(), cfg.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got == 0 {
        assert!(Instant::now() < deadline, "first consumer reads");
        got = a.poll().await.unwrap().len();
    }
    a.seek("reset", 0, 3).unwrap();
    a.commit().await.unwrap();
    a.close().await.unwrap();
    // Retention overtakes the committed offset 3.
    let (s, _) = c
        .post(2, "/v1/topics/reset/records", json!({"records": batch(10)}))
        .await;
    assert_eq!(s, 200);
    let (s, b) = c
        .patch(
            1,
            "/v1/topics/reset/configs",
            json!({"configs": {"retention.bytes": 1}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        wait_log_start(&c, 1, "reset", 10, Duration::from_secs(5)).await,
        10
    );
    let (_, g) = c.get(3, "/v1/groups/slow/offsets").await;
    assert_eq!(g["offsets"][0]["offset"].as_u64(), Some(3), "{g}");
    // A new member resumes from the committed 3, gets offset_out_of_range, and resets to the
    // earliest retained record.
    let mut b = Consumer::join(client, cfg).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut first = None;
    while first.is_none() {
        assert!(Instant::now() < deadline, "second consumer reads");
        first = b.poll().await.unwrap().first().map(|r| r.record.offset);
    }
    assert_eq!(first, Some(10));
    b.close().await.unwrap();
    c.shutdown().await;
}

//! Quiescence of idle partitions: idle groups go quiet on every replica, wake on use without
//! losing or refusing anything, and still fail over when their leader's node dies or is cut
//! off while they are quiet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestCluster;
use serde_json::json;

const PARTITIONS: u32 = 4;

/// How many replicas of topic `t`'s partitions are quiesced on each running node.
fn quiesced(c: &TestCluster, ids: &[u64]) -> usize {
    ids.iter()
        .map(|id| {
            (0..PARTITIONS as usize)
                .filter(|p| {
                    c.replica(*id, "t", *p)
                        .is_some_and(|h| h.quiet.is_quiesced())
                })
                .count()
        })
        .sum()
}

/// Waits until every replica of every partition on `ids` is quiesced.
async fn wait_all_quiet(c: &TestCluster, ids: &[u64]) {
    let want = ids.len() * PARTITIONS as usize;
    for _ in 0..300 {
        if quiesced(c, ids) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "only {} of {want} replicas quiesced within 15 s",
        quiesced(c, ids)
    );
}

/// Produces one record to partition `p` through `via`, retrying what definitely did not
/// happen (`not_applied`) until `within`; returns its offset.
async fn produce(c: &TestCluster, via: u64, p: u32, value: &str, within: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (s, b) = c
            .post(
                via,
                "/v1/topics/t/records",
                json!({"records": [{"partition": p, "value": value}]}),
            )
            .await;
        if s == 200 {
            return b["offsets"][0]["offset"].as_u64().expect("offset");
        }
        assert_eq!(
            b["outcome"], "not_applied",
            "only not_applied is retried: {b}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "partition {p} did not take a write within {within:?}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn values(recs: &[serde_json::Value]) -> Vec<String> {
    recs.iter()
        .map(|r| r["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_partitions_quiesce_and_wake_on_produce_and_fetch() {
    let c = TestCluster::start_with(3, |cfg| cfg.quiesce_after_ms = 500).await;
    c.create_topic("t", PARTITIONS, 3).await;
    for p in 0..PARTITIONS {
        produce(&c, 1, p, "first", Duration::from_secs(10)).await;
    }
    wait_all_quiet(&c, &c.ids()).await;

    // Quiet for a while (several election timeouts): no election happens meanwhile.
    let leaders: Vec<Option<u64>> = futures_leaders(&c).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        futures_leaders(&c).await,
        leaders,
        "a quiet group changed leader"
    );
    assert_eq!(quiesced(&c, &c.ids()), 3 * PARTITIONS as usize);
    // Quiet followers are still in sync: they keep confirming the leader's log.
    let (s, b) = c.get(1, "/v1/cluster").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["under_replicated_partitions"], 0, "{b}");

    // A fetch on a quiet leader answers (it renews the lease first) ...
    for p in 0..PARTITIONS {
        assert_eq!(values(&c.read_all(2, "t", p).await), ["first"]);
    }
    // ... and a write through any node is acknowledged at once, at the next offset.
    for p in 0..PARTITIONS {
        let at = produce(&c, 3, p, "second", Duration::from_secs(2)).await;
        assert_eq!(at, 1, "partition {p}");
    }
    for p in 0..PARTITIONS {
        assert_eq!(values(&c.read_all(1, "t", p).await), ["first", "second"]);
    }
    // Idle again: quiet again.
    wait_all_quiet(&c, &c.ids()).await;
    c.shutdown().await;
}

async fn futures_leaders(c: &TestCluster) -> Vec<Option<u64>> {
    let mut out = vec![];
    for p in 0..PARTITIONS {
        out.push(c.leader_of(1, "t", p).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quiet_partitions_fail_over_when_their_leader_crashes() {
    let mut c = TestCluster::start_with(3, |cfg| cfg.quiesce_after_ms = 500).await;
    c.create_topic("t", PARTITIONS, 3).await;
    for p in 0..PARTITIONS {
        produce(&c, 1, p, "before", Duration::from_secs(10)).await;
    }
    wait_all_quiet(&c, &c.ids()).await;
    // Crash the node that leads partition 0 while everything is quiet.
    let old = c.leader_of(1, "t", 0).await.expect("leader");
    c.crash(old).await;
    let alive: Vec<u64> = c.ids().into_iter().filter(|i| *i != old).collect();
    let started = std::time::Instant::now();
    for p in 0..PARTITIONS {
        produce(&c, alive[0], p, "after", Duration::from_secs(15)).await;
    }
    let took = started.elapsed();
    // The survivors detect the silence after an election timeout (1 s in tests) and elect.
    assert!(took < Duration::from_secs(10), "fail-over took {took:?}");
    assert_ne!(c.leader_of(alive[0], "t", 0).await, Some(old));
    for p in 0..PARTITIONS {
        for via in &alive {
            assert_eq!(values(&c.read_all(*via, "t", p).await), ["before", "after"]);
        }
    }
    // The crashed node comes back, catches up, and everything quiets down again.
    c.restart(old).await;
    c.wait_ready().await;
    wait_all_quiet(&c, &c.ids()).await;
    for p in 0..PARTITIONS {
        assert_eq!(values(&c.read_all(old, "t", p).await), ["before", "after"]);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_quiet_leader_acknowledges_nothing_and_the_majority_moves_on() {
    let c = TestCluster::start_with(3, |cfg| cfg.quiesce_after_ms = 500).await;
    c.create_topic("t", PARTITIONS, 3).await;
    for p in 0..PARTITIONS {
        produce(&c, 1, p, "before", Duration::from_secs(10)).await;
    }
    wait_all_quiet(&c, &c.ids()).await;
    let old = c.leader_of(1, "t", 0).await.expect("leader");
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != old).collect();
    c.faults.isolate(old, &c.ids());

    // The quiet, isolated leader cannot renew its lease: no acknowledgement.
    let (s, b) = c
        .post(
            old,
            "/v1/topics/t/records",
            json!({"records": [{"partition": 0, "value": "isolated"}]}),
        )
        .await;
    assert_ne!(s, 200, "an isolated quiet leader acknowledged: {b}");
    // Nor does it serve a read it cannot confirm.
    let (s, b) = c
        .get(old, "/v1/topics/t/partitions/0/records?offset=0")
        .await;
    assert_ne!(s, 200, "an isolated quiet leader served a read: {b}");

    // The majority elects and takes writes.
    produce(&c, others[0], 0, "majority", Duration::from_secs(15)).await;
    c.faults.heal();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for via in c.ids() {
        assert_eq!(
            values(&c.read_all(via, "t", 0).await),
            ["before", "majority"],
            "via node {via}"
        );
    }
    c.shutdown().await;
}

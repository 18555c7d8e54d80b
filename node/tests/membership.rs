//! Growing, shrinking and healing a live cluster, in process: nodes join with `--join` and a
//! rebalance moves replicas onto them, a node is decommissioned while the metadata leader
//! crashes half way, a dead node is replaced (metadata voters repaired, replicas rebuilt from
//! the survivors), and bad requests change nothing. Throughout, a producer writes; every
//! acknowledged record must be read back once, at its offset, through every node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestCluster;
use serde_json::{json, Value};

/// An acknowledged record: (partition, offset) -> value.
type Acked = BTreeMap<(u64, u64), String>;

/// Writes one keyed record at a time through the given nodes until stopped, at most 20,000
/// records or 240 s; returns what was acknowledged. Failed writes are not retried.
fn spawn_producer(
    http: reqwest::Client,
    urls: Vec<String>,
    topic: &str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Acked> {
    let topic = topic.to_string();
    tokio::spawn(async move {
        let mut acked = Acked::new();
        let started = Instant::now();
        for i in 0..20_000u64 {
            if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(240) {
                break;
            }
            let url = format!(
                "{}/v1/topics/{topic}/records",
                urls[i as usize % urls.len()]
            );
            let value = format!("v{i}");
            let body = json!({"records": [{"key": format!("k{}", i % 17), "value": value}]});
            let Ok(r) = http
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
            else {
                continue;
            };
            if r.status().as_u16() == 200 {
                let b: Value = r.json().await.unwrap_or(Value::Null);
                let o = &b["offsets"][0];
                if let (Some(p), Some(off)) = (o["partition"].as_u64(), o["offset"].as_u64()) {
                    acked.insert((p, off), value);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acked
    })
}

/// Waits until every running node's metadata holds the node registry (filled by the
/// controller shortly after the cluster forms).
async fn wait_registry(c: &TestCluster, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .nodes
        .values()
        .flatten()
        .any(|r| r.node.metadata().cluster.nodes.len() < n)
    {
        assert!(Instant::now() < deadline, "node registry not filled in 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET /v1/cluster` through `via` until `ok` holds, for at most `secs`.
async fn wait_cluster(
    c: &TestCluster,
    via: u64,
    secs: u64,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (s, b) = c.get(via, "/v1/cluster").await;
        if s == 200 {
            if ok(&b) {
                return b;
            }
            last = b;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: not reached in {secs}s; last GET /v1/cluster: {last:#}");
}

fn node_entry(cluster: &Value, id: u64) -> Option<&Value> {
    cluster["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"].as_u64() == Some(id))
}

fn state_of(cluster: &Value, id: u64) -> Option<String> {
    node_entry(cluster, id).and_then(|n| n["state"].as_str().map(String::from))
}

fn voters(cluster: &Value) -> BTreeSet<u64> {
    cluster["nodes"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .filter(|n| n["metadata_role"] == "voter")
                .filter_map(|n| n["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

fn moves_done(cluster: &Value) -> bool {
    cluster["reassignments"]
        .as_array()
        .is_some_and(|m| m.is_empty())
}

/// Every partition's replicas, by partition index, for `topic`.
fn replicas(cluster: &Value, topic: &str) -> BTreeMap<u64, Vec<u64>> {
    cluster["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == topic)
        .map(|p| {
            (
                p["partition"].as_u64().unwrap(),
                p["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// Every acknowledged record is read back once, at its offset, through each of `via`.
async fn check_acked(c: &TestCluster, via: &[u64], topic: &str, partitions: u64, acked: &Acked) {
    assert!(
        acked.len() > 20,
        "too few acknowledged writes: {}",
        acked.len()
    );
    for v in via {
        for p in 0..partitions {
            let recs = c.read_all(*v, topic, p as u32).await;
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for r in &recs {
                if let Some(s) = r["value"].as_str() {
                    *seen.entry(s.to_string()).or_default() += 1;
                }
            }
            for ((ap, off), value) in acked.range((p, 0)..(p + 1, 0)) {
                let at = recs
                    .iter()
                    .find(|r| r["offset"].as_u64() == Some(*off))
                    .unwrap_or_else(|| panic!("node {v}: {topic}/{ap} has no offset {off}"));
                assert_eq!(
                    at["value"].as_str(),
                    Some(value.as_str()),
                    "node {v}: {topic}/{ap}@{off}"
                );
                assert_eq!(
                    seen.get(value),
                    Some(&1),
                    "node {v}: {value} not exactly once"
                );
            }
        }
    }
}

/// Waits until no node outside a partition's replicas holds it open or keeps its data.
async fn wait_moved_away_data_gone(c: &TestCluster, nodes: &[u64], topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let meta = c.node(nodes[0]).metadata();
        let t = meta.topic(topic).unwrap();
        let mut stale = Vec::new();
        for n in nodes {
            let node = c.node(*n);
            let on_disk = node.store().groups_with_state().unwrap();
            for p in &t.partitions {
                if !p.replicas.contains(n)
                    && (node.partitions().get(p.group).is_some() || on_disk.contains(&p.group))
                {
                    stale.push((*n, p.group));
                }
            }
        }
        if stale.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "moved-away replicas still open or on disk (node, group): {stale:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joined_nodes_take_replicas_and_leaders_under_writes() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("grow", 6, 3).await;
    wait_registry(&c, 3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let urls = (1..=3).map(|i| c.url(i, "")).collect();
    let producer = spawn_producer(c.http.clone(), urls, "grow", stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    c.join(4, 1).await;
    c.join(5, 2).await;
    let cl = wait_cluster(&c, 3, 60, "joined nodes active", |b| {
        state_of(b, 4).as_deref() == Some("active") && state_of(b, 5).as_deref() == Some("active")
    })
    .await;
    assert_eq!(node_entry(&cl, 4).unwrap()["replicas"], 0, "{cl:#}");

    let (s, plan) = c.post(1, "/v1/cluster/rebalance", json!({})).await;
    assert_eq!(s, 202, "{plan}");
    assert!(!plan["moves"].as_array().unwrap().is_empty(), "{plan}");
    // A second rebalance while moves run plans nothing new for the moving partitions.
    let (s, again) = c.post_empty(2, "/v1/cluster/rebalance").await;
    assert!(s == 200 || s == 202, "{again}");

    let cl = wait_cluster(&c, 4, 180, "rebalance done", moves_done).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = producer.await.unwrap();

    // Replicas and preferred leaders are spread over the five nodes.
    let placed = replicas(&cl, "grow");
    let mut per_node: BTreeMap<u64, usize> = BTreeMap::new();
    let mut preferred: BTreeMap<u64, usize> = BTreeMap::new();
    for r in placed.values() {
        assert_eq!(r.len(), 3, "{placed:?}");
        assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{placed:?}");
        for n in r {
            *per_node.entry(*n).or_default() += 1;
        }
        *preferred.entry(r[0]).or_default() += 1;
    }
    assert_eq!(per_node.len(), 5, "{per_node:?}");
    assert!(
        per_node.values().all(|n| (3..=4).contains(n)),
        "{per_node:?}"
    );
    assert!(preferred.values().all(|n| *n <= 2), "{preferred:?}");

    // Leaders follow the preferred replicas.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, _) = c.post_empty(1, "/v1/cluster/rebalance-leaders").await;
        assert_eq!(s, 200);
        let (_, cl) = c.get(1, "/v1/cluster").await;
        let counts: Vec<u64> = (1..=5)
            .map(|id| {
                node_entry(&cl, id).unwrap()["leaderships"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        if counts.iter().all(|n| *n <= 2) && counts.iter().sum::<u64>() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaders not balanced: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    wait_moved_away_data_gone(&c, &[1, 2, 3, 4, 5], "grow").await;
    check_acked(&c, &[1, 2, 3, 4, 5], "grow", 6, &acked).await;

    // The whole cluster stops and starts again, joined nodes first: a joined node restarts
    // from its stored id without waiting for its (stopped) seed.
    for id in 1..=5 {
        c.crash(id).await;
    }
    for id in [4, 5, 1, 2, 3] {
        let started = Instant::now();
        c.restart(id).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node {id} took {:?} to start",
            started.elapsed()
        );
    }
    c.wait_ready().await;
    check_acked(&c, &[1, 2, 3, 4, 5], "grow", 6, &acked).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decommission_drains_a_node_across_a_metadata_leader_crash() {
    let mut c = TestCluster::start(4).await;
    c.create_topic("drain", 4, 3).await;
    wait_registry(&c, 4).await;
    // The metadata group keeps 3 voters of the 4 nodes.
    wait_cluster(&c, 1, 30, "3 metadata voters", |b| voters(b).len() == 3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let urls = [1, 3, 4].iter().map(|i| c.url(*i, "")).collect();
    let producer = spawn_producer(c.http.clone(), urls, "drain", stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (s, plan) = c.post_empty(1, "/v1/cluster/nodes/2/decommission").await;
    assert_eq!(s, 202, "{plan}");
    assert_eq!(plan["node_state"], "draining", "{plan}");
    let (s, again) = c.post_empty(3, "/v1/cluster/nodes/2/decommission").await;
    assert!(
        s == 200 || s == 202,
        "a repeated decommission is accepted: {again}"
    );

    // The metadata leader (the controller) crashes half way and comes back.
    let leader = c.node(1).meta_leader().unwrap();
    let victim = if leader == 2 { 3 } else { leader };
    c.crash(victim).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.restart(victim).await;

    let cl = wait_cluster(&c, 1, 180, "node 2 removed", |b| {
        state_of(b, 2).as_deref() == Some("removed") && moves_done(b)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = producer.await.unwrap();

    for r in replicas(&cl, "drain").values() {
        assert!(!r.contains(&2), "{cl:#}");
        assert_eq!(r.len(), 3, "{cl:#}");
    }
    assert_eq!(
        node_entry(&cl, 2).unwrap()["metadata_role"],
        "none",
        "{cl:#}"
    );
    assert_eq!(voters(&cl).len(), 3, "{cl:#}");
    wait_moved_away_data_gone(&c, &[1, 2, 3, 4], "drain").await;
    check_acked(&c, &[1, 3, 4], "drain", 4, &acked).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_node_is_replaced_from_the_survivors() {
    let mut c = TestCluster::start(4).await;
    c.create_topic("heal", 3, 3).await;
    wait_registry(&c, 4).await;
    let cl = wait_cluster(&c, 1, 30, "3 metadata voters", |b| voters(b).len() == 3).await;
    // A voter that is not node 1 (the test talks to node 1) dies for good.
    let dead = *voters(&cl).iter().find(|v| **v != 1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let urls = (1..=4)
        .filter(|i| *i != dead)
        .map(|i| c.url(i, ""))
        .collect();
    let producer = spawn_producer(c.http.clone(), urls, "heal", stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.crash(dead).await;

    // Its metadata vote goes to the spare node after --voter-repair-ms (3 s here).
    wait_cluster(&c, 1, 30, "metadata voters repaired", |b| {
        let v = voters(b);
        v.len() == 3 && !v.contains(&dead)
    })
    .await;
    assert_eq!(
        state_of(&c.get(1, "/v1/cluster").await.1, dead).as_deref(),
        Some("down")
    );

    // Removing it as dead is refused while it still looks alive, then accepted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let plan = loop {
        let (s, b) = c
            .delete(1, &format!("/v1/cluster/nodes/{dead}?dead=true"))
            .await;
        match s {
            200 | 202 => break b,
            409 => assert_eq!(b["error"], "invalid_node_state", "{b}"),
            _ => panic!("remove-node answered {s}: {b}"),
        }
        assert!(
            Instant::now() < deadline,
            "remove-node refused for 20s: {b}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(plan["node_state"], "removed", "{plan}");

    let cl = wait_cluster(&c, 1, 180, "replicas rebuilt", |b| {
        moves_done(b)
            && replicas(b, "heal")
                .values()
                .all(|r| r.len() == 3 && !r.contains(&dead))
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = producer.await.unwrap();
    assert_eq!(state_of(&cl, dead).as_deref(), Some("removed"));
    let alive: Vec<u64> = (1..=4).filter(|i| *i != dead).collect();
    wait_moved_away_data_gone(&c, &alive, "heal").await;
    check_acked(&c, &alive, "heal", 3, &acked).await;

    // The removed id is never reused: it cannot come back.
    let (s, b) = c
        .post_empty(1, &format!("/v1/cluster/nodes/{dead}/decommission"))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("invalid_node_state")),
        "{b}"
    );

    // The "dead" node was only gone for a while and comes back with its old data: it is
    // fenced (its Raft requests are refused) and the cluster goes on without it.
    let leader = c.node(1).meta_leader();
    c.restart(dead).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.node(1).meta_leader(),
        leader,
        "the returning node disturbed the metadata"
    );
    for i in 0..5 {
        let (s, b) = c
            .post(
                alive[i % alive.len()],
                "/v1/topics/heal/records",
                json!({"records": [{"value": i}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let cl = c.get(1, "/v1/cluster").await.1;
    assert_eq!(state_of(&cl, dead).as_deref(), Some("removed"), "{cl:#}");
    assert!(
        replicas(&cl, "heal").values().all(|r| !r.contains(&dead)),
        "{cl:#}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_membership_requests_are_refused_and_change_nothing() {
    let c = TestCluster::start(3).await;
    c.create_topic("bad", 2, 3).await;
    wait_registry(&c, 3).await;
    let before = c.get(1, "/v1/cluster").await.1;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown topic",
            json!({"topic": "nope", "partition": 0, "replicas": [1, 2, 3]}),
            404,
            "topic_not_found",
        ),
        (
            "unknown partition",
            json!({"topic": "bad", "partition": 9, "replicas": [1, 2, 3]}),
            404,
            "partition_not_found",
        ),
        (
            "empty replicas",
            json!({"topic": "bad", "partition": 0, "replicas": []}),
            422,
            "invalid_replicas",
        ),
        (
            "repeated replica",
            json!({"topic": "bad", "partition": 0, "replicas": [1, 1, 2]}),
            422,
            "invalid_replicas",
        ),
        (
            "below a majority",
            json!({"topic": "bad", "partition": 0, "replicas": [1]}),
            422,
            "invalid_replicas",
        ),
        (
            "unknown node",
            json!({"topic": "bad", "partition": 0, "replicas": [1, 2, 9]}),
            404,
            "node_not_found",
        ),
        (
            "missing field",
            json!({"topic": "bad", "replicas": [1, 2, 3]}),
            400,
            "bad_request",
        ),
        (
            "wrong type",
            json!({"topic": "bad", "partition": "x", "replicas": [1, 2, 3]}),
            400,
            "bad_request",
        ),
    ];
    for (what, body, status, code) in cases {
        let (s, b) = c.post(2, "/v1/cluster/reassignments", body).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (status, Some(code)),
            "{what}: {b}"
        );
        assert_eq!(b["outcome"], "not_applied", "{what}: {b}");
    }
    // The same replicas: nothing to move.
    let (s, b) = c
        .post(
            1,
            "/v1/cluster/reassignments",
            json!({"topic": "bad", "partition": 0,
              "replicas": before["partitions"][0]["replicas"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["from"], b["to"], "{b}");

    let (s, b) = c.delete(1, "/v1/cluster/nodes/2").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c.delete(1, "/v1/cluster/nodes/2?dead=maybe").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c.delete(1, "/v1/cluster/nodes/2?dead=true").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("invalid_node_state")),
        "alive: {b}"
    );
    let (s, b) = c.delete(1, "/v1/cluster/nodes/x?dead=true").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c.post_empty(1, "/v1/cluster/nodes/9/decommission").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("node_not_found")),
        "{b}"
    );
    // Three nodes, RF 3: nowhere to drain to.
    let (s, b) = c.post_empty(1, "/v1/cluster/nodes/3/decommission").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("invalid_replicas")),
        "{b}"
    );
    let (s, b) = c
        .post(1, "/v1/cluster/rebalance", json!({"max_moves": 0}))
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c.post(1, "/v1/cluster/rebalance", json!({})).await;
    assert_eq!(s, 200, "a balanced cluster plans nothing: {b}");
    assert!(b["moves"].as_array().unwrap().is_empty(), "{b}");

    let after = c.get(1, "/v1/cluster").await.1;
    assert_eq!(replicas(&before, "bad"), replicas(&after, "bad"));
    assert!(moves_done(&after), "{after:#}");
    for id in 1..=3 {
        assert_eq!(state_of(&after, id).as_deref(), Some("active"), "{after:#}");
    }
    let (s, b) = c.get(3, "/v1/cluster/reassignments").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["reassignments"], json!([]));

    // A dead node holding a partition's only replica cannot be removed: its records exist
    // nowhere else.
    c.create_topic("solo", 3, 1).await;
    let placed = replicas(&c.get(1, "/v1/cluster").await.1, "solo");
    assert!(placed.values().any(|r| r == &vec![3]), "{placed:?}");
    let mut c = c;
    c.crash(3).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (s, b) = loop {
        let (s, b) = c.delete(1, "/v1/cluster/nodes/3?dead=true").await;
        if s != 409 || Instant::now() > deadline {
            break (s, b);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("invalid_replicas")),
        "{b}"
    );
    assert_eq!(b["outcome"], "not_applied", "{b}");
    let after = c.get(1, "/v1/cluster").await.1;
    assert_eq!(state_of(&after, 3).as_deref(), Some("down"), "{after:#}");
    assert!(moves_done(&after), "{after:#}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_voters_are_repaired_after_two_voters_die() {
    let mut c = TestCluster::start(5).await;
    let cl = wait_cluster(&c, 1, 30, "3 metadata voters", |b| voters(b).len() == 3).await;
    let mut dead = Vec::new();
    let mut current = voters(&cl);
    for _ in 0..2 {
        // A voter other than node 1 (which the test talks to) dies; the metadata group gets
        // a new voter from the learners before the next one dies.
        let victim = *current.iter().find(|v| **v != 1).unwrap();
        c.crash(victim).await;
        dead.push(victim);
        let gone = dead.clone();
        let cl = wait_cluster(&c, 1, 60, "metadata voters repaired", move |b| {
            let v = voters(b);
            v.len() == 3 && gone.iter().all(|d| !v.contains(d))
        })
        .await;
        current = voters(&cl);
    }
    // Topics and consumer groups are still writable with two of five nodes gone.
    let survivors: Vec<u64> = (1..=5).filter(|i| !dead.contains(i)).collect();
    let (s, b) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "after", "partitions": 2, "replication_factor": 3}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let placed = replicas(&c.get(1, "/v1/cluster").await.1, "after");
    for r in placed.values() {
        assert!(
            r.iter().all(|n| survivors.contains(n)),
            "placed on a dead node: {placed:?}"
        );
    }
    for i in 0..10 {
        let via = survivors[i % survivors.len()];
        let (s, b) = c
            .post(
                via,
                "/v1/topics/after/records",
                json!({"records": [{"value": i}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = c
        .post(
            survivors[1],
            "/v1/groups/g/members",
            json!({"topics": ["after"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    c.shutdown().await;
}

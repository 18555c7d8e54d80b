//! Growing, shrinking and healing a live cluster of real processes (`scripts/cluster.sh`) with
//! the `raftka` CLI, while an idempotent `Producer` keeps writing:
//!
//! - two nodes added (`cluster.sh add-node`) and `raftka cluster rebalance --wait`: replicas
//!   and preferred leaders end up spread evenly over the five nodes;
//! - `raftka cluster decommission 2`: node 2 ends `removed`, holds no replica, every partition
//!   keeps three;
//! - node 3 killed (`kill -9` of the PID in its pid file), its data deleted, then
//!   `raftka cluster remove-node 3 --dead`: every partition gets three replicas again without it.
//!
//! Each ends with the same check: no send failed, and every acknowledged record is read back
//! exactly once, at its offset, through every node still in the cluster, which all serve the
//! same log. The load is bounded in records and time; each test takes well under two minutes.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test: panics with a message

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ok, read_partition, Cluster};
use raftka_client::{Client, ClusterState, NewRecord, NodeState, Producer, RecordOffset};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

const PARTITIONS: u32 = 6;
/// At most this many records per test...
const MAX_RECORDS: u64 = 40_000;
/// ...and for at most this long, whatever the test is doing.
const LOAD_DEADLINE: Duration = Duration::from_secs(90);
/// Bound of every wait on the cluster.
const WAIT: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A cluster of `nodes` with a 6-partition topic of replication factor 3, and room for
/// `spare` more nodes.
fn cluster_with_topic(nodes: u16, spare: u16, topic: &str) -> Cluster {
    let cluster = Cluster::start_with_spare(nodes, spare);
    ok(
        &cluster.raftka(&["topic", "create", topic, "-p", "6", "-r", "3"]),
        "topic create",
    );
    cluster
}

/// A client for the given nodes of `cluster`.
fn client_of(cluster: &Cluster, nodes: &[u64]) -> Client {
    let addrs: Vec<String> = nodes.iter().map(|&n| cluster.addr(n)).collect();
    Client::new(&addrs).expect("client")
}

/// What the producer saw: every acknowledged value with its offset and when it was
/// acknowledged, and the sends that failed.
struct Report {
    sent: u64,
    acked: Vec<(String, RecordOffset, Instant)>,
    failed: Vec<String>,
}

impl Report {
    /// Acknowledgements between `from` and `to`, and the longest gap between two of them there.
    fn window(&self, from: Instant, to: Instant) -> (usize, Duration) {
        let mut times: Vec<Instant> = self
            .acked
            .iter()
            .map(|a| a.2)
            .filter(|t| *t >= from && *t <= to)
            .collect();
        times.sort();
        let mut longest = Duration::ZERO;
        let mut last = from;
        for t in &times {
            longest = longest.max(*t - last);
            last = *t;
        }
        (times.len(), longest.max(to - last))
    }
}

/// The background load: one idempotent `Producer`, keyed records `v0, v1, ...`, about 400 a
/// second, until stopped, `MAX_RECORDS` or `LOAD_DEADLINE`.
struct Load {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Report>,
}

impl Load {
    fn start(rt: &Runtime, client: Client, topic: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let task = rt.spawn(produce(client, topic, stop.clone()));
        Load { stop, task }
    }

    fn finish(self, rt: &Runtime) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let r = rt.block_on(self.task).expect("producer task");
        eprintln!(
            "load: {} sent, {} acknowledged, {} failed",
            r.sent,
            r.acked.len(),
            r.failed.len()
        );
        assert!(r.failed.is_empty(), "failed sends: {:?}", r.failed);
        assert_eq!(r.acked.len() as u64, r.sent, "every send acknowledged");
        r
    }
}

async fn produce(client: Client, topic: &'static str, stop: Arc<AtomicBool>) -> Report {
    let started = Instant::now();
    let producer = Producer::new(client, Default::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
    // Acknowledgements are awaited in send order by a second task, which notes when each came.
    let collector = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut failed = Vec::new();
        while let Some((value, delivery)) = rx.recv().await {
            let delivery: raftka_client::DeliveryFuture = delivery;
            match delivery.await {
                Ok(at) => acked.push((value, at, Instant::now())),
                Err(e) => failed.push(format!("{value}: {e}")),
            }
        }
        (acked, failed)
    });
    let mut n = 0u64;
    let mut refused = Vec::new();
    while n < MAX_RECORDS && !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_DEADLINE {
        let value = format!("v{n}");
        let record = NewRecord::string(value.clone()).with_key(format!("k{}", n % 13));
        match producer.send(topic, record).await {
            Ok(d) => tx.send((value, d)).await.expect("collector"),
            Err(e) => refused.push(format!("{value} refused: {e}")),
        }
        n += 1;
        if n.is_multiple_of(4) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if let Err(e) = producer.flush().await {
        refused.push(format!("flush: {e}"));
    }
    drop(tx);
    let (acked, mut failed) = collector.await.expect("collector");
    failed.extend(refused);
    Report {
        sent: n,
        acked,
        failed,
    }
}

/// Polls `GET /v1/cluster` until `done` holds (bounded by [`WAIT`]); returns that state.
async fn wait_for(
    client: &Client,
    what: &str,
    done: impl Fn(&ClusterState) -> bool,
) -> ClusterState {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match client.cluster().await {
            Ok(state) if done(&state) => return state,
            Ok(state) => format!("{state:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not after {WAIT:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn node_state(state: &ClusterState, node: u64) -> Option<NodeState> {
    state
        .nodes
        .iter()
        .find(|n| n.id == node)
        .and_then(|n| n.state)
}

/// Replicas and preferred leaderships (first replicas) per node, for `topic`.
fn spread(state: &ClusterState, topic: &str) -> (BTreeMap<u64, usize>, BTreeMap<u64, usize>) {
    let mut replicas = BTreeMap::new();
    let mut preferred = BTreeMap::new();
    for p in state.partitions.iter().filter(|p| p.topic == topic) {
        for r in &p.replicas {
            *replicas.entry(*r).or_insert(0) += 1;
        }
        if let Some(first) = p.replicas.first() {
            *preferred.entry(*first).or_insert(0) += 1;
        }
    }
    (replicas, preferred)
}

/// Reads `topic` whole through each of `nodes`: they serve the same log, no value is stored
/// twice, and every acknowledged value is at its acknowledged offset.
async fn verify(cluster: &Cluster, topic: &str, report: &Report, nodes: &[u64]) {
    let mut first: Option<Vec<Vec<(u64, String)>>> = None;
    for &node in nodes {
        let via = Client::new([cluster.addr(node)]).expect("client");
        let mut log = Vec::new();
        for p in 0..PARTITIONS {
            log.push(read_partition(&via, topic, p).await);
        }
        match &first {
            None => first = Some(log),
            Some(f) => assert!(f == &log, "node {node} serves a different log"),
        }
    }
    let log = first.expect("at least one node");
    let mut seen: HashMap<&str, (u32, u64)> = HashMap::new();
    for (p, records) in log.iter().enumerate() {
        for (offset, value) in records {
            if let Some(prev) = seen.insert(value, (p as u32, *offset)) {
                panic!("value {value} stored twice: at {prev:?} and ({p}, {offset})");
            }
        }
    }
    for (value, at, _) in &report.acked {
        assert_eq!(
            seen.get(value.as_str()),
            Some(&(at.partition, at.offset)),
            "acknowledged value {value} at {at:?}"
        );
    }
    eprintln!(
        "verified through nodes {nodes:?}: {} records, every acknowledged value once at its offset",
        seen.len()
    );
}

/// `cluster.sh add-node` once per id, then waits until the cluster reports them active.
fn add_nodes(rt: &Runtime, cluster: &Cluster, client: &Client, ids: &[u64]) {
    for &id in ids {
        let out = cluster.script(&["add-node", "--timeout", "60"]);
        assert!(
            out.contains(&format!("Node {id} joined")),
            "add-node: {out}"
        );
    }
    rt.block_on(wait_for(client, "the new nodes active", |s| {
        ids.iter()
            .all(|&id| node_state(s, id) == Some(NodeState::Active))
    }));
}

/// Asserts that the producer was acknowledged while `what` ran, and says how it went.
fn load_went_on(report: &Report, what: &str, from: Instant, to: Instant) {
    let (acks, longest) = report.window(from, to);
    eprintln!(
        "{what}: {:.1} s, {acks} acknowledgements meanwhile, longest gap {} ms",
        (to - from).as_secs_f64(),
        longest.as_millis()
    );
    assert!(acks > 0, "no acknowledgement while {what} ran");
}

#[test]
fn added_nodes_get_an_even_share_after_rebalance_under_load() {
    const TOPIC: &str = "grow";
    let cluster = cluster_with_topic(3, 2, TOPIC);
    let rt = runtime();
    let client = client_of(&cluster, &[1, 2, 3]);
    let load = Load::start(&rt, client.clone(), TOPIC);
    std::thread::sleep(Duration::from_secs(2));

    add_nodes(&rt, &cluster, &client, &[4, 5]);
    let t0 = Instant::now();
    let out = ok(
        &cluster.raftka(&["cluster", "rebalance", "--wait", "--timeout", "90"]),
        "cluster rebalance",
    );
    let t1 = Instant::now();
    eprintln!("{out}");
    assert!(out.contains("done"), "rebalance output: {out}");

    let state = rt.block_on(client.cluster()).expect("cluster");
    assert_eq!(
        state.reassignments.as_deref(),
        Some(&[][..]),
        "no move left"
    );
    let (replicas, preferred) = spread(&state, TOPIC);
    eprintln!("replicas per node {replicas:?}, preferred leaderships {preferred:?}");
    for node in 1..=5 {
        let r = replicas.get(&node).copied().unwrap_or(0);
        assert!(
            (3..=4).contains(&r),
            "node {node} holds {r} replicas: {replicas:?}"
        );
        let l = preferred.get(&node).copied().unwrap_or(0);
        assert!(
            l <= 2,
            "node {node} is the preferred leader of {l}: {preferred:?}"
        );
    }
    for p in state.partitions.iter().filter(|p| p.topic == TOPIC) {
        assert_eq!(p.replicas.len(), 3, "replication factor of {p:?}");
    }
    // `raftka cluster status` shows the five nodes active and nothing moving.
    let status = ok(
        &cluster.raftka(&["-o", "json", "cluster", "status"]),
        "cluster status",
    );
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 5, "{status}");
    assert!(nodes.iter().all(|n| n["state"] == "active"), "{status}");
    assert_eq!(status["reassignments"], serde_json::json!([]), "{status}");

    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish(&rt);
    load_went_on(&report, "the rebalance", t0, t1);
    rt.block_on(verify(&cluster, TOPIC, &report, &[1, 2, 3, 4, 5]));
}

#[test]
fn a_decommissioned_node_ends_removed_holding_nothing_under_load() {
    const TOPIC: &str = "drain";
    let cluster = cluster_with_topic(3, 1, TOPIC);
    let rt = runtime();
    let client = client_of(&cluster, &[1, 2, 3]);
    let load = Load::start(&rt, client.clone(), TOPIC);
    std::thread::sleep(Duration::from_secs(2));

    // Three nodes must stay for replication factor 3: add one first.
    add_nodes(&rt, &cluster, &client, &[4]);
    let t0 = Instant::now();
    let out = ok(
        &cluster.raftka(&["cluster", "decommission", "2", "--wait", "--timeout", "90"]),
        "cluster decommission",
    );
    let t1 = Instant::now();
    eprintln!("{out}");
    assert!(
        out.contains("node 2 is removed"),
        "decommission output: {out}"
    );

    let others = client_of(&cluster, &[1, 3, 4]);
    let state = rt.block_on(others.cluster()).expect("cluster");
    assert_eq!(node_state(&state, 2), Some(NodeState::Removed), "{state:?}");
    for p in state.partitions.iter().filter(|p| p.topic == TOPIC) {
        assert!(!p.replicas.contains(&2), "a replica left on node 2: {p:?}");
        assert_eq!(p.replicas.len(), 3, "replication factor of {p:?}");
    }
    assert_eq!(
        state.reassignments.as_deref(),
        Some(&[][..]),
        "no move left"
    );
    // As the operations guide says: stop the drained node's process afterwards.
    cluster.script(&["stop", "2"]);

    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish(&rt);
    load_went_on(&report, "the decommission", t0, t1);
    rt.block_on(verify(&cluster, TOPIC, &report, &[1, 3, 4]));
}

#[test]
fn a_dead_node_removed_gets_its_replicas_rebuilt_under_load() {
    const TOPIC: &str = "heal";
    let cluster = cluster_with_topic(3, 1, TOPIC);
    let rt = runtime();
    let client = client_of(&cluster, &[1, 2, 3]);
    let load = Load::start(&rt, client.clone(), TOPIC);
    std::thread::sleep(Duration::from_secs(2));

    // A fourth node to rebuild the dead node's replicas on.
    add_nodes(&rt, &cluster, &client, &[4]);

    // kill -9 of node 3: the PID from its pid file, checked to still be node 3.
    let pid = cluster.node_pid(3).expect("node 3 runs");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -9 {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.node_pid(3).is_some() {
        assert!(
            Instant::now() < deadline,
            "node 3 (pid {pid}) survived kill -9"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(cluster.node_dir(3).join("data")).expect("delete node 3's data");
    let t0 = Instant::now();

    // Refused (409 invalid_node_state) until the cluster has seen node 3 down for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = cluster.raftka(&["cluster", "remove-node", "3", "--dead", "--timeout", "90"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("invalid_node_state") && Instant::now() < deadline,
            "remove-node 3 --dead failed: {err}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("{out}");
    assert!(
        out.contains("node 3 is removed"),
        "remove-node output: {out}"
    );

    let others = client_of(&cluster, &[1, 2, 4]);
    let state = rt.block_on(wait_for(&others, "three replicas without node 3", |s| {
        s.reassignments.as_ref().is_some_and(Vec::is_empty)
            && s.partitions
                .iter()
                .filter(|p| p.topic == TOPIC)
                .all(|p| p.replicas.len() == 3 && !p.replicas.contains(&3) && p.leader.is_some())
    }));
    let t1 = Instant::now();
    assert_eq!(node_state(&state, 3), Some(NodeState::Removed), "{state:?}");

    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish(&rt);
    load_went_on(&report, "the dead node's removal", t0, t1);
    rt.block_on(verify(&cluster, TOPIC, &report, &[1, 2, 4]));
}

//! An in-process Raftka cluster for tests: N nodes in this process on port-0 listeners, with
//! injectable network faults between them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use raftka_node::{Config, NetFaults, RunningNode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;

pub struct TestCluster {
    pub nodes: BTreeMap<u64, Option<RunningNode>>,
    pub addrs: BTreeMap<u64, SocketAddr>,
    pub peers: BTreeMap<u64, String>,
    pub faults: NetFaults,
    pub http: reqwest::Client,
    pub dir: TempDir,
    /// Applied to every node's config, at start and restart.
    pub tweak: fn(&mut Config),
    /// Nodes started with `--join` (their seed), not in the initial peers.
    pub joined: BTreeMap<u64, String>,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

impl TestCluster {
    pub async fn start(n: u64) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// A cluster whose node configs `tweak` adjusts.
    pub async fn start_with(n: u64, tweak: fn(&mut Config)) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(id, l.local_addr().unwrap());
            listeners.insert(id, l);
        }
        let peers: BTreeMap<u64, String> = addrs.iter().map(|(i, a)| (*i, a.to_string())).collect();
        let faults = NetFaults::default();
        let mut c = TestCluster {
            nodes: BTreeMap::new(),
            addrs,
            peers,
            faults,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            dir,
            tweak,
            joined: BTreeMap::new(),
        };
        for (id, l) in listeners {
            let node = raftka_node::start(c.config(id), l, c.faults.clone())
                .await
                .unwrap();
            c.nodes.insert(id, Some(node));
        }
        c.wait_ready().await;
        c
    }

    pub fn config(&self, id: u64) -> Config {
        let dir = self.dir.path().join(format!("node-{id}"));
        let mut cfg = match self.joined.get(&id) {
            Some(seed) => Config::for_joining_node(Some(id), self.addrs[&id], dir, seed),
            None => Config::for_node(id, self.addrs[&id], dir, &self.peers),
        };
        cfg.max_request_bytes = 1024 * 1024;
        cfg.max_record_bytes = 256 * 1024;
        (self.tweak)(&mut cfg);
        cfg
    }

    /// Starts node `id` (not one of the initial peers) with `--join` through node `seed`.
    pub async fn join(&mut self, id: u64, seed: u64) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addrs.insert(id, l.local_addr().unwrap());
        self.joined.insert(id, self.addrs[&seed].to_string());
        let node = raftka_node::start(self.config(id), l, self.faults.clone())
            .await
            .unwrap();
        self.nodes.insert(id, Some(node));
    }

    pub async fn delete(&self, id: u64, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.url(id, path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST without a body.
    pub async fn post_empty(&self, id: u64, path: &str) -> (u16, Value) {
        let r = self.http.post(self.url(id, path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.addrs.keys().copied().collect()
    }

    pub fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}{}", self.addrs[&id], path)
    }

    pub async fn wait_ready(&self) {
        for _ in 0..300 {
            if self.nodes.values().flatten().all(|n| n.node.is_ready()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cluster not ready in 15s");
    }

    /// Stops a node abruptly (no flush), keeping its data directory.
    pub async fn crash(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id).and_then(Option::take) {
            n.crash().await;
        }
    }

    /// Stops a node gracefully (leadership handover, drain, flush), keeping its data directory.
    pub async fn stop(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id).and_then(Option::take) {
            n.shutdown().await;
        }
    }

    /// Starts a crashed node again on the same address and data.
    pub async fn restart(&mut self, id: u64) {
        let mut last = None;
        for _ in 0..100 {
            let l = match TcpListener::bind(self.addrs[&id]).await {
                Ok(l) => l,
                Err(e) => {
                    last = Some(e.to_string());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match raftka_node::start(self.config(id), l, self.faults.clone()).await {
                Ok(n) => {
                    self.nodes.insert(id, Some(n));
                    return;
                }
                // The previous instance may still hold the RocksDB lock for a moment.
                Err(e) => {
                    last = Some(e.to_string());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("restart of node {id} failed: {last:?}");
    }

    pub async fn shutdown(mut self) {
        for (_, n) in std::mem::take(&mut self.nodes) {
            if let Some(n) = n {
                n.shutdown().await;
            }
        }
    }

    pub async fn post(&self, id: u64, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(id, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch(&self, id: u64, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .patch(self.url(id, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The running node `id` (panics if it is crashed).
    pub fn node(&self, id: u64) -> &raftka_node::Node {
        &self.nodes[&id].as_ref().expect("node is running").node
    }

    /// Node `id`'s local replica of a partition, if open there.
    pub fn replica(
        &self,
        id: u64,
        topic: &str,
        partition: usize,
    ) -> Option<raftka_node::partition::PartitionHandle> {
        let node = self.node(id);
        let group = node
            .metadata()
            .topic(topic)?
            .partitions
            .get(partition)?
            .group;
        node.partitions().get(group)
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> std::path::PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    pub async fn get(&self, id: u64, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(id, path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        rf: u32,
        configs: Value,
    ) -> Value {
        let (s, b) = self
            .post(
                1,
                "/v1/topics",
                json!({"name": name, "partitions": partitions, "replication_factor": rf,
                       "configs": configs}),
            )
            .await;
        assert_eq!(s, 201, "create topic: {b}");
        b
    }

    pub async fn create_topic(&self, name: &str, partitions: u32, rf: u32) -> Value {
        let (s, b) = self
            .post(
                1,
                "/v1/topics",
                json!({"name": name, "partitions": partitions, "replication_factor": rf}),
            )
            .await;
        assert_eq!(s, 201, "create topic: {b}");
        b
    }

    pub async fn leader_of(&self, via: u64, topic: &str, partition: u32) -> Option<u64> {
        let (_, d) = self.get(via, &format!("/v1/topics/{topic}")).await;
        d["partitions"][partition as usize]["leader"].as_u64()
    }

    /// Reads a whole partition from offset 0 through node `via`.
    pub async fn read_all(&self, via: u64, topic: &str, partition: u32) -> Vec<Value> {
        let mut out = vec![];
        let mut offset = 0u64;
        for _ in 0..10_000 {
            let (s, b) = self
                .get(via, &format!("/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&max_records=1000"))
                .await;
            assert_eq!(s, 200, "fetch: {b}");
            let recs = b["records"].as_array().unwrap().clone();
            let hw = b["high_watermark"].as_u64().unwrap();
            offset += recs.len() as u64;
            out.extend(recs);
            if offset >= hw {
                return out;
            }
        }
        panic!("read_all did not finish");
    }
}

/// Bytes of all files under `dir` (what `du` would count, without block rounding).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

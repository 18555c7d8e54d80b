//! The wire contract's fixtures: one real reply per v1 endpoint, written by the node's own
//! handlers in a live 3-node cluster, kept in `protocol/tests/fixtures/`.
//!
//! - Here (server side): every reply decodes into its `raftka-protocol` type, and its shape
//!   (every object's field names, recursively) equals the committed fixture's. A renamed or
//!   dropped field in a reply fails this test.
//! - In `protocol/tests/fixtures.rs` (client side): every fixture decodes into its type and
//!   encodes back to the same JSON. A renamed field in a type fails that test.
//!
//! `RAFTKA_WRITE_FIXTURES=1 cargo test -p raftka-node --test wire_fixtures` rewrites the
//! fixtures after an intended change of the contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::TestCluster;
use raftka_protocol::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../protocol/tests/fixtures")
        .join(format!("{name}.json"))
}

/// The field names of every object, by path (array elements share a path), and the paths
/// whose value is `null` or `[]`: what lies below those depends on the cluster's state at
/// the time (no leader yet, no lag reported), not on the contract.
#[derive(Default)]
struct Shape {
    fields: BTreeSet<String>,
    open: BTreeSet<String>,
}

impl Shape {
    fn of(v: &Value) -> Self {
        let mut s = Shape::default();
        s.walk(v, "");
        s
    }

    fn walk(&mut self, v: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let p = format!("{path}.{k}");
                    self.fields.insert(p.clone());
                    self.walk(child, &p);
                }
            }
            Value::Array(a) if a.is_empty() => {
                self.open.insert(path.to_string());
            }
            Value::Array(a) => {
                for child in a {
                    self.walk(child, &format!("{path}[]"));
                }
            }
            Value::Null => {
                self.open.insert(path.to_string());
            }
            _ => {}
        }
    }

    /// Whether a field at `path` may be missing on one side because an ancestor is open.
    fn excuses(&self, path: &str) -> bool {
        path.char_indices()
            .filter(|(_, c)| *c == '.' || *c == '[')
            .any(|(i, _)| self.open.contains(&path[..i]))
    }
}

/// The fields one side has and the other lacks, less those under an open value.
fn shape_difference(live: &Value, kept: &Value) -> Vec<String> {
    let (a, b) = (Shape::of(live), Shape::of(kept));
    a.fields
        .symmetric_difference(&b.fields)
        .filter(|p| !a.excuses(p) && !b.excuses(p))
        .cloned()
        .collect()
}

/// Checks one endpoint's reply: it has the expected status, decodes as `T`, and has the
/// committed fixture's shape (or rewrites the fixture).
fn check<T: DeserializeOwned>(name: &str, status: u16, want_status: u16, reply: &Value) {
    assert_eq!(status, want_status, "{name}: {reply}");
    if let Err(e) = serde_json::from_value::<T>(reply.clone()) {
        panic!("{name}: the reply does not decode as its protocol type: {e}\n{reply:#}");
    }
    let path = fixture_path(name);
    if std::env::var_os("RAFTKA_WRITE_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(reply).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (RAFTKA_WRITE_FIXTURES=1 writes it)",
            path.display()
        )
    });
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let differ = shape_difference(reply, &fixture);
    assert!(
        differ.is_empty(),
        "{name}: fields {differ:?} differ from {}\nlive: {reply:#}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_v1_reply_matches_its_fixture_and_protocol_type() {
    let c = TestCluster::start(3).await;

    // Topics.
    let (s, b) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "orders", "partitions": 2, "replication_factor": 3,
                   "configs": {"retention.ms": 86_400_000}}),
        )
        .await;
    check::<TopicDescription>("topic_create", s, 201, &b);
    let (s, b) = c.get(2, "/v1/topics").await;
    check::<TopicList>("topic_list", s, 200, &b);
    let (s, b) = c.get(3, "/v1/topics/orders").await;
    check::<TopicDescription>("topic_describe", s, 200, &b);
    let (s, b) = c.get(1, "/v1/topics/orders/configs").await;
    check::<TopicConfigs>("topic_configs", s, 200, &b);
    let (s, b) = c
        .patch(
            1,
            "/v1/topics/orders/configs",
            json!({"configs": {"retention.bytes": "1048576"}}),
        )
        .await;
    check::<TopicDescription>("topic_alter_configs", s, 200, &b);

    // Produce and fetch: a JSON value with key and headers, a binary value, a duplicate.
    let (s, b) = c
        .post(
            2,
            "/v1/topics/orders/records",
            json!({"producer_id": "fixture", "records": [
                {"key": "user-1", "value": {"item": "book"}, "headers": {"source": "web"},
                 "partition": 0, "timestamp_ms": 1_764_633_600_000i64, "sequence": 0},
                {"value_base64": "AAEC", "partition": 0, "sequence": 1}]}),
        )
        .await;
    check::<ProduceReply>("produce", s, 200, &b);
    let (s, b) = c
        .post(
            3,
            "/v1/topics/orders/records",
            json!({"producer_id": "fixture", "records": [
                {"key": "user-1", "value": {"item": "book"}, "headers": {"source": "web"},
                 "partition": 0, "timestamp_ms": 1_764_633_600_000i64, "sequence": 0},
                {"value_base64": "AAEC", "partition": 0, "sequence": 1}]}),
        )
        .await;
    check::<ProduceReply>("produce_duplicate", s, 200, &b);
    let (s, b) = c
        .get(
            1,
            "/v1/topics/orders/partitions/0/records?offset=0&max_wait_ms=0",
        )
        .await;
    check::<FetchResponse>("fetch", s, 200, &b);
    let (s, b) = c.get(1, "/v1/topics/orders/partitions/0/offsets").await;
    check::<PartitionOffsets>("offsets", s, 200, &b);
    let (s, b) = c
        .get(
            1,
            "/v1/topics/orders/partitions/0/offsets?timestamp_ms=1764633600000",
        )
        .await;
    check::<PartitionOffsets>("offsets_for_timestamp", s, 200, &b);

    // Errors: a write's (with outcome) and a read's with the partition's bounds.
    let (s, b) = c
        .post(
            2,
            "/v1/topics/nope/records",
            json!({"records": [{"value": 1}]}),
        )
        .await;
    check::<ErrorBody>("error_write", s, 404, &b);
    let (s, b) = c
        .get(1, "/v1/topics/orders/partitions/0/records?offset=99")
        .await;
    check::<ErrorBody>("error_offset_out_of_range", s, 416, &b);

    // Cluster and health.
    let (s, b) = c.get(2, "/v1/cluster").await;
    check::<ClusterState>("cluster", s, 200, &b);
    let (s, b) = c.post(3, "/v1/cluster/rebalance-leaders", json!({})).await;
    check::<LeaderRebalance>("cluster_rebalance_leaders", s, 200, &b);
    let (s, b) = c.get(1, "/healthz").await;
    check::<Health>("healthz", s, 200, &b);
    let (s, b) = c.get(1, "/readyz").await;
    check::<Health>("readyz", s, 200, &b);

    // Consumer groups.
    let (s, b) = c
        .post(
            1,
            "/v1/groups/billing/members",
            json!({"topics": ["orders"], "session_timeout_ms": 30_000, "client_id": "fixture"}),
        )
        .await;
    check::<JoinReply>("group_join", s, 200, &b);
    let member = b["member_id"].as_str().unwrap().to_string();
    let generation = b["generation"].as_u64().unwrap();
    let (s, b) = c
        .post(
            2,
            &format!("/v1/groups/billing/members/{member}/heartbeat"),
            json!({}),
        )
        .await;
    check::<HeartbeatReply>("group_heartbeat", s, 200, &b);
    let (s, b) = c
        .post(
            3,
            "/v1/groups/billing/offsets",
            json!({"member_id": member, "generation": generation,
                   "offsets": [{"topic": "orders", "partition": 0, "offset": 1}]}),
        )
        .await;
    check::<CommitReply>("group_commit", s, 200, &b);
    let (s, b) = c.get(1, "/v1/groups/billing/offsets").await;
    check::<GroupOffsets>("group_offsets", s, 200, &b);
    let (s, b) = c.get(2, "/v1/groups/billing").await;
    check::<GroupDescription>("group_describe", s, 200, &b);
    let (s, b) = c.get(3, "/v1/groups").await;
    check::<GroupList>("group_list", s, 200, &b);
    let (s, b) = c
        .post(
            1,
            &format!("/v1/groups/billing/members/{member}/release"),
            json!({"generation": generation}),
        )
        .await;
    check::<HeartbeatReply>("group_release", s, 200, &b);
    let r = c
        .http
        .delete(c.url(2, &format!("/v1/groups/billing/members/{member}")))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    check::<LeaveReply>("group_leave", s, 200, &b);
    let (s, b) = c
        .post(
            3,
            "/v1/groups/billing/offsets/reset",
            json!({"topic": "orders", "to": "earliest"}),
        )
        .await;
    check::<ResetReply>("group_reset", s, 200, &b);
    let r = c
        .http
        .delete(c.url(1, "/v1/groups/billing"))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    check::<GroupDeleted>("group_delete", s, 200, &b);
    let r = c
        .http
        .delete(c.url(1, "/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    check::<TopicDeleted>("topic_delete", s, 200, &b);
    c.shutdown().await;
}

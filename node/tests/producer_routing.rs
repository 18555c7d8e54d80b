//! The Rust `Producer` learns partition leaders and sends to them directly: after the only
//! bootstrap node is gone, records still reach the partition's leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use raftka_client::{Client, NewRecord, Producer, ProducerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producer_sends_to_the_cached_leader_when_its_bootstrap_node_is_gone() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("routed", 1, 3).await;
    let leader = c.leader_of(1, "routed", 0).await.unwrap();
    let bootstrap = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let client = Client::new([c.addrs[&bootstrap].to_string()]).unwrap();
    let producer = Producer::new(client, ProducerConfig::default());
    // The first send goes through the bootstrap node, which forwards it; the client then
    // learns the leader.
    let first = producer
        .send(
            "routed",
            NewRecord::string("via-bootstrap").with_partition(0),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.offset, 0);
    c.crash(bootstrap).await;
    let second = producer
        .send(
            "routed",
            NewRecord::string("to-the-leader").with_partition(0),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        second.offset, 1,
        "sent straight to node {leader}, the leader"
    );
    let values: Vec<String> = c
        .read_all(leader, "routed", 0)
        .await
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(values, ["via-bootstrap", "to-the-leader"]);
    c.restart(bootstrap).await;
    c.shutdown().await;
}

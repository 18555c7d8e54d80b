//! The Rust client learns partition leaders and sends to them directly: after the only
//! bootstrap node is gone, a `Producer`'s records and a `Client::fetch` still reach the
//! partition's leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use raftka_client::{Client, FetchResponse, NewRecord, Producer, ProducerConfig};

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

fn values(r: &FetchResponse) -> Vec<&str> {
    r.records
        .iter()
        .map(|r| r.value.as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetch_goes_to_the_cached_leader_when_its_bootstrap_node_is_gone() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("fetched", 1, 3).await;
    let leader = c.leader_of(1, "fetched", 0).await.unwrap();
    let bootstrap = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let client = Client::new([c.addrs[&bootstrap].to_string()]).unwrap();
    let records = [
        NewRecord::string("a").with_partition(0),
        NewRecord::string("b").with_partition(0),
    ];
    let offsets = client.produce("fetched", &records).await.unwrap();
    assert_eq!(offsets.len(), 2);
    // The first fetch goes through the bootstrap node; the client then learns the leader.
    let first = client.fetch("fetched", 0, 0, 1, 0).await.unwrap();
    assert_eq!(values(&first), ["a"]);
    c.crash(bootstrap).await;
    let second = client.fetch("fetched", 0, 1, 10, 0).await.unwrap();
    assert_eq!(
        values(&second),
        ["b"],
        "fetched straight from node {leader}, the leader"
    );
    assert_eq!(second.high_watermark, 2);
    c.restart(bootstrap).await;
    c.shutdown().await;
}

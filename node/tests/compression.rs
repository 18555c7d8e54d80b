//! Compressed bodies on the public API: produce bodies in gzip or zstd (`Content-Encoding`),
//! compressed replies when asked (`Accept-Encoding`), and bad encodings refused in the error
//! shape without writing anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use raftka_client::compression::decode_reply;
use raftka_client::{Client, Compression, NewRecord};
use serde_json::{json, Value};

fn record(i: usize) -> NewRecord {
    NewRecord {
        key: Some(format!("k{}", i % 7)),
        value: Some(json!({"order": i, "item": "a widget that compresses well"})),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compressed_produce_and_fetch_round_trip_through_any_node() {
    let c = TestCluster::start(3).await;
    c.create_topic("z", 1, 3).await;
    let mut offset = 0u64;
    for (via, codec) in [
        (1, Compression::Gzip),
        (2, Compression::Zstd),
        (3, Compression::None),
    ] {
        let client = Client::new([c.url(via, "")])
            .unwrap()
            .with_compression(codec);
        let records: Vec<NewRecord> = (0..50).map(record).collect();
        let acks = client.produce("z", &records).await.unwrap();
        assert_eq!(acks.len(), 50, "{codec}");
        assert_eq!(acks[0].offset, offset, "{codec}: dense offsets");
        let fetched = client.fetch("z", 0, offset, 50, 0).await.unwrap();
        assert_eq!(fetched.records.len(), 50, "{codec}");
        for (i, r) in fetched.records.iter().enumerate() {
            assert_eq!(r.value["order"], i, "{codec}");
        }
        offset += 50;
    }

    // The reply is compressed only when asked, and then in the codec asked for.
    let url = c.url(
        1,
        "/v1/topics/z/partitions/0/records?offset=0&max_records=100",
    );
    for enc in ["gzip", "zstd"] {
        let r = c
            .http
            .get(&url)
            .header("accept-encoding", enc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(got.as_deref(), Some(enc));
        let raw = r.bytes().await.unwrap();
        let plain = decode_reply(Some(enc), raw.clone()).unwrap();
        assert!(
            raw.len() * 3 < plain.len(),
            "{enc}: {} of {}",
            raw.len(),
            plain.len()
        );
        let body: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(body["records"].as_array().unwrap().len(), 100);
    }
    let r = c.http.get(&url).send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_encodings_are_refused_in_the_error_shape_and_write_nothing() {
    let c = TestCluster::start(1).await;
    c.create_topic("b", 1, 1).await;
    let post = |body: Vec<u8>, encoding: &'static str| {
        let req = c
            .http
            .post(c.url(1, "/v1/topics/b/records"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let body = serde_json::to_vec(&json!({"records": [{"value": 1}]})).unwrap();

    let (s, b) = post(body.clone(), "br").await;
    assert_eq!(s, 415, "{b}");
    assert_eq!(b["error"], "unsupported_media_type", "{b}");
    assert_eq!(b["outcome"], "not_applied", "{b}");

    let (s, b) = post(b"this is not gzip".to_vec(), "gzip").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"], "bad_request", "{b}");
    assert_eq!(b["outcome"], "not_applied", "{b}");

    // A small body that expands past the node's request limit (1 MiB in tests) is a 413.
    let mut big = br#"{"records":[{"value":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
    big.extend_from_slice(br#""}]}"#);
    let bomb = Compression::Zstd.compress(&big).unwrap();
    assert!(bomb.len() < 64 * 1024);
    let (s, b) = post(bomb, "zstd").await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["error"], "payload_too_large", "{b}");

    // Nothing of the above was written; an identity body still is.
    let (s, b) = post(body, "identity").await;
    assert_eq!(s, 200, "{b}");
    let records = c.read_all(1, "b", 0).await;
    assert_eq!(records.len(), 1, "{records:?}");
    c.shutdown().await;
}

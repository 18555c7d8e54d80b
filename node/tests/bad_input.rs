//! Every malformed request gets its documented 4xx in the one error shape, and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want_status: u16, want: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want, "{body}");
    assert!(body["error_code"].as_u64().is_some(), "{body}");
    assert!(body["message"].as_str().is_some(), "{body}");
    assert!(body["retriable"].is_boolean(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_get_documented_4xx_and_leave_the_log_unchanged() {
    let c = TestCluster::start(3).await;
    c.create_topic("t", 2, 3).await;
    let (s, b) = c
        .post(
            2,
            "/v1/topics/t/records",
            json!({"records": [{"key": "k", "value": 1}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let before: Vec<_> = vec![c.read_all(1, "t", 0).await, c.read_all(1, "t", 1).await];

    let raw = |body: &'static str, ct: &'static str| {
        let req = c
            .http
            .post(c.url(1, "/v1/topics/t/records"))
            .header("content-type", ct)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = raw("{not json", "application/json").await;
    assert_error(s, &b, 400, "bad_request");
    assert_eq!(
        b["outcome"], "not_applied",
        "parse errors happen before any write, and say so"
    );
    let (s, b) = raw(r#"{"recs": []}"#, "application/json").await;
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = raw(r#"{"records": []}"#, "text/plain").await;
    assert_error(s, &b, 415, "unsupported_media_type");

    let (s, b) = c
        .post(1, "/v1/topics/t/records", json!({"records": []}))
        .await;
    assert_error(s, &b, 422, "empty_batch");
    assert_eq!(b["outcome"], "not_applied");
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"key": "k"}]}),
        )
        .await;
    assert_error(s, &b, 422, "invalid_record");
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": 1}, {"value_base64": "%%%"}]}),
        )
        .await;
    assert_error(s, &b, 422, "invalid_record");
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": 1, "partition": 7}]}),
        )
        .await;
    assert_error(s, &b, 404, "partition_not_found");
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": 1, "partition": -1}]}),
        )
        .await;
    assert_error(s, &b, 404, "partition_not_found");
    let (s, b) = c
        .post(
            1,
            "/v1/topics/nope/records",
            json!({"records": [{"value": 1}]}),
        )
        .await;
    assert_error(s, &b, 404, "topic_not_found");
    // Oversized body (the test cluster accepts 1 MiB).
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": big}]}),
        )
        .await;
    assert_error(s, &b, 413, "payload_too_large");
    // Oversized record inside an acceptable body (the test cluster's record limit is 256 KiB).
    let rec = "y".repeat(512 * 1024);
    let (s, b) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": rec}]}),
        )
        .await;
    assert_error(s, &b, 413, "payload_too_large");
    assert_eq!(b["outcome"], "not_applied");

    // Fetch errors.
    let (s, b) = c
        .get(1, "/v1/topics/t/partitions/0/records?offset=-1")
        .await;
    assert_error(s, &b, 400, "invalid_offset");
    let (s, b) = c
        .get(1, "/v1/topics/t/partitions/0/records?offset=abc")
        .await;
    assert_error(s, &b, 400, "invalid_offset");
    let (s, b) = c.get(1, "/v1/topics/t/partitions/0/records").await;
    assert_error(s, &b, 400, "invalid_offset");
    let (s, b) = c.get(1, "/v1/topics/t/partitions/9/records?offset=0").await;
    assert_error(s, &b, 404, "partition_not_found");
    let (s, b) = c.get(1, "/v1/topics/t/partitions/x/records?offset=0").await;
    assert_error(s, &b, 404, "partition_not_found");
    let (s, b) = c
        .get(1, "/v1/topics/t/partitions/0/records?offset=999")
        .await;
    assert_error(s, &b, 416, "offset_out_of_range");
    assert!(b["high_watermark"].as_u64().is_some(), "{b}");
    let (s, b) = c
        .get(
            1,
            "/v1/topics/t/partitions/0/records?offset=0&max_records=0",
        )
        .await;
    assert_error(s, &b, 400, "bad_request");

    // Topic admin errors.
    let (s, b) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "bad name!", "partitions": 1}),
        )
        .await;
    assert_error(s, &b, 400, "invalid_topic");
    let (s, b) = c
        .post(1, "/v1/topics", json!({"name": "z", "partitions": 0}))
        .await;
    assert_error(s, &b, 400, "invalid_topic");
    let (s, b) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "z", "replication_factor": 4}),
        )
        .await;
    assert_error(s, &b, 422, "invalid_replication_factor");
    let (s, b) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "z", "configs": {"retention.ms": "soon"}}),
        )
        .await;
    assert_error(s, &b, 400, "invalid_topic");
    let (s, b) = c.get(1, "/v1/nothing-here").await;
    assert_error(s, &b, 404, "not_found");
    let r = c.http.put(c.url(1, "/v1/topics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // Internal endpoints refuse requests without the cluster secret.
    let r = c
        .http
        .post(c.url(1, "/raft/1/append"))
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .http
        .post(c.url(1, "/internal/rpc"))
        .header("x-raftka-secret", "wrong-secret-value")
        .body(vec![0u8])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Nothing changed.
    let after: Vec<_> = vec![c.read_all(3, "t", 0).await, c.read_all(3, "t", 1).await];
    assert_eq!(before, after);
    c.shutdown().await;
}

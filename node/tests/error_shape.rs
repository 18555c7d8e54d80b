//! The error shape keeps its promise: every error of a write endpoint carries
//! `outcome: not_applied` when nothing was written, including the errors that axum's extractors
//! and the router answer before a handler runs (bad JSON, wrong content type, oversized body,
//! a path segment that is not UTF-8, an oversized URI or header block), and reads carry none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use reqwest::Method;
use serde_json::{json, Value};

/// The one error shape, with `outcome` as given (`None`: absent).
fn assert_shape(status: u16, body: &Value, want_status: u16, want: &str, outcome: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want, "{body}");
    let code = body["error_code"].as_u64().expect("error_code");
    assert_eq!(code / 100, u64::from(want_status), "{body}");
    assert!(body["message"].as_str().is_some(), "{body}");
    assert!(body["retriable"].is_boolean(), "{body}");
    assert!(body["request_id"].as_str().is_some(), "{body}");
    match outcome {
        Some(o) => assert_eq!(body["outcome"], o, "{body}"),
        None => assert!(body.get("outcome").is_none(), "{body}"),
    }
}

/// Sends a raw request and reads the reply as JSON (failing on any other content type).
async fn send(
    c: &TestCluster,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut req = c.http.request(method, c.url(1, path));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        ct.contains("application/json"),
        "{status}: content-type '{ct}'"
    );
    (status, r.json().await.unwrap())
}

/// Request headers.
type Headers = Vec<(&'static str, String)>;
/// A bad produce request: what it is, its body and headers, the status and error it gets.
type Case = (&'static str, Vec<u8>, Headers, u16, &'static str);

fn json_ct() -> Headers {
    vec![("content-type", "application/json".to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rejected_write_says_not_applied_in_the_json_shape() {
    let c = TestCluster::start(3).await;
    c.create_topic("t", 2, 3).await;
    let (s, _) = c
        .post(
            1,
            "/v1/topics/t/records",
            json!({"records": [{"value": 1}]}),
        )
        .await;
    assert_eq!(s, 200);
    let before = vec![c.read_all(1, "t", 0).await, c.read_all(1, "t", 1).await];
    let produce = "/v1/topics/t/records";
    let na = Some("not_applied");

    // Invalid produce bodies.
    let cases: Vec<Case> = vec![
        (
            "bad JSON",
            b"{not json".to_vec(),
            json_ct(),
            400,
            "bad_request",
        ),
        (
            "wrong shape",
            br#"{"recs": []}"#.to_vec(),
            json_ct(),
            400,
            "bad_request",
        ),
        (
            "wrong content type",
            br#"{"records": [{"value": 1}]}"#.to_vec(),
            vec![("content-type", "text/plain".to_string())],
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            format!(r#"{{"records": [{{"value": "{}"}}]}}"#, "x".repeat(2 << 20)).into_bytes(),
            json_ct(),
            413,
            "payload_too_large",
        ),
        (
            "bad base64",
            br#"{"records": [{"value_base64": "%%%"}]}"#.to_vec(),
            json_ct(),
            422,
            "invalid_record",
        ),
        (
            "partition out of range",
            br#"{"records": [{"value": 1, "partition": 9}]}"#.to_vec(),
            json_ct(),
            404,
            "partition_not_found",
        ),
        (
            "negative partition",
            br#"{"records": [{"value": 1, "partition": -1}]}"#.to_vec(),
            json_ct(),
            404,
            "partition_not_found",
        ),
        (
            "empty batch",
            br#"{"records": []}"#.to_vec(),
            json_ct(),
            422,
            "empty_batch",
        ),
        (
            "bad idempotency key",
            br#"{"records": [{"value": 1}]}"#.to_vec(),
            vec![
                ("content-type", "application/json".to_string()),
                ("idempotency-key", "x".repeat(300)),
            ],
            400,
            "bad_request",
        ),
    ];
    for (what, body, headers, status, name) in cases {
        let (s, b) = send(&c, Method::POST, produce, &headers, Some(body)).await;
        eprintln!("{what}: {s} {b}");
        assert_shape(s, &b, status, name, na);
    }

    // A topic name that is not UTF-8 (%FF) or not percent-decodable, in a write's path.
    for path in ["/v1/topics/%FF%FE/records", "/v1/topics/a%C3/records"] {
        let (s, b) = send(
            &c,
            Method::POST,
            path,
            &json_ct(),
            Some(br#"{"records": [{"value": 1}]}"#.to_vec()),
        )
        .await;
        assert_shape(s, &b, 400, "bad_request", na);
    }
    // The same path segment in a read: the JSON shape, no outcome.
    let (s, b) = send(&c, Method::GET, "/v1/topics/%FF/configs", &[], None).await;
    assert_shape(s, &b, 400, "bad_request", None);

    // An oversized URI and an oversized header block (under hyper's own limits).
    let long = format!("{produce}?pad={}", "p".repeat(9 * 1024));
    let (s, b) = send(&c, Method::POST, &long, &json_ct(), Some(b"{}".to_vec())).await;
    assert_shape(s, &b, 413, "payload_too_large", na);
    let mut headers = json_ct();
    headers.push(("x-padding", "h".repeat(70 * 1024)));
    let (s, b) = send(&c, Method::POST, produce, &headers, Some(b"{}".to_vec())).await;
    assert_shape(s, &b, 413, "payload_too_large", na);

    // Other write endpoints: router and extractor errors carry the outcome too.
    let (s, b) = send(&c, Method::POST, "/v1/nothing-here", &json_ct(), None).await;
    assert_shape(s, &b, 404, "not_found", na);
    let (s, b) = send(&c, Method::PUT, "/v1/topics", &json_ct(), None).await;
    assert_shape(s, &b, 405, "method_not_allowed", na);
    let (s, b) = send(
        &c,
        Method::POST,
        "/v1/topics",
        &json_ct(),
        Some(br#"{"name": "bad name!"}"#.to_vec()),
    )
    .await;
    assert_shape(s, &b, 400, "invalid_topic", na);
    let (s, b) = send(
        &c,
        Method::PATCH,
        "/v1/topics/t/configs",
        &json_ct(),
        Some(br#"{"configs": {"retention.ms": "soon"}}"#.to_vec()),
    )
    .await;
    assert_shape(s, &b, 400, "invalid_topic", na);
    let (s, b) = send(&c, Method::DELETE, "/v1/topics/nope", &[], None).await;
    assert_shape(s, &b, 404, "topic_not_found", na);
    let (s, b) = send(
        &c,
        Method::POST,
        "/v1/groups/g/members",
        &json_ct(),
        Some(br#"{"topics": "t"}"#.to_vec()),
    )
    .await;
    assert_shape(s, &b, 400, "bad_request", na);
    let (s, b) = send(
        &c,
        Method::POST,
        "/v1/groups/g/offsets",
        &json_ct(),
        Some(br#"{"member_id": "m", "generation": 1, "offsets": [{"topic": "t", "partition": 0, "offset": 0}]}"#.to_vec()),
    )
    .await;
    assert_shape(s, &b, 404, "group_not_found", na);

    // Reads keep their errors without an outcome.
    let (s, b) = send(&c, Method::GET, "/v1/topics/nope", &[], None).await;
    assert_shape(s, &b, 404, "topic_not_found", None);

    // Nothing was written.
    let after = vec![c.read_all(3, "t", 0).await, c.read_all(3, "t", 1).await];
    assert_eq!(before, after);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_names_its_request() {
    let c = TestCluster::start(1).await;
    let produce = |id: Option<&'static str>| {
        let mut req = c
            .http
            .post(c.url(1, "/v1/topics/missing/records"))
            .json(&json!({"records": [{"value": 1}]}));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    // A caller's sane id is kept: in the header and in the error body.
    let r = produce(Some("checkout-7f3a:1")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["x-request-id"], "checkout-7f3a:1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "checkout-7f3a:1", "{body}");
    // Without one, or with one that is not a plain token, the node makes its own.
    let long: &'static str = Box::leak("a".repeat(65).into_boxed_str());
    for given in [None, Some("two words"), Some("a/b"), Some(long)] {
        let r = produce(given).await.unwrap();
        let header = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(header.len(), 16, "{header}");
        assert!(header.bytes().all(|b| b.is_ascii_hexdigit()), "{header}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["request_id"], header.as_str(), "{body}");
    }
    // Two requests never share a made-up id.
    let a = produce(None).await.unwrap();
    let b = produce(None).await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
    c.shutdown().await;
}

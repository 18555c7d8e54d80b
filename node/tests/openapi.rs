//! The OpenAPI document (`GET /openapi.json`) describes exactly the API the router serves: every
//! route of `api::routes` is a path of the document with exactly the methods the router answers
//! (a route added without its `#[utoipa::path]` fails here), every reference resolves, every
//! operation id is unique, every error reply is the one error shape, the document needs no
//! token, and `docs/api.md` links it. That the replies match the document is checked by
//! `scripts/openapi-test.sh` (schemathesis against a real node); the last tests here pin what
//! that run found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::TestCluster;
use raftka_node::config::AuthMode;
use reqwest::Method;
use serde_json::Value;

/// The methods the document may list and the router may serve.
const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// The document's operations: path to its methods.
fn operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_string())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a route template: numeric parameters get `0`, the others `x`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{partition}" | "{id}" if !template.contains("/tokens/") => "0",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` in the document.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route_with_exactly_its_methods() {
    let c = TestCluster::start(1).await;
    let r = c.http.get(c.url(1, "/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let doc: Value = r.json().await.expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented = operations(&doc);

    // The same paths as the router, no more, no less.
    let routed: BTreeSet<String> = raftka_node::api::routes()
        .into_iter()
        .map(|(path, _)| path.to_string())
        .collect();
    let listed: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(
        routed.difference(&listed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes missing from the OpenAPI document (add #[utoipa::path] and list the handler in api::openapi::ApiDoc)"
    );
    assert_eq!(
        listed.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths the router does not serve"
    );

    // The same methods: a method the router does not serve on a path answers 405
    // method_not_allowed (before any handler runs), any other does not.
    for (path, methods) in &documented {
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let r = c
                .http
                .request(method, c.url(1, &concrete(path)))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let routed = !(status == 405 && body["error"] == "method_not_allowed")
                && body["error"] != "not_found";
            assert_eq!(
                routed,
                methods.contains(m),
                "{m} {path}: the router answers {status} {body}, the document lists {methods:?}"
            );
        }
    }
    c.shutdown().await;
}

#[test]
fn every_reference_resolves_and_every_error_is_the_error_shape() {
    let doc = raftka_node::api::openapi::document().expect("the document builds");
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }

    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{m} {path}: no operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{m} {path}: no tag"
            );
            assert!(op["security"].is_array(), "{m} {path}: no security");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{m} {path}: no success status"
            );
            for (status, response) in responses {
                assert_eq!(
                    response["headers"]["x-request-id"]["required"], true,
                    "{m} {path} {status}: x-request-id"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{m} {path} {status}"
                    );
                }
            }
            // Every /v1 operation may be refused by --auth required and may meet an election.
            if path.starts_with("/v1/") {
                for status in ["401", "413", "500", "503", "504"] {
                    assert!(responses.contains_key(status), "{m} {path}: no {status}");
                }
            }
        }
    }
    assert!(
        doc["components"]["securitySchemes"]["bearer_auth"]["scheme"] == "bearer",
        "the bearer scheme"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_needs_no_token() {
    let c = TestCluster::start_with(1, |cfg| {
        cfg.auth = AuthMode::Required;
        cfg.admin_token = Some("openapi-test-admin-token-0123".into());
    })
    .await;
    let r = c.http.get(c.url(1, "/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.http.get(c.url(1, "/v1/topics")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API itself still needs one");
    c.shutdown().await;
}

#[test]
fn the_api_reference_links_the_document() {
    let api_md = include_str!("../../docs/api.md");
    assert!(
        api_md.contains("/openapi.json"),
        "docs/api.md must link GET /openapi.json"
    );
}

// ---- found by the schemathesis run ---------------------------------------------------------

/// A single node whose node registry is filled (the controller fills it shortly after the
/// cluster forms; membership requests answer `503` until then).
async fn single_node() -> TestCluster {
    let c = TestCluster::start(1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.node(1).metadata().cluster.nodes.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "node registry not filled in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c
}

/// `POST /v1/cluster/nodes/1/decommission` on a single node used to answer 200 and leave the
/// node `draining` for good (nothing could ever take its place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_active_node_cannot_be_decommissioned() {
    let c = single_node().await;
    let (s, b) = c.post_empty(1, "/v1/cluster/nodes/1/decommission").await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"], "invalid_node_state", "{b}");
    assert_eq!(b["outcome"], "not_applied", "{b}");
    let (s, cluster) = c.get(1, "/v1/cluster").await;
    assert_eq!(s, 200);
    assert_eq!(cluster["nodes"][0]["state"], "active", "{cluster}");
    c.shutdown().await;
}

/// The rebalance body is optional, and the document says so with a nullable schema: a JSON
/// `null` body plans like an empty one (it used to be a 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_reads_a_null_body_as_no_body() {
    let c = single_node().await;
    for body in ["null", ""] {
        let r = c
            .http
            .post(c.url(1, "/v1/cluster/rebalance"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let b: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body:?}: {b}");
        assert_eq!(b["moves"], serde_json::json!([]), "{b}");
    }
    let (s, b) = c
        .post(
            1,
            "/v1/cluster/rebalance",
            serde_json::json!({"max_moves": 0}),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    c.shutdown().await;
}

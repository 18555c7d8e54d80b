//! Authentication and ACLs, endpoint by endpoint: with `--auth required`, every v1 endpoint
//! answers a request without a token or with an unknown one `401 unauthenticated`, a user
//! without the ACL the endpoint needs `403 forbidden`, and the same user once granted exactly
//! that ACL as it would with auth off. The refused requests change nothing (topics, records,
//! offsets, groups, users and ACLs compared before and after). Internal RPCs still need the
//! cluster secret, whatever token they carry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestCluster;
use raftka_node::config::AuthMode;
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN: &str = "bootstrap-admin-token-0123456789";

fn with_auth(c: &mut raftka_node::Config) {
    c.auth = AuthMode::Required;
    c.admin_token = Some(ADMIN.into());
}

/// Sends one request to node `via` with an optional bearer token.
async fn call(
    c: &TestCluster,
    via: u64,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = c.http.request(method, c.url(via, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn admin(c: &TestCluster, method: Method, path: &str, body: Option<Value>) -> Value {
    let (s, b) = call(c, 1, Some(ADMIN), method, path, body.as_ref()).await;
    assert!((200..300).contains(&s), "{path}: {s} {b}");
    b
}

/// Everything a refused request could have changed, read as the admin.
async fn state(c: &TestCluster) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/v1/topics",
        "/v1/topics/orders",
        "/v1/topics/orders/configs",
        "/v1/topics/orders/partitions/0/records?offset=0&max_records=100",
        "/v1/topics/orders/partitions/1/records?offset=0&max_records=100",
        "/v1/groups",
        "/v1/groups/members-group",
        "/v1/groups/members-group/offsets",
        "/v1/groups/empty-group/offsets",
        "/v1/cluster/reassignments",
        "/v1/security/users",
        "/v1/security/acls",
    ] {
        let mut v = admin(c, Method::GET, path, None).await;
        // Live figures that move on their own.
        if let Some(parts) = v.get_mut("partitions").and_then(Value::as_array_mut) {
            for p in parts {
                if let Some(o) = p.as_object_mut() {
                    o.remove("leader");
                    o.remove("replicas_lag");
                }
            }
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("members");
        }
        out.insert(path.to_string(), v);
    }
    Value::Object(out)
}

/// One endpoint: the request, the ACL it needs (resource type, name, operation) and the status
/// it gets once allowed.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    needs: Vec<(&'static str, &'static str, &'static str)>,
    allowed: u16,
}

fn case(
    method: Method,
    path: &str,
    body: Option<Value>,
    needs: &[(&'static str, &'static str, &'static str)],
    allowed: u16,
) -> Case {
    Case {
        method,
        path: path.to_string(),
        body,
        needs: needs.to_vec(),
        allowed,
    }
}

fn acl(user: &str, (rt, name, op): (&str, &str, &str)) -> Value {
    json!({"principal": user, "resource_type": rt, "resource_name": name,
           "pattern_type": "literal", "operation": op, "permission": "allow"})
}

fn acl_query(user: &str, (rt, name, op): (&str, &str, &str)) -> String {
    format!(
        "/v1/security/acls?principal={user}&resource_type={rt}&resource_name={name}\
         &pattern_type=literal&operation={op}&permission=allow"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_needs_a_token_and_its_acl_and_refusals_change_nothing() {
    let c = TestCluster::start_with(3, with_auth).await;

    // Set up as the bootstrap admin: a topic with records, a group with a member and commits,
    // an empty group with offsets, and two users.
    admin(
        &c,
        Method::POST,
        "/v1/topics",
        Some(json!({"name": "orders", "partitions": 2, "replication_factor": 3})),
    )
    .await;
    for i in 0..4 {
        admin(
            &c,
            Method::POST,
            "/v1/topics/orders/records",
            Some(json!({"records": [{"partition": i % 2, "value": i}]})),
        )
        .await;
    }
    let joined = admin(
        &c,
        Method::POST,
        "/v1/groups/members-group/members",
        Some(json!({"topics": ["orders"], "session_timeout_ms": 60000})),
    )
    .await;
    let member = joined["member_id"].as_str().unwrap().to_string();
    let generation = joined["generation"].as_u64().unwrap();
    admin(
        &c,
        Method::POST,
        &format!("/v1/groups/members-group/members/{member}/heartbeat"),
        None,
    )
    .await;
    admin(
        &c,
        Method::POST,
        "/v1/groups/empty-group/offsets/reset",
        Some(json!({"topic": "orders", "to": "earliest"})),
    )
    .await;
    admin(
        &c,
        Method::POST,
        "/v1/security/users",
        Some(json!({"name": "bob"})),
    )
    .await;
    let token = admin(&c, Method::POST, "/v1/security/users/bob/tokens", None).await;
    let bob = token["token"].as_str().unwrap().to_string();
    assert!(bob.starts_with("rk_"), "{token}");
    admin(
        &c,
        Method::POST,
        "/v1/security/users",
        Some(json!({"name": "spare"})),
    )
    .await;
    let spare_token = admin(&c, Method::POST, "/v1/security/users/spare/tokens", None).await;
    let spare_token_id = spare_token["id"].as_str().unwrap().to_string();

    let m = &member;
    let topic_acl = |op| ("topic", "orders", op);
    let cases = vec![
        case(
            Method::POST,
            "/v1/topics",
            Some(json!({"name": "fresh", "partitions": 1})),
            &[("topic", "fresh", "create")],
            201,
        ),
        case(
            Method::GET,
            "/v1/topics/orders",
            None,
            &[topic_acl("describe")],
            200,
        ),
        case(
            Method::GET,
            "/v1/topics/orders/configs",
            None,
            &[topic_acl("describe")],
            200,
        ),
        case(
            Method::PATCH,
            "/v1/topics/orders/configs",
            Some(json!({"configs": {"retention.ms": 3_600_000}})),
            &[topic_acl("alter")],
            200,
        ),
        case(
            Method::POST,
            "/v1/topics/orders/records",
            Some(json!({"records": [{"partition": 0, "value": "x"}]})),
            &[topic_acl("write")],
            200,
        ),
        case(
            Method::GET,
            "/v1/topics/orders/partitions/0/records?offset=0",
            None,
            &[topic_acl("read")],
            200,
        ),
        case(
            Method::GET,
            "/v1/topics/orders/partitions/0/offsets",
            None,
            &[topic_acl("describe")],
            200,
        ),
        case(
            Method::GET,
            "/v1/groups/members-group",
            None,
            &[("group", "members-group", "describe")],
            200,
        ),
        case(
            Method::GET,
            "/v1/groups/members-group/offsets",
            None,
            &[("group", "members-group", "describe")],
            200,
        ),
        case(
            Method::POST,
            &format!("/v1/groups/members-group/members/{m}/heartbeat"),
            None,
            &[("group", "members-group", "read")],
            200,
        ),
        case(
            Method::POST,
            &format!("/v1/groups/members-group/members/{m}/release"),
            Some(json!({"generation": generation})),
            &[("group", "members-group", "read")],
            200,
        ),
        case(
            Method::POST,
            "/v1/groups/members-group/offsets",
            Some(json!({"member_id": m, "generation": generation,
                         "offsets": [{"topic": "orders", "partition": 0, "offset": 1}]})),
            &[("group", "members-group", "read"), topic_acl("read")],
            200,
        ),
        case(
            Method::POST,
            "/v1/groups/empty-group/offsets/reset",
            Some(json!({"topic": "orders", "to": "latest"})),
            &[("group", "empty-group", "read"), topic_acl("read")],
            200,
        ),
        case(
            Method::POST,
            "/v1/groups/new-group/members",
            Some(json!({"topics": ["orders"]})),
            &[("group", "new-group", "read"), topic_acl("describe")],
            200,
        ),
        case(
            Method::DELETE,
            &format!("/v1/groups/members-group/members/{m}"),
            None,
            &[("group", "members-group", "read")],
            200,
        ),
        case(
            Method::DELETE,
            "/v1/groups/empty-group",
            None,
            &[("group", "empty-group", "delete")],
            200,
        ),
        case(
            Method::GET,
            "/v1/cluster",
            None,
            &[("cluster", "kafka-cluster", "describe")],
            200,
        ),
        case(
            Method::POST,
            "/v1/cluster/rebalance-leaders",
            None,
            &[("cluster", "kafka-cluster", "alter")],
            200,
        ),
        case(
            Method::GET,
            "/v1/cluster/reassignments",
            None,
            &[("cluster", "kafka-cluster", "describe")],
            200,
        ),
        case(
            Method::POST,
            "/v1/cluster/reassignments",
            Some(json!({"topic": "nope", "partition": 0, "replicas": [1, 2, 3]})),
            &[("cluster", "kafka-cluster", "alter")],
            404,
        ),
        case(
            Method::POST,
            "/v1/cluster/rebalance",
            None,
            &[("cluster", "kafka-cluster", "alter")],
            200,
        ),
        case(
            Method::POST,
            "/v1/cluster/nodes/99/decommission",
            None,
            &[("cluster", "kafka-cluster", "alter")],
            404,
        ),
        case(
            Method::DELETE,
            "/v1/cluster/nodes/99?dead=true",
            None,
            &[("cluster", "kafka-cluster", "alter")],
            404,
        ),
        case(
            Method::GET,
            "/v1/security/users",
            None,
            &[("cluster", "kafka-cluster", "describe")],
            200,
        ),
        case(
            Method::GET,
            "/v1/security/acls",
            None,
            &[("cluster", "kafka-cluster", "describe")],
            200,
        ),
        case(
            Method::POST,
            "/v1/security/users",
            Some(json!({"name": "carol"})),
            &[("cluster", "kafka-cluster", "alter")],
            201,
        ),
        case(
            Method::POST,
            "/v1/security/users/spare/tokens",
            None,
            &[("cluster", "kafka-cluster", "alter")],
            201,
        ),
        case(
            Method::DELETE,
            &format!("/v1/security/users/spare/tokens/{spare_token_id}"),
            None,
            &[("cluster", "kafka-cluster", "alter")],
            200,
        ),
        case(
            Method::POST,
            "/v1/security/acls",
            Some(acl("carol", ("topic", "orders", "read"))),
            &[("cluster", "kafka-cluster", "alter")],
            201,
        ),
        case(
            Method::DELETE,
            "/v1/security/users/spare",
            None,
            &[("cluster", "kafka-cluster", "alter")],
            200,
        ),
        // Last: growing the topic bumps the group generation the cases above use.
        case(
            Method::PATCH,
            "/v1/topics/orders",
            Some(json!({"partitions": 3})),
            &[topic_acl("alter")],
            200,
        ),
    ];

    // Refused: no token, an unknown token, a user without the ACL. Sent to every node in turn.
    let before = state(&c).await;
    for (i, k) in cases.iter().enumerate() {
        let via = 1 + (i as u64 % 3);
        let (s, b) = call(&c, via, None, k.method.clone(), &k.path, k.body.as_ref()).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (401, Some("unauthenticated")),
            "{} {}",
            k.method,
            k.path
        );
        assert!(b["request_id"].is_string(), "{b}");
        let (s, b) = call(
            &c,
            via,
            Some("rk_not-a-token"),
            k.method.clone(),
            &k.path,
            k.body.as_ref(),
        )
        .await;
        assert_eq!(
            (s, b["error"].as_str()),
            (401, Some("unauthenticated")),
            "{} {}",
            k.method,
            k.path
        );
        let (s, b) = call(
            &c,
            via,
            Some(&bob),
            k.method.clone(),
            &k.path,
            k.body.as_ref(),
        )
        .await;
        assert_eq!(
            (s, b["error"].as_str()),
            (403, Some("forbidden")),
            "{} {}: {b}",
            k.method,
            k.path
        );
        if k.method != Method::GET {
            assert_eq!(b["outcome"], "not_applied", "{b}");
        }
    }
    // A wrong-scheme header is no token either.
    let r = c
        .http
        .get(c.url(1, "/v1/topics"))
        .header("authorization", format!("Basic {bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        state(&c).await,
        before,
        "refused requests changed something"
    );

    // Lists are filtered to what the caller may describe, not refused.
    let (s, b) = call(&c, 2, Some(&bob), Method::GET, "/v1/topics", None).await;
    assert_eq!(
        (s, b["topics"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
    let (s, b) = call(&c, 2, Some(&bob), Method::GET, "/v1/groups", None).await;
    assert_eq!(
        (s, b["groups"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
    let (s, b) = call(&c, 3, Some(&bob), Method::GET, "/v1/security/whoami", None).await;
    assert_eq!(
        (s, b["principal"].as_str(), b["superuser"].as_bool()),
        (200, Some("bob"), Some(false))
    );
    // The probes stay open.
    for path in ["/healthz", "/readyz"] {
        let (s, _) = call(&c, 1, None, Method::GET, path, None).await;
        assert_eq!(s, 200, "{path}");
    }

    // Allowed: grant bob exactly what each endpoint needs, call it, take the grant back.
    for (i, k) in cases.iter().enumerate() {
        let via = 1 + (i as u64 % 3);
        for need in &k.needs {
            admin(
                &c,
                Method::POST,
                "/v1/security/acls",
                Some(acl("bob", *need)),
            )
            .await;
        }
        // Only the full set passes: with any one of several grants missing it is refused.
        if k.needs.len() > 1 {
            for need in &k.needs {
                admin(&c, Method::DELETE, &acl_query("bob", *need), None).await;
                // The node authorizes from its own metadata replica: until the removal has
                // reached it, the old grant may still hold.
                let mut s = 0;
                for _ in 0..50 {
                    (s, _) = call(
                        &c,
                        via,
                        Some(&bob),
                        k.method.clone(),
                        &k.path,
                        k.body.as_ref(),
                    )
                    .await;
                    if s == 403 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                assert_eq!(s, 403, "{} {} without {need:?}", k.method, k.path);
                admin(
                    &c,
                    Method::POST,
                    "/v1/security/acls",
                    Some(acl("bob", *need)),
                )
                .await;
            }
        }
        // The nodes authorize from their own metadata replica: wait for the grant to reach it.
        let mut got = (0, Value::Null);
        for _ in 0..50 {
            got = call(
                &c,
                via,
                Some(&bob),
                k.method.clone(),
                &k.path,
                k.body.as_ref(),
            )
            .await;
            // 503 (retriable): the node registry is filled a moment after the start.
            if got.0 != 403 && got.0 != 503 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            got.0, k.allowed,
            "{} {} with {:?}: {}",
            k.method, k.path, k.needs, got.1
        );
        for need in &k.needs {
            admin(&c, Method::DELETE, &acl_query("bob", *need), None).await;
        }
    }

    // A deny wins over an allow; a prefixed allow covers every matching name.
    admin(
        &c,
        Method::POST,
        "/v1/security/acls",
        Some(json!({"principal": "bob",
        "resource_type": "topic", "resource_name": "ord", "pattern_type": "prefixed",
        "operation": "read", "permission": "allow"})),
    )
    .await;
    let (s, _) = call(
        &c,
        1,
        Some(&bob),
        Method::GET,
        "/v1/topics/orders/partitions/0/records?offset=0",
        None,
    )
    .await;
    assert_eq!(s, 200);
    admin(
        &c,
        Method::POST,
        "/v1/security/acls",
        Some(json!({"principal": "*",
        "resource_type": "topic", "resource_name": "orders", "pattern_type": "literal",
        "operation": "all", "permission": "deny"})),
    )
    .await;
    let (s, _) = call(
        &c,
        1,
        Some(&bob),
        Method::GET,
        "/v1/topics/orders/partitions/0/records?offset=0",
        None,
    )
    .await;
    assert_eq!(s, 403, "deny wins");

    // A revoked token stops working.
    let token_id = token["id"].as_str().unwrap();
    admin(
        &c,
        Method::DELETE,
        &format!("/v1/security/users/bob/tokens/{token_id}"),
        None,
    )
    .await;
    let (s, _) = call(&c, 1, Some(&bob), Method::GET, "/v1/security/whoami", None).await;
    assert_eq!(s, 401, "revoked");

    // Internal RPCs: a client token (even the admin's) is no cluster secret.
    let r = c
        .http
        .post(c.url(1, "/internal/rpc"))
        .bearer_auth(ADMIN)
        .body(vec![0u8; 4])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_off_lets_everyone_in_as_anonymous() {
    let c = TestCluster::start(1).await;
    let (s, b) = call(&c, 1, None, Method::GET, "/v1/security/whoami", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["principal"], "anonymous");
    assert_eq!(b["auth_required"], false);
    let (s, _) = call(&c, 1, Some("anything"), Method::GET, "/v1/topics", None).await;
    assert_eq!(s, 200, "tokens are ignored with auth off");
    c.shutdown().await;
}

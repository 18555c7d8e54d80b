//! Unit tests of the consumer-group client: reply parsing and the outcome of every reply.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::harness::node_list::NodeList;
use crate::harness::recorder::Recorder;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicI64;
use std::sync::Mutex;

/// A server that answers one request with `reply`.
fn serve_once(reply: String) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(reply.as_bytes());
    });
    addr
}

fn reply(status: u16, body: &Json) -> String {
    let b = body.to_string();
    format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{b}",
        b.len()
    )
}

fn refused() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// Runs `op` on a member of a one-node cluster at `addr` and returns the completion type
/// it recorded and the process afterwards.
fn completion(addr: SocketAddr, op: impl FnOnce(&mut GroupClient<'_, '_>)) -> (String, u64) {
    let dir = std::env::temp_dir().join(format!(
        "raftka-jepsen-group-test-{}-{}",
        std::process::id(),
        addr.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let recorder = Recorder::create(&path, Instant::now()).unwrap();
    let t = http::Timeouts {
        connect: Duration::from_millis(500),
        total: Duration::from_secs(2),
    };
    let shared = Shared {
        recorder: &recorder,
        nodes: NodeList::new(vec![(1, addr)]),
        topic: "jepsen".into(),
        partitions: 3,
        next_value: AtomicI64::new(0),
        max_offset: Mutex::new(BTreeMap::new()),
        send_timeouts: t,
        fetch_timeouts: t,
        max_records: 10,
    };
    let mut c = GroupClient::new(&shared, 0, 8, Mode::Offsets);
    c.member = Some(Member {
        id: "m-1".into(),
        generation: 3,
        owned: vec![0],
        revoking: vec![],
        last_heartbeat: Instant::now(),
        stale: false,
    });
    op(&mut c);
    let process = c.q.process;
    recorder.flush();
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let last: Json = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    (last["type"].as_str().unwrap().to_owned(), process)
}

fn error_body(error: &str, outcome: Option<&str>) -> Json {
    let mut j = json!({"error_code": 1, "error": error, "message": "m", "retriable": false});
    if let Some(o) = outcome {
        j["outcome"] = json!(o);
    }
    j
}

#[test]
fn commit_outcomes_follow_the_error_body() {
    let ok = serve_once(reply(200, &json!({"committed": 1})));
    assert_eq!(
        completion(ok, |c| assert!(c.commit(0, 0, 5))),
        ("ok".into(), 0)
    );
    for (status, error) in [
        (409, "fenced"),
        (409, "partition_not_assigned"),
        (503, "not_leader"),
    ] {
        let addr = serve_once(reply(status, &error_body(error, Some("not_applied"))));
        assert_eq!(
            completion(addr, |c| assert!(!c.commit(0, 0, 5))),
            ("fail".into(), 0)
        );
    }
    // Unknown outcome, or none stated: the commit may have happened; the process retires.
    for body in [
        error_body("write_outcome_unknown", Some("unknown")),
        error_body("internal", None),
    ] {
        let addr = serve_once(reply(503, &body));
        assert_eq!(
            completion(addr, |c| assert!(!c.commit(0, 0, 5))),
            ("info".into(), 8)
        );
    }
    assert_eq!(
        completion(refused(), |c| assert!(!c.commit(0, 0, 5))),
        ("fail".into(), 0)
    );
    let truncated = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}".into());
    assert_eq!(
        completion(truncated, |c| assert!(!c.commit(0, 0, 5))),
        ("info".into(), 8)
    );
}

#[test]
fn committed_offset_reads_are_ok_fail_or_info() {
    let body = json!({"group": "g", "generation": 3,
                      "offsets": [{"topic": "jepsen", "partition": 1, "offset": 9}]});
    let addr = serve_once(reply(200, &body));
    let (kind, _) = completion(addr, |c| assert_eq!(c.fetch_committed(0, 1), Some(Some(9))));
    assert_eq!(kind, "ok");
    let addr = serve_once(reply(200, &body));
    let (kind, _) = completion(addr, |c| assert_eq!(c.fetch_committed(0, 2), Some(None)));
    assert_eq!(kind, "ok");
    let addr = serve_once(reply(503, &error_body("leader_not_available", None)));
    assert_eq!(
        completion(addr, |c| assert_eq!(c.fetch_committed(0, 1), None)),
        ("fail".into(), 0)
    );
    assert_eq!(
        completion(refused(), |c| assert_eq!(c.fetch_committed(0, 1), None)),
        ("fail".into(), 0)
    );
    let truncated = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}".into());
    assert_eq!(
        completion(truncated, |c| assert_eq!(c.fetch_committed(0, 1), None)),
        ("info".into(), 8)
    );
}

#[test]
fn view_keeps_only_the_topic_and_sorts() {
    let j = json!({"generation": 4,
        "assignment": [{"topic": "jepsen", "partition": 2}, {"topic": "other", "partition": 0},
                       {"topic": "jepsen", "partition": 0}],
        "revoking": [{"topic": "jepsen", "partition": 2}]});
    let v = parse_view("jepsen", &j).unwrap();
    assert_eq!(
        v,
        GroupView {
            generation: 4,
            owned: vec![0, 2],
            revoking: vec![2]
        }
    );
    assert!(parse_view("jepsen", &json!({"assignment": []})).is_none());
}

#[test]
fn committed_offsets_are_found_per_partition() {
    let j = json!({"group": "g", "generation": 3, "offsets": [
        {"topic": "jepsen", "partition": 1, "offset": 42},
        {"topic": "other", "partition": 0, "offset": 7}]});
    assert_eq!(parse_committed("jepsen", 1, &j), Some(Some(42)));
    assert_eq!(parse_committed("jepsen", 0, &j), Some(None));
    assert_eq!(parse_committed("other", 0, &j), Some(Some(7)));
    assert_eq!(parse_committed("jepsen", 0, &json!({"error": "x"})), None);
}

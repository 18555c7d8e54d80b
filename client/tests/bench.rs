//! Acceptance: `raftka bench produce` against a 3-node cluster completes and verifies every
//! acknowledged record; `raftka bench consume` then reads them all; `bench e2e` receives every
//! acknowledged record once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic with a message on failure

mod common;

use common::{ok, Cluster};

fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().expect("a final line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("final line is not JSON ({e}): {line}"))
}

#[test]
fn bench_produce_verifies_and_bench_consume_reads_everything() {
    let cluster = Cluster::start();
    let produced = ok(
        &cluster.raftka(&[
            "bench",
            "produce",
            "--topic",
            "b",
            "--records",
            "20000",
            "--batch",
            "100",
            "--concurrency",
            "4",
            "--max-seconds",
            "120",
            "--json",
        ]),
        "bench produce",
    );
    let p = last_json(&produced);
    assert_eq!(p["records"], 20_000, "{p}");
    assert_eq!(p["verified"], 20_000, "{p}");
    assert!(p["p99_ms"].as_f64().is_some_and(|x| x > 0.0), "{p}");

    let consumed = ok(
        &cluster.raftka(&[
            "bench",
            "consume",
            "--topic",
            "b",
            "--max-seconds",
            "120",
            "--json",
        ]),
        "bench consume",
    );
    let c = last_json(&consumed);
    assert_eq!(c["records"], 20_000, "{c}");
    assert_eq!(c["complete"], true, "{c}");

    let e2e = ok(
        &cluster.raftka(&[
            "bench",
            "e2e",
            "--records",
            "500",
            "--rate",
            "500",
            "--max-seconds",
            "60",
            "--json",
        ]),
        "bench e2e",
    );
    let e = last_json(&e2e);
    assert_eq!(e["records"], 500, "{e}");
    assert_eq!(e["acked"], 500, "{e}");
    assert_eq!(e["duplicates"], 0, "{e}");
}

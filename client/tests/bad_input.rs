//! Acceptance: a bad flag, an unreachable bootstrap and a missing topic each end with one error
//! line on stderr and a non-zero exit code (2 usage, 3 unreachable, 1 server error).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic with a message on failure

mod common;

use std::net::TcpListener;
use std::process::Output;

use common::{raftka_with, Cluster};

fn assert_one_line_error(out: &Output, code: i32, contains: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, got: {stderr}");
    assert!(lines[0].starts_with("raftka: error: "), "{stderr}");
    assert!(
        lines[0].contains(contains),
        "{stderr} should mention {contains}"
    );
    assert!(
        !stderr.contains("Error {") && !stderr.contains("Server {"),
        "no Rust debug dump: {stderr}"
    );
}

/// An address where nothing listens: a port bound and released again.
fn closed_address() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a.to_string()
}

#[test]
fn a_bad_flag_is_a_one_line_usage_error() {
    let out = raftka_with("127.0.0.1:1", &["topic", "list", "--no-such-flag"], None);
    assert_one_line_error(&out, 2, "--no-such-flag");
    let out = raftka_with("127.0.0.1:1", &["consume", "t"], None);
    assert_one_line_error(&out, 2, "--partition");
    let out = raftka_with(
        "127.0.0.1:1",
        &["produce", "t", "--header", "nokey"],
        Some(b"x\n"),
    );
    assert_one_line_error(&out, 2, "--header");
}

#[test]
fn an_unreachable_bootstrap_is_a_one_line_error_with_exit_code_3() {
    let bootstrap = format!("{},{}", closed_address(), closed_address());
    for args in [
        &["topic", "list"][..],
        &["cluster", "status"][..],
        &["consume", "t", "--partition", "0"][..],
    ] {
        let out = raftka_with(&bootstrap, args, None);
        assert_one_line_error(&out, 3, "no node reachable");
    }
    let out = raftka_with(&bootstrap, &["produce", "t"], Some(b"a\nb\n"));
    assert_one_line_error(&out, 3, "no node reachable");
}

#[test]
fn a_missing_topic_is_the_servers_error_on_one_line() {
    let cluster = Cluster::start();
    // The first address is dead: the CLI fails over to the live nodes.
    let bootstrap = format!("{},{}", closed_address(), cluster.bootstrap);
    let out = raftka_with(&bootstrap, &["topic", "describe", "nope"], None);
    assert_one_line_error(&out, 1, "topic_not_found (40401)");
    let out = raftka_with(&bootstrap, &["produce", "nope"], Some(b"a\nb\n"));
    assert_one_line_error(&out, 1, "topic_not_found (40401)");
    let out = raftka_with(&bootstrap, &["consume", "nope", "--partition", "0"], None);
    assert_one_line_error(&out, 1, "topic_not_found (40401)");
    let out = raftka_with(&bootstrap, &["topic", "delete", "nope"], None);
    assert_one_line_error(&out, 1, "topic_not_found (40401)");
}

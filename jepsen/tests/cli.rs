//! The `raftka-check` binary: its exit status says whether a history file is valid.

// Test helpers outside #[test] functions may panic on setup failure: that is the report.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use raftka_jepsen::history::{write_events, HistoryBuilder};

/// A fresh directory for one test of this process; the test removes it when done.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raftka-check-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `b` to `dir/name.jsonl`.
fn history_file(dir: &std::path::Path, name: &str, b: &HistoryBuilder) -> PathBuf {
    let path = dir.join(format!("{name}.jsonl"));
    let file = std::fs::File::create(&path).expect("create");
    write_events(file, b.events()).expect("write");
    path
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftka-check"))
        .args(args)
        .output()
        .expect("run raftka-check");
    let code = out.status.code().expect("exit code");
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn small_run(final_value: i64) -> HistoryBuilder {
    let mut b = HistoryBuilder::new();
    b.send(1, "t/0", 10, 0)
        .poll(2, &[("t/0", &[(0, 10)])])
        .final_poll(9, &[("t/0", &[(0, final_value)])]);
    b
}

#[test]
fn exit_status_follows_the_verdict() {
    let dir = temp_dir("verdicts");
    let valid = history_file(&dir, "valid", &small_run(10));
    let path = valid.to_string_lossy().into_owned();
    let thresholds = ["--min-ok-sends", "1", "--min-ok-polls", "1"];

    let (code, out) = run(&[&[path.as_str()][..], &thresholds].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("verdict: VALID"), "{out}");

    let (code, out) = run(&[path.as_str()]);
    assert_eq!(code, 4, "default thresholds make a tiny run vacuous: {out}");

    let invalid = history_file(&dir, "invalid", &small_run(11));
    let path = invalid.to_string_lossy().into_owned();
    let (code, out) = run(&[&[path.as_str(), "--json"][..], &thresholds].concat());
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(report["verdict"], "invalid");
    assert_eq!(report["anomaly_counts"]["inconsistent-offsets"], 1);
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[test]
fn unreadable_history_exits_2() {
    let dir = temp_dir("unreadable");
    let path = dir.join("garbage.jsonl");
    std::fs::write(&path, "not json\n").expect("write");
    let (code, _) = run(&[path.to_string_lossy().as_ref()]);
    assert_eq!(code, 2);
    let (code, _) = run(&["/nonexistent/history.jsonl"]);
    assert_eq!(code, 2);
    std::fs::remove_dir_all(dir).expect("clean up");
}

//! The store's format version: the real binary refuses a data directory written by a newer
//! format with a clear message and a non-zero exit, and changes nothing in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.insert(
            p.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(&p).unwrap(),
        );
    }
    out
}

#[test]
fn a_store_of_a_newer_format_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("FORMAT"), "raftka-store-format 99\n").unwrap();
    std::fs::write(data.join("CURRENT"), "MANIFEST-000005\n").unwrap();
    let before = snapshot(&data);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftka-node"))
        .args(["--id", "1", "--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(&data)
        .args(["--peers", &format!("1={addr}")])
        .args(["--secret", "store-format-test-secret"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait: the refusal comes before anything starts.
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("the node started on a store of a newer format");
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("store format 99") && stderr.contains("newer Raftka"),
        "a clear message: {stderr}"
    );
    assert_eq!(snapshot(&data), before, "the data directory is unchanged");
}

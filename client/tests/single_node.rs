//! The smallest way to try Raftka: `raftka-node` with no flags is a one-node cluster (data in
//! `./raftka-data`, listening on 127.0.0.1:19091, a generated cluster secret) that the `raftka`
//! CLI reaches with no flags either. And the other side of the secret rule: a node with peers
//! refuses to start without a secret of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{node_bin, ok};

/// The node's and the CLI's default address.
const DEFAULT_ADDR: &str = "127.0.0.1:19091";

/// A command with no `RAFTKA_*` variable from the caller's environment, so only defaults apply.
fn bare(program: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAFTKA_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir).env("NO_COLOR", "1");
    cmd
}

/// The node process, stopped (SIGTERM, then SIGKILL) when dropped.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `raftka-node` with no flags in `dir` and waits (60 s at most) for its `ready` line.
fn start_bare_node(dir: &Path) -> NodeProcess {
    let mut child = bare(&node_bin(), dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn raftka-node");
    let stdout = child.stdout.take().expect("stdout");
    let node = NodeProcess(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ready") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("raftka-node with no flags is ready within 60 s");
    assert!(line.contains(DEFAULT_ADDR), "{line}");
    assert!(line.contains("id=1"), "{line}");
    node
}

/// Runs the CLI with no flags but the command's own, in `dir`.
fn raftka(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = bare(Path::new(env!("CARGO_BIN_EXE_raftka")), dir);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn raftka");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("raftka runs")
}

#[test]
fn a_node_with_no_flags_is_a_single_node_cluster_the_cli_reaches() {
    assert!(
        TcpListener::bind(DEFAULT_ADDR).is_ok(),
        "{DEFAULT_ADDR} is taken: this test starts a node with the default address"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_bare_node(dir.path());

    let data = dir.path().join("raftka-data");
    assert!(data.is_dir(), "the data lives in ./raftka-data");
    let secret = data.join("cluster-secret");
    let text = std::fs::read_to_string(&secret).expect("a generated cluster secret");
    assert_eq!(text.trim().len(), 64, "32 random bytes in hex");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret file is private");
    }

    // The CLI's defaults reach it; a topic gets replication factor 1 without asking.
    ok(
        &raftka(dir.path(), &["topic", "create", "demo"], None),
        "topic create",
    );
    let described = ok(
        &raftka(
            dir.path(),
            &["topic", "describe", "demo", "-o", "json"],
            None,
        ),
        "topic describe",
    );
    let described: serde_json::Value = serde_json::from_str(&described).expect("json");
    assert_eq!(described["replication_factor"], 1, "{described}");
    ok(
        &raftka(
            dir.path(),
            &["produce", "demo"],
            Some("hello from one node\n"),
        ),
        "produce",
    );
    let consumed = ok(
        &raftka(
            dir.path(),
            &["consume", "demo", "--partition", "0", "--max", "1"],
            None,
        ),
        "consume",
    );
    assert_eq!(consumed.trim(), "hello from one node");

    // A restart with no flags finds the same cluster, secret and record.
    drop(node);
    let _node = start_bare_node(dir.path());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), text);
    let again = ok(
        &raftka(
            dir.path(),
            &["consume", "demo", "--partition", "0", "--max", "1"],
            None,
        ),
        "consume after restart",
    );
    assert_eq!(again.trim(), "hello from one node");
}

#[test]
fn a_node_with_peers_refuses_a_missing_or_published_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let peers = ["--id", "1", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"];
    let cases: [(&str, &[&str]); 3] = [
        ("no secret", &[]),
        (
            "the former built-in default",
            &["--secret", "raftka-dev-secret"],
        ),
        (
            "a placeholder from the docs",
            &["--secret", "change-me-please"],
        ),
    ];
    for (what, extra) in cases {
        let out = bare(&node_bin(), dir.path())
            .args(peers)
            .args(["--data-dir", "d"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run raftka-node");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains("secret"), "{what}: {stderr}");
        assert!(
            !dir.path().join("d").exists(),
            "{what}: refused before touching the data directory"
        );
    }
}

#[test]
fn json_logs_name_the_request_in_every_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
    let child = bare(&node_bin(), dir.path())
        .args(["--listen", &addr, "--log-format", "json"])
        .env("RUST_LOG", "info,raftka_node=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn raftka-node");
    let mut node = NodeProcess(child);
    let stdout = node.0.stdout.take().expect("stdout");
    let mut ready = String::new();
    BufReader::new(stdout)
        .read_line(&mut ready)
        .expect("ready line");
    assert!(ready.starts_with("ready"), "{ready}");
    let out = Command::new("curl")
        .args(["-s", "-H", "x-request-id: follow-me-42"])
        .arg(format!("http://{addr}/v1/topics/none"))
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(body["request_id"], "follow-me-42", "{body}");
    drop(node);
    let text = std::fs::read_to_string(dir.path().join("node.log")).expect("log");
    let mut lines = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["span"]["request_id"] == "follow-me-42" {
            lines += 1;
        }
    }
    assert!(lines >= 1, "no log line names the request:\n{text}");
}

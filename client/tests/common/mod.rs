//! Shared by the CLI tests: a real 3-node cluster started with `scripts/cluster.sh` in a temp
//! directory on free ports (stopped by a Drop guard), and a way to run the `raftka` binary.

#![allow(dead_code)] // each test binary uses a different part of this module
#![allow(clippy::expect_used)] // test support: panics with a message on failure

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "../../../node/tests/support/certs.rs"]
pub mod certs;

/// The workspace root (the parent of `client/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("client/ has a parent")
        .to_path_buf()
}

/// The node binary: `$RAFTKA_NODE_BIN`, else `<workspace>/target/debug/raftka-node`.
pub fn node_bin() -> PathBuf {
    let bin = std::env::var_os("RAFTKA_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/raftka-node"));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p raftka-node` or set RAFTKA_NODE_BIN",
        bin.display()
    );
    bin
}

/// A base port whose next `n` ports are free on 127.0.0.1 right now.
fn free_base_port(n: u16) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    for i in 0..200u64 {
        let base =
            20_000 + ((seed.wrapping_mul(2_654_435_761).wrapping_add(i * 7_919)) % 40_000) as u16;
        if (0..n).all(|k| TcpListener::bind(("127.0.0.1", base + k)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range found");
}

/// A running cluster (3 nodes unless started with [`Cluster::start_n`]); stopped (SIGTERM, then
/// SIGKILL of its own PIDs) when dropped.
pub struct Cluster {
    // Dropped after `drop` below has stopped the nodes.
    dir: tempfile::TempDir,
    pub bootstrap: String,
    /// Node 1's port; node `i` listens on `base + i - 1` (as `scripts/cluster.sh` places them).
    base: u16,
    /// The nodes' extra environment, for every `cluster.sh` run (restarts too).
    envs: Vec<(String, String)>,
    /// The CA of a TLS cluster ([`Cluster::start_tls`]); `raftka` gets it as `RAFTKA_CA`.
    pub ca: Option<PathBuf>,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_n(3)
    }

    /// A cluster of `n` nodes.
    pub fn start_n(n: u16) -> Cluster {
        Self::start_with_spare(n, 0)
    }

    /// A cluster of `n` nodes whose next `spare` ports (those of nodes `n+1..=n+spare`, for
    /// `cluster.sh add-node`) were free too when it started.
    pub fn start_with_spare(n: u16, spare: u16) -> Cluster {
        Self::start_with_env(n, spare, &[])
    }

    /// A cluster of `n` nodes (and `spare` free ports after them) whose nodes get these
    /// environment variables (e.g. `RAFTKA_AUTH=required`); `cluster.sh` passes its
    /// environment on to the nodes.
    pub fn start_with_env(n: u16, spare: u16, envs: &[(&str, &str)]) -> Cluster {
        Self::start_inner(n, spare, envs, false)
    }

    /// A cluster of `n` nodes that serve HTTPS only, to clients and to each other
    /// (`cluster.sh start --tls`), with a CA and certificate made by rcgen; [`Cluster::ca`] is
    /// the CA and `bootstrap` holds `https://` addresses.
    pub fn start_tls(n: u16) -> Cluster {
        Self::start_inner(n, 0, &[], true)
    }

    fn start_inner(n: u16, spare: u16, envs: &[(&str, &str)], tls: bool) -> Cluster {
        let bin = node_bin();
        let mut last = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("raftka-cli-test")
                .tempdir()
                .expect("temp dir");
            let base = free_base_port(n + spare);
            let ca = tls.then(|| certs::write_test_certs(&dir.path().join("cluster/tls")).ca);
            let out = Command::new(workspace().join("scripts/cluster.sh"))
                .args([
                    "start",
                    "-n",
                    &n.to_string(),
                    "--base-port",
                    &base.to_string(),
                    "--dir",
                ])
                .arg(dir.path().join("cluster"))
                .arg("--bin")
                .arg(&bin)
                .args(tls.then_some("--tls"))
                .envs(envs.iter().copied())
                .stdin(Stdio::null())
                .output()
                .expect("run scripts/cluster.sh");
            let scheme = if tls { "https://" } else { "" };
            let cluster = Cluster {
                dir,
                bootstrap: (0..n)
                    .map(|k| format!("{scheme}127.0.0.1:{}", base + k))
                    .collect::<Vec<_>>()
                    .join(","),
                ca,
                base,
                envs: envs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            if out.status.success() {
                return cluster;
            }
            // A port taken between the check and the start: try other ports.
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("cluster did not start: {last}");
    }

    /// Runs `raftka ARGS` against this cluster (trusting its CA when it runs TLS).
    pub fn raftka(&self, args: &[&str]) -> Output {
        self.raftka_inner(args, None)
    }

    /// Runs `raftka ARGS` with `stdin` as standard input.
    pub fn raftka_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.raftka_inner(args, Some(stdin))
    }

    fn raftka_inner(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        match &self.ca {
            Some(ca) => {
                let ca = ca.to_str().expect("utf-8 path");
                raftka_env(&self.bootstrap, args, stdin, &[("RAFTKA_CA", ca)])
            }
            None => raftka_with(&self.bootstrap, args, stdin),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `host:port` of node `id` (1-based; nodes added with `cluster.sh add-node` too).
    pub fn addr(&self, id: u64) -> String {
        let port = u64::from(self.base) + id - 1;
        format!("127.0.0.1:{port}")
    }

    /// Node `id`'s directory in the cluster directory (`node-<id>`: `data`, `pid`, logs).
    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join("cluster").join(format!("node-{id}"))
    }

    /// The PID `cluster.sh` recorded for node `id`, when that process still runs this node
    /// (its command line names the node's data directory), as the script itself checks
    /// before it signals anything.
    pub fn node_pid(&self, id: u64) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.node_dir(id).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let data = self.node_dir(id).join("data");
        let data = data.to_string_lossy();
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == data.as_bytes())
            .then_some(pid)
    }

    /// Runs `scripts/cluster.sh ARGS --dir <this cluster>` and panics with its output when it
    /// fails. Only the PIDs recorded in the cluster directory are signalled.
    pub fn script(&self, args: &[&str]) -> String {
        let out = Command::new(workspace().join("scripts/cluster.sh"))
            .args(args)
            .arg("--dir")
            .arg(self.dir.path().join("cluster"))
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kill -9` of node `id` (`cluster.sh kill`).
    pub fn kill(&self, id: u64) {
        self.script(&["kill", &id.to_string()]);
    }

    /// Starts node `id` again and waits until it is ready (`cluster.sh restart`).
    pub fn restart(&self, id: u64) {
        self.script(&["restart", &id.to_string(), "--timeout", "90"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(workspace().join("scripts/cluster.sh"))
            .args(["stop", "--dir"])
            .arg(self.dir.path().join("cluster"))
            .stdin(Stdio::null())
            .output();
    }
}

/// Runs the `raftka` binary with RAFTKA_BOOTSTRAP set and colours off.
pub fn raftka_with(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    raftka_env(bootstrap, args, stdin, &[])
}

/// [`raftka_with`] with more environment variables.
pub fn raftka_env(
    bootstrap: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    envs: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftka"));
    cmd.args(args)
        .envs(envs.iter().copied())
        .env("RAFTKA_BOOTSTRAP", bootstrap)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn raftka");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("raftka runs")
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a whole partition from offset 0 through `client`, as `(offset, value)` for string
/// values.
pub async fn read_partition(
    client: &raftka_client::Client,
    topic: &str,
    partition: u32,
) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = client
            .fetch(topic, partition, offset, 10_000, 0)
            .await
            .unwrap_or_else(|e| panic!("fetch {topic}/{partition} at {offset}: {e}"));
        for rec in &r.records {
            let v = rec.value.as_str().expect("string values").to_string();
            out.push((rec.offset, v));
        }
        offset += r.records.len() as u64;
        if offset >= r.high_watermark {
            return out;
        }
        assert!(
            !r.records.is_empty(),
            "an empty fetch below the high watermark"
        );
    }
}

//! The namespace-aware launcher: real `raftka-node` processes, one per node namespace.
//!
//! Node `i` runs as
//!
//! ```text
//! ip netns exec rkj-n<i> raftka-node --id <i> --listen 198.18.0.<10+i>:9092 \
//!     --data-dir <cell>/node-<i>/data --peers 1=198.18.0.11:9092,… [timing flags]
//! ```
//!
//! with the cluster secret in `RAFTKA_CLUSTER_SECRET` (so it does not show in `ps`). This is
//! `scripts/cluster.sh` moved into namespaces: the same flags, the same per-node directory
//! (`data/`, `node.log` appended across restarts, `stdout` with the `ready` line). `ip netns
//! exec` execs the node in place, so the PID of the child is the node's PID. Every PID is also
//! written to `<pid dir>/node-<i>` as `PID DATA_DIR`, which `jepsen/run`'s exit trap uses to
//! kill, after checking `/proc/PID/cmdline`, any node this process could not stop itself.
//!
//! Only processes this launcher started are ever signalled, and only through their PID.
//!
//! In clock cells each node is started with libfaketime preloaded, reading its offset from
//! `<cell>/node-<i>/faketime`; the nemesis rewrites that file to move the node's clocks.
//!
//! Membership: a node added later runs in a spare slot's namespace as
//! `raftka-node --id <slot> --join <members' addresses> …` (and is restarted with the same
//! flags). A node that left the cluster for good (drained and removed, or removed as dead) is
//! *retired*: its id is never started again, so a removed node never comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::{self, Timeouts};
use super::topology::Topology;

/// Where libfaketime's multithreaded preload library lives on Debian.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// How the nodes of a cell are started.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The `raftka-node` binary.
    pub bin: PathBuf,
    /// The cell's directory; node `i` lives in `node-<i>/` below it.
    pub dir: PathBuf,
    /// Where PID files go (read by `jepsen/run`'s exit trap).
    pub pid_dir: PathBuf,
    /// The network.
    pub topology: Topology,
    /// Extra flags for every node (timings).
    pub node_args: Vec<String>,
    /// Preload libfaketime (clock cells).
    pub faketime: bool,
}

/// One node's process, if running.
#[derive(Debug, Default)]
struct NodeProc {
    child: Option<Child>,
    paused: bool,
    starts: u32,
    /// `--join` seeds when the node joined a running cluster (`None`: one of the initial nodes).
    join: Option<String>,
    /// Whether it may exit on its own without that being a crash (it is being drained).
    may_exit: bool,
    /// Left the cluster for good: never started again.
    retired: bool,
}

/// A running cluster of node processes.
#[derive(Debug)]
pub struct Cluster {
    spec: LaunchSpec,
    /// Every slot, spares included.
    nodes: BTreeMap<u64, NodeProc>,
    /// The ids in the cluster as the harness knows it: the initial nodes, plus the nodes that
    /// joined, minus the retired ones.
    members: BTreeSet<u64>,
    /// Unexpected exits seen (node id, exit status): a node that died without being killed.
    pub crashes: Vec<(u64, String)>,
}

const SECRET: &str = "raftka-jepsen-secret";

impl Cluster {
    /// A cluster with no node started yet.
    pub fn new(spec: LaunchSpec) -> Self {
        let nodes = spec
            .topology
            .slots()
            .into_iter()
            .map(|id| (id, NodeProc::default()))
            .collect();
        let members = spec.topology.ids().into_iter().collect();
        Cluster {
            spec,
            nodes,
            members,
            crashes: Vec::new(),
        }
    }

    /// The cluster's members as the harness knows them, ascending.
    pub fn members(&self) -> Vec<u64> {
        self.members.iter().copied().collect()
    }

    /// Whether `id` is a member (started or to be started, not retired).
    pub fn is_member(&self, id: u64) -> bool {
        self.members.contains(&id)
    }

    /// Spare slots never used yet, ascending.
    pub fn free_slots(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(id, n)| {
                !self.members.contains(id) && !n.retired && n.starts == 0 && n.join.is_none()
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Starts node `id` in its (spare) slot as a new member joining through `seeds`.
    ///
    /// # Errors
    /// When the slot is unknown or was used before, or the process cannot be started.
    pub fn join(&mut self, id: u64, seeds: &[std::net::SocketAddr]) -> Result<(), String> {
        if !self.free_slots().contains(&id) {
            return Err(format!("slot {id} is not a free spare slot"));
        }
        let seeds: Vec<String> = seeds.iter().map(ToString::to_string).collect();
        if let Some(n) = self.nodes.get_mut(&id) {
            n.join = Some(seeds.join(","));
        }
        self.members.insert(id);
        self.start(id)
    }

    /// Allows node `id` to exit on its own (a node being drained may shut itself down once
    /// it is removed); such an exit is not a crash.
    pub fn allow_exit(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.may_exit = true;
        }
    }

    /// Node `id` left the cluster for good: it is no longer a member and is never started
    /// again. Its process, if any, is left alone (see [`Cluster::stop`]).
    pub fn retire(&mut self, id: u64) {
        self.members.remove(&id);
        if let Some(n) = self.nodes.get_mut(&id) {
            n.retired = true;
            n.may_exit = true;
        }
    }

    /// Whether node `id` was retired.
    pub fn is_retired(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.retired)
    }

    /// The network.
    pub fn topology(&self) -> Topology {
        self.spec.topology
    }

    /// Node `id`'s directory.
    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.spec.dir.join(format!("node-{id}"))
    }

    /// Node `id`'s libfaketime offset file.
    pub fn clock_file(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("faketime")
    }

    /// Whether clock faults are possible in this cluster.
    pub fn has_fake_clocks(&self) -> bool {
        self.spec.faketime
    }

    /// Starts node `id` unless it is already running.
    ///
    /// # Errors
    /// When the process cannot be spawned or its files cannot be created.
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        self.reap(id);
        if self.is_running(id) {
            return Ok(());
        }
        if self.is_retired(id) {
            return Err(format!(
                "node {id} left the cluster: its id is never started again"
            ));
        }
        let membership = match self.nodes.get(&id).and_then(|n| n.join.clone()) {
            Some(seeds) => ["--join".to_owned(), seeds],
            None => ["--peers".to_owned(), self.spec.topology.peers_arg()],
        };
        let t = self.spec.topology;
        let dir = self.node_dir(id);
        let data = dir.join("data");
        fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let append = |name: &str| -> Result<File, String> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let stdout = File::create(dir.join("stdout")).map_err(|e| e.to_string())?;
        let stderr = append("node.log")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &t.node_ns(id)])
            .arg(&self.spec.bin)
            .args(["--id", &id.to_string()])
            .args(["--listen", &t.node_addr(id).to_string()])
            .arg("--data-dir")
            .arg(&data)
            .args(&membership)
            .args(&self.spec.node_args)
            .env("RAFTKA_CLUSTER_SECRET", SECRET)
            .env("RUST_LOG", "info,openraft=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if self.spec.faketime {
            let clock = self.clock_file(id);
            if !clock.exists() {
                fs::write(&clock, "+0\n").map_err(|e| format!("{}: {e}", clock.display()))?;
            }
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &clock)
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting node {id}: {e}"))?;
        let pid_file = self.spec.pid_dir.join(format!("node-{id}"));
        let _ = fs::create_dir_all(&self.spec.pid_dir);
        fs::write(&pid_file, format!("{} {}\n", child.id(), data.display()))
            .map_err(|e| format!("{}: {e}", pid_file.display()))?;
        if let Some(n) = self.nodes.get_mut(&id) {
            n.child = Some(child);
            n.paused = false;
            n.starts += 1;
        }
        Ok(())
    }

    /// Starts every member that is not running.
    ///
    /// # Errors
    /// The first node that could not be started.
    pub fn start_all(&mut self) -> Result<(), String> {
        for id in self.members() {
            self.start(id)?;
        }
        Ok(())
    }

    /// Collects the exit of node `id` if it ended on its own; records it as a crash.
    fn reap(&mut self, id: u64) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if let Some(child) = n.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                if !n.may_exit {
                    self.crashes.push((id, status.to_string()));
                }
                n.child = None;
                n.paused = false;
            }
        }
    }

    /// Whether node `id`'s process is alive (paused counts as alive).
    pub fn is_running(&mut self, id: u64) -> bool {
        self.reap(id);
        self.nodes.get(&id).is_some_and(|n| n.child.is_some())
    }

    /// Whether node `id` is stopped with SIGSTOP.
    pub fn is_paused(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.paused)
    }

    /// Node `id`'s PID, if running.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes.get(&id)?.child.as_ref().map(Child::id)
    }

    /// `kill -9` of node `id` (no-op if it is not running).
    pub fn kill(&mut self, id: u64) {
        self.reap(id);
        if let Some(n) = self.nodes.get_mut(&id) {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            n.paused = false;
        }
    }

    fn signal(&self, id: u64, sig: &str) -> Result<(), String> {
        let pid = self
            .pid(id)
            .ok_or_else(|| format!("node {id} is not running"))?;
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {sig} {pid} failed"))
        }
    }

    /// SIGSTOP of node `id`.
    ///
    /// # Errors
    /// When the node is not running.
    pub fn pause(&mut self, id: u64) -> Result<(), String> {
        self.signal(id, "-STOP")?;
        if let Some(n) = self.nodes.get_mut(&id) {
            n.paused = true;
        }
        Ok(())
    }

    /// SIGCONT of node `id` (no-op unless paused).
    pub fn resume(&mut self, id: u64) {
        if self.is_paused(id) {
            let _ = self.signal(id, "-CONT");
        }
        if let Some(n) = self.nodes.get_mut(&id) {
            n.paused = false;
        }
    }

    /// Stops node `id`: SIGCONT, SIGTERM, then SIGKILL after `grace` (no-op if not running).
    pub fn stop(&mut self, id: u64, grace: Duration) {
        self.resume(id);
        if !self.is_running(id) {
            return;
        }
        let _ = self.signal(id, "-TERM");
        let deadline = Instant::now() + grace;
        // Bounded by the deadline.
        while Instant::now() < deadline {
            let done = match self.nodes.get_mut(&id).and_then(|n| n.child.as_mut()) {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(n) = self.nodes.get_mut(&id) {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            n.paused = false;
        }
        let _ = fs::remove_file(self.spec.pid_dir.join(format!("node-{id}")));
    }

    /// Stops every node: SIGCONT, SIGTERM, then SIGKILL after `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        let ids = self.spec.topology.slots();
        for id in &ids {
            self.resume(*id);
            if self.is_running(*id) {
                let _ = self.signal(*id, "-TERM");
            }
        }
        let deadline = Instant::now() + grace;
        for id in &ids {
            while Instant::now() < deadline {
                let done = match self.nodes.get_mut(id).and_then(|n| n.child.as_mut()) {
                    Some(c) => !matches!(c.try_wait(), Ok(None)),
                    None => true,
                };
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Some(n) = self.nodes.get_mut(id) {
                if let Some(mut child) = n.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            let _ = fs::remove_file(self.spec.pid_dir.join(format!("node-{id}")));
        }
    }

    /// Whether node `id` answers `GET /readyz` with 200.
    pub fn is_ready(&self, id: u64) -> bool {
        let t = Timeouts {
            connect: Duration::from_millis(300),
            total: Duration::from_millis(1000),
        };
        http::request(self.spec.topology.node_addr(id), "GET", "/readyz", None, t)
            .is_ok_and(|r| r.status == 200)
    }

    /// Waits until every node in `ids` is ready, or `timeout` passes.
    ///
    /// # Errors
    /// The nodes still not ready at the deadline.
    pub fn wait_ready(&mut self, ids: &[u64], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<u64> = ids.to_vec();
        while !pending.is_empty() {
            pending.retain(|id| !self.is_ready(*id));
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let exited: Vec<u64> = pending
                    .clone()
                    .into_iter()
                    .filter(|id| !self.is_running(*id))
                    .collect();
                return Err(format!(
                    "nodes {pending:?} not ready after {timeout:?} (exited: {exited:?}); see {}",
                    self.spec.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// How often each node was started.
    pub fn starts(&self) -> BTreeMap<u64, u32> {
        self.nodes.iter().map(|(id, n)| (*id, n.starts)).collect()
    }

    /// The cell directory.
    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A panic or early return must not leave nodes behind.
        for n in self.nodes.values_mut() {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

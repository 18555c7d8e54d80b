//! One cell: a workload against a fresh cluster under one nemesis, from setup to verdict.
//!
//! 1. start every node in its namespace and wait until all are ready;
//! 2. create the topic and wait until every partition has a leader;
//! 3. run the clients and the nemesis's schedule side by side until the deadline;
//! 4. heal everything (with membership changes: wait until they settle and check the
//!    placement), wait until every member is ready and every partition has a leader;
//! 5. final phase: read every partition from offset 0 up to the highest offset seen;
//! 6. stop the nodes and check the history.
//!
//! Everything lands in the cell's directory: `history.jsonl`, `report.txt`, `report.json`,
//! `schedule.json` and `node-<i>/` (data, `node.log`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::{timeouts_for, Shared};
use super::cluster::{Cluster, LaunchSpec};
use super::http::{self, Timeouts};
use super::nemesis::{self, Nemesis, NemesisSpec, Room, Timing};
use super::node_list::NodeList;
use super::recorder::Recorder;
use super::rng::Rng;
use super::topology::Topology;
use super::workload::{self, Load, Workload};
use crate::checker::{check, CheckConfig, Report, Verdict};
use crate::history::read_jsonl;

/// The topic every cell writes to.
pub const TOPIC: &str = "jepsen";

/// Everything that defines a cell, apart from its seed.
#[derive(Debug, Clone)]
pub struct CellSpec {
    /// `workload/nemesis`, or `canary-<name>/nemesis`.
    pub name: String,
    /// What the clients do.
    pub workload: Workload,
    /// The nemesis.
    pub nemesis: NemesisSpec,
    /// How long clients run (the final phase comes after).
    pub duration: Duration,
    /// Fault and rest lengths.
    pub timing: Timing,
    /// Clients and rate.
    pub load: Load,
    /// Partitions of the topic (= keys).
    pub partitions: u32,
    /// Replicas of each partition.
    pub replication: u32,
    /// The node binary.
    pub bin: PathBuf,
    /// The node's `--request-timeout-ms`.
    pub request_timeout_ms: u64,
}

/// What became of a cell.
#[derive(Debug)]
pub struct CellResult {
    /// The cell's name.
    pub name: String,
    /// Its seed.
    pub seed: u64,
    /// The checker's report, if the cell got that far.
    pub report: Option<Report>,
    /// The history file.
    pub history: PathBuf,
    /// Why the cell failed outside the checker: setup errors, node crashes, nemesis errors,
    /// an incomplete final phase.
    pub problems: Vec<String>,
    /// Wall time of the whole cell.
    pub elapsed: Duration,
}

impl CellResult {
    /// Whether the cell passed: a valid history and nothing else wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.report.as_ref().is_some_and(Report::is_valid)
    }

    /// Whether the checker found anomalies (what a canary must produce).
    pub fn has_anomalies(&self) -> bool {
        self.report
            .as_ref()
            .is_some_and(|r| r.verdict == Verdict::Invalid)
    }
}

/// A file-system-safe form of a cell name.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn node_args(request_timeout_ms: u64) -> Vec<String> {
    [
        "--heartbeat-ms",
        "250",
        "--election-min-ms",
        "600",
        "--election-max-ms",
        "1000",
        "--request-timeout-ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([request_timeout_ms.to_string()])
    .collect()
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        total: Duration::from_secs(5),
    }
}

/// Creates the topic through any node (retried: nothing is written by a failed create).
fn create_topic(nodes: &NodeList, spec: &CellSpec, timeout: Duration) -> Result<(), String> {
    let body = json!({"name": TOPIC, "partitions": spec.partitions,
                      "replication_factor": spec.replication, "configs": {}})
    .to_string();
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    let mut attempt = 0usize;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        let addr = nodes.get(attempt);
        attempt += 1;
        match http::request(addr, "POST", "/v1/topics", Some(body.as_bytes()), quick()) {
            Ok(r) if r.status == 201 || r.status == 409 => return Ok(()),
            Ok(r) => last = format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("could not create topic: {last}"))
}

/// Waits until some node reports a leader for every partition.
fn wait_leaders(nodes: &NodeList, partitions: u32, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    let mut attempt = 0usize;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        let addr = nodes.get(attempt);
        attempt += 1;
        match http::request(addr, "GET", &format!("/v1/topics/{TOPIC}"), None, quick()) {
            Ok(r) if r.status == 200 => {
                let j = r.json();
                let parts = j["partitions"].as_array().cloned().unwrap_or_default();
                let led = parts
                    .iter()
                    .filter(|p| p["leader"].as_u64().is_some())
                    .count();
                if led == partitions as usize {
                    return Ok(());
                }
                last = format!("{led} of {partitions} partitions have a leader");
            }
            Ok(r) => last = format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "partitions without leader after {timeout:?}: {last}"
    ))
}

/// Runs one cell in `dir` (created afresh) and checks its history.
pub fn run_cell(spec: &CellSpec, seed: u64, dir: &Path, pid_dir: &Path, t: Topology) -> CellResult {
    let started = Instant::now();
    let history = dir.join("history.jsonl");
    let mut result = CellResult {
        name: spec.name.clone(),
        seed,
        report: None,
        history: history.clone(),
        problems: Vec::new(),
        elapsed: Duration::ZERO,
    };
    if let Err(e) = run_phases(spec, seed, dir, pid_dir, t, &mut result) {
        result.problems.push(e);
    }
    if history.exists() {
        let config = CheckConfig::default();
        match read_jsonl(&history) {
            Ok(h) => {
                let report = check(&h, &config);
                let _ = std::fs::write(dir.join("report.txt"), report.summary());
                let _ = std::fs::write(dir.join("report.json"), report.to_json());
                result.report = Some(report);
            }
            Err(e) => result.problems.push(format!("unreadable history: {e}")),
        }
    }
    result.elapsed = started.elapsed();
    result
}

fn run_phases(
    spec: &CellSpec,
    seed: u64,
    dir: &Path,
    pid_dir: &Path,
    t: Topology,
    result: &mut CellResult,
) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut rng = Rng::derive(seed, &spec.name);
    let room = Room {
        nodes: t.nodes,
        spares: t.spares,
        min_active: u64::from(spec.replication) + 1,
    };
    let steps = nemesis::schedule(&spec.nemesis, &mut rng, spec.duration, spec.timing, room);
    let shown: Vec<_> = steps
        .iter()
        .map(|s| {
            json!({"at_s": s.at.as_secs(), "hold_s": s.hold.as_secs(),
                   "faults": s.faults.iter().map(|f| f.name()).collect::<Vec<_>>()})
        })
        .collect();
    let _ = std::fs::write(
        dir.join("schedule.json"),
        serde_json::to_string_pretty(&shown).unwrap_or_default(),
    );

    let mut cluster = Cluster::new(LaunchSpec {
        bin: spec.bin.clone(),
        dir: dir.to_path_buf(),
        pid_dir: pid_dir.to_path_buf(),
        topology: t,
        node_args: node_args(spec.request_timeout_ms),
        faketime: spec.nemesis.needs_fake_clock(),
    });
    cluster.start_all()?;
    cluster.wait_ready(&t.ids(), Duration::from_secs(60))?;
    let nodes = NodeList::new(t.ids().iter().map(|id| (*id, t.node_addr(*id))).collect());
    create_topic(&nodes, spec, Duration::from_secs(30))?;
    wait_leaders(&nodes, spec.partitions, Duration::from_secs(30))?;

    let start = Instant::now();
    let recorder = Recorder::create(&result.history, start).map_err(|e| e.to_string())?;
    let (send_timeouts, fetch_timeouts) =
        timeouts_for(Duration::from_millis(spec.request_timeout_ms));
    let shared = Shared {
        recorder: &recorder,
        nodes,
        topic: TOPIC.to_owned(),
        partitions: spec.partitions,
        next_value: AtomicI64::new(0),
        max_offset: Mutex::new(BTreeMap::new()),
        send_timeouts,
        fetch_timeouts,
        max_records: 200,
    };
    let deadline = start + spec.duration;
    let nemesis_errors = std::thread::scope(|scope| {
        let nemesis = scope.spawn(|| {
            let mut n = Nemesis::new(
                &mut cluster,
                &recorder,
                TOPIC,
                &shared.nodes,
                spec.replication as usize,
            );
            n.run(&steps, start);
            n.errors
        });
        workload::run(&shared, spec.workload, spec.load, seed, deadline);
        nemesis
            .join()
            .unwrap_or_else(|_| vec!["nemesis panicked".to_owned()])
    });
    result.problems.extend(nemesis_errors);

    // Final phase: everything is healed; let the cluster recover, then read it all.
    let recovered = cluster
        .wait_ready(&cluster.members(), Duration::from_secs(60))
        .and_then(|()| wait_leaders(&shared.nodes, spec.partitions, Duration::from_secs(60)));
    if let Err(e) = recovered {
        result
            .problems
            .push(format!("no recovery after healing: {e}"));
    }
    let fin = workload::final_reads(&shared, shared.nodes.len(), Duration::from_secs(60));
    if !fin.complete {
        result.problems.push(format!(
            "final reads incomplete (reached, target): {:?}",
            fin.reached
        ));
    }
    recorder.flush();
    cluster.stop_all(Duration::from_secs(10));
    for (id, status) in &cluster.crashes {
        result.problems.push(format!(
            "node {id} exited on its own ({status}); see its node.log"
        ));
    }
    let _ = std::fs::write(
        dir.join("starts.json"),
        serde_json::to_string(&cluster.starts()).unwrap_or_default(),
    );
    Ok(())
}

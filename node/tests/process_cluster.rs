//! Real-process fault tests: a 3-node cluster of `raftka-node` processes run by
//! `scripts/cluster.sh`, a concurrent producer over the public HTTP API, `kill -9` of nodes, and
//! a full read-back that checks every acknowledged record is exactly where it was acknowledged.
//!
//! What counts as written, from the producer's point of view:
//! * `200` with offsets: **acknowledged** — must be readable at exactly that partition/offset.
//! * an error with `"outcome":"not_applied"` (or a refused connection): definitely not written;
//!   the same batch is retried on another node.
//! * an error with `"outcome":"unknown"`, a timeout or a broken connection: **maybe written** —
//!   each such value may appear at most once and never at an acknowledged offset.
//!   Values that were never sent, or only ever failed with `not_applied`, must not appear at all.
//!
//! The two tests run one after the other (a process-wide lock): the machine has 2 cores.
//! The leader-kill test runs twice: over plain HTTP, and with TLS on every listener and between
//! the nodes (`cluster.sh start --tls` with certificates made by rcgen).
//!
//! Set `RAFTKA_KEEP_TEST_CLUSTER=1` to keep the cluster directory (data and logs) of a failed run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};

#[path = "support/certs.rs"]
mod certs;

const TOPIC: &str = "t";
const PARTITIONS: u32 = 3;
const NODES: u64 = 3;
const BATCH: i64 = 100;

/// Serialises the tests of this file: each runs 3 nodes plus a producer on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());
/// Distinguishes the port ranges of successive clusters started by this process.
static CLUSTER_SEQ: AtomicU64 = AtomicU64::new(0);

fn started() -> &'static Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now)
}

macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("[{:>7.2}s] {}", started().elapsed().as_secs_f64(), format!($($arg)*))
    };
}

/// `text`, cut to at most 300 characters for the log.
fn short(text: &str) -> String {
    if text.chars().count() <= 300 {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(300).collect::<String>())
    }
}

/// Runs `body` on a fresh multi-threaded runtime while holding the file-wide test lock.
fn run_serial<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let _ = started();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    rt.block_on(body())
}

// -------------------------------------------------------------------------------------------------
// The cluster, driven through scripts/cluster.sh
// -------------------------------------------------------------------------------------------------

/// A cluster started by `scripts/cluster.sh start` in a temporary directory. Dropping it runs
/// `cluster.sh stop` (also on panic) and, unless the test called [`Cluster::passed`], prints the
/// tail of every node's log.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    base_port: u16,
    script: PathBuf,
    passed: bool,
    /// The CA of a TLS cluster (its nodes serve HTTPS only, to clients and to each other).
    ca: Option<PathBuf>,
}

impl Cluster {
    /// Starts a `NODES`-node cluster over plain HTTP.
    async fn start() -> Result<Self> {
        Self::start_with(false).await
    }

    /// Starts a `NODES`-node cluster (TLS everywhere when `tls`), trying a few port ranges if
    /// one is taken.
    async fn start_with(tls: bool) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh");
        let bin = env!("CARGO_BIN_EXE_raftka-node");
        let pid = u64::from(std::process::id());
        let mut last_err = anyhow!("no attempt");
        for _attempt in 0..4 {
            let seq = CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed);
            let slot = (pid % 2000 + seq * 397) % 8000;
            let base_port = u16::try_from(20_000 + slot * 5).context("port range")?;
            let dir = tempfile::Builder::new()
                .prefix("raftka-process-test-")
                .tempdir()
                .context("creating the cluster directory")?;
            let mut cluster = Cluster {
                dir_path: dir.path().to_path_buf(),
                dir: Some(dir),
                base_port,
                script: script.clone(),
                passed: false,
                ca: None,
            };
            if tls {
                cluster.ca = Some(certs::write_test_certs(&cluster.dir_path.join("tls")).ca);
            }
            log!(
                "starting a {NODES}-node cluster on ports {base_port}.. in {}",
                cluster.dir_path.display()
            );
            let nodes = NODES.to_string();
            let port = base_port.to_string();
            let mut args = vec![
                "start",
                "-n",
                &nodes,
                "--base-port",
                &port,
                "--bin",
                bin,
                "--timeout",
                "90",
            ];
            if tls {
                args.push("--tls");
            }
            match cluster.run(&args).await {
                Ok(out) => {
                    log!("cluster up:\n{out}");
                    return Ok(cluster);
                }
                Err(e) => {
                    let port_taken = format!("{e:#}").contains("already in use");
                    // This attempt's cluster (if any) is stopped by Drop; its logs are not wanted
                    // when the only problem was a taken port.
                    cluster.passed = port_taken;
                    if !port_taken {
                        return Err(e);
                    }
                    last_err = e;
                }
            }
        }
        Err(last_err)
    }

    fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", u64::from(self.base_port) + id - 1)
    }

    fn url(&self, id: u64, path: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr(id), path)
    }

    /// A client for this cluster: one that trusts its CA when it runs TLS.
    fn http_client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(2));
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).context("reading the test CA")?;
            let ca = reqwest::Certificate::from_pem(&pem).context("parsing the test CA")?;
            builder = builder
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        builder.build().context("building the HTTP client")
    }

    /// Runs `cluster.sh ARGS --dir DIR`; fails (with its output) when it exits non-zero.
    async fn run(&self, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new("bash")
            .arg(&self.script)
            .args(args)
            .arg("--dir")
            .arg(&self.dir_path)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("running cluster.sh {args:?}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!(
                "cluster.sh {args:?} failed ({}):\n{stdout}\n{stderr}",
                out.status
            );
        }
        Ok(stdout)
    }

    /// Marks the test as passed: Drop then skips printing the node logs.
    fn passed(mut self) {
        self.passed = true;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.dir_path.join("cluster.env").exists() {
            return; // cluster.sh start got nowhere: no node was started.
        }
        let stop = std::process::Command::new("bash")
            .arg(&self.script)
            .args(["stop", "--timeout", "15", "--dir"])
            .arg(&self.dir_path)
            .stdin(std::process::Stdio::null())
            .output();
        match stop {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "cluster.sh stop failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("could not run cluster.sh stop: {e}"),
        }
        if self.passed && !std::thread::panicking() {
            return;
        }
        for id in 1..=NODES {
            let log = self.dir_path.join(format!("node-{id}/node.log"));
            if let Ok(text) = std::fs::read_to_string(&log) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(60)..];
                eprintln!(
                    "----- last {} lines of {} -----\n{}",
                    tail.len(),
                    log.display(),
                    tail.join("\n")
                );
            }
        }
        if std::env::var_os("RAFTKA_KEEP_TEST_CLUSTER").is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("RAFTKA_KEEP_TEST_CLUSTER: kept {}", kept.display());
            }
        }
    }
}

// -------------------------------------------------------------------------------------------------
// HTTP helpers
// -------------------------------------------------------------------------------------------------

/// The error body every failed request carries.
#[derive(Debug, Clone)]
struct ApiErr {
    status: u16,
    code: i64,
    error: String,
    retriable: bool,
    outcome: Option<String>,
    raw: String,
}

impl ApiErr {
    fn parse(status: u16, raw: String) -> Self {
        let v: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        ApiErr {
            status,
            code: v["error_code"].as_i64().unwrap_or(0),
            error: v["error"].as_str().unwrap_or("").to_string(),
            retriable: v["retriable"].as_bool().unwrap_or(false),
            outcome: v["outcome"].as_str().map(str::to_string),
            raw,
        }
    }

    fn is_not_applied(&self) -> bool {
        self.outcome.as_deref() == Some("not_applied")
    }
}

impl std::fmt::Display for ApiErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {} {}: {}",
            self.status, self.code, self.error, self.raw
        )
    }
}

/// GET `url` as JSON. `Ok(Err(_))` is an API error, `Err(_)` a transport error.
async fn get_json(
    client: &reqwest::Client,
    url: &str,
) -> Result<std::result::Result<Value, ApiErr>> {
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .with_context(|| format!("GET {url}: body"))?;
    if status == 200 {
        Ok(Ok(
            serde_json::from_str(&text).with_context(|| format!("GET {url}: bad JSON {text}"))?
        ))
    } else {
        Ok(Err(ApiErr::parse(status, text)))
    }
}

/// Creates the test topic through any node, retrying retriable `not_applied` errors.
async fn create_topic(cluster: &Cluster, client: &reqwest::Client) -> Result<()> {
    let body =
        json!({"name": TOPIC, "partitions": PARTITIONS, "replication_factor": 3, "configs": {}});
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut maybe_created = false;
    let mut attempt = 0u64;
    loop {
        let id = attempt % NODES + 1;
        attempt += 1;
        ensure!(
            Instant::now() < deadline,
            "could not create topic '{TOPIC}' within 30 s"
        );
        match client
            .post(cluster.url(id, "/v1/topics"))
            .json(&body)
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                match status {
                    201 => {
                        let v: Value = serde_json::from_str(&text).context("create topic reply")?;
                        ensure!(v["name"] == TOPIC, "create topic replied {text}");
                        return Ok(());
                    }
                    409 if maybe_created => return Ok(()),
                    _ => {
                        let e = ApiErr::parse(status, text);
                        if !e.retriable {
                            bail!("creating topic: {e}");
                        }
                        maybe_created |= !e.is_not_applied();
                        log!(
                            "create topic via node {id}: {}; retrying",
                            short(&e.to_string())
                        );
                    }
                }
            }
            Err(e) => {
                maybe_created |= !e.is_connect();
                log!(
                    "create topic via node {id}: {}; retrying",
                    short(&e.to_string())
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One partition as described by `GET /v1/topics/{t}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionInfo {
    leader: Option<u64>,
    high_watermark: u64,
    log_start_offset: u64,
}

/// `GET /v1/topics/t` from node `id`, parsed per partition.
async fn describe(
    cluster: &Cluster,
    client: &reqwest::Client,
    id: u64,
) -> Result<BTreeMap<u32, PartitionInfo>> {
    let v = match get_json(client, &cluster.url(id, &format!("/v1/topics/{TOPIC}"))).await? {
        Ok(v) => v,
        Err(e) => bail!("describe via node {id}: {e}"),
    };
    let parts = v["partitions"]
        .as_array()
        .ok_or_else(|| anyhow!("describe: no partitions in {v}"))?;
    let mut out = BTreeMap::new();
    for p in parts {
        let partition = p["partition"]
            .as_u64()
            .ok_or_else(|| anyhow!("describe: bad partition {p}"))?;
        out.insert(
            u32::try_from(partition)?,
            PartitionInfo {
                leader: p["leader"].as_u64(),
                high_watermark: p["high_watermark"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("describe: no high_watermark in {p}"))?,
                log_start_offset: p["log_start_offset"].as_u64().unwrap_or(0),
            },
        );
    }
    ensure!(
        out.len() == PARTITIONS as usize,
        "describe: expected {PARTITIONS} partitions, got {v}"
    );
    Ok(out)
}

/// Waits (bounded) until some node describes every partition with a leader; returns that view.
async fn wait_for_leaders(
    cluster: &Cluster,
    client: &reqwest::Client,
    live: &[u64],
) -> Result<BTreeMap<u32, PartitionInfo>> {
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last = String::new();
    loop {
        for &id in live {
            match describe(cluster, client, id).await {
                Ok(d) if d.values().all(|p| p.leader.is_some()) => return Ok(d),
                Ok(d) => last = format!("node {id}: {d:?}"),
                Err(e) => last = format!("{e:#}"),
            }
        }
        ensure!(
            Instant::now() < deadline,
            "partitions still without leader after 45 s; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (bounded) until the nodes of `live` name a leader for every partition, none of them
/// `gone`; returns that view.
async fn wait_for_leader_change(
    cluster: &Cluster,
    client: &reqwest::Client,
    live: &[u64],
    gone: u64,
) -> Result<BTreeMap<u32, PartitionInfo>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = wait_for_leaders(cluster, client, live).await?;
        if d.values().all(|p| p.leader != Some(gone)) {
            return Ok(d);
        }
        ensure!(
            Instant::now() < deadline,
            "30 s after node {gone} died, partitions still name it as leader: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}

/// Waits (bounded) until every node reports a leader for every partition and the same high
/// watermarks, unchanged over two polls; returns the high watermark per partition.
async fn wait_converged(
    cluster: &Cluster,
    client: &reqwest::Client,
    live: &[u64],
) -> Result<BTreeMap<u32, u64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut previous: Option<BTreeMap<u32, u64>> = None;
    let mut last = String::new();
    loop {
        let mut views = Vec::new();
        for &id in live {
            match describe(cluster, client, id).await {
                Ok(d) => views.push(d),
                Err(e) => last = format!("{e:#}"),
            }
        }
        if views.len() == live.len() {
            let hws: Vec<BTreeMap<u32, u64>> = views
                .iter()
                .map(|d| d.iter().map(|(p, i)| (*p, i.high_watermark)).collect())
                .collect();
            let leaders_known = views.iter().all(|d| d.values().all(|p| p.leader.is_some()));
            if leaders_known && hws.iter().all(|h| *h == hws[0]) {
                if previous.as_ref() == Some(&hws[0]) {
                    return Ok(hws[0].clone());
                }
                previous = Some(hws[0].clone());
            } else {
                previous = None;
                last = format!("views differ or lack leaders: {views:?}");
            }
        }
        ensure!(
            Instant::now() < deadline,
            "cluster did not converge within 60 s; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One fetched record, reduced to what the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fetched {
    offset: u64,
    key: Option<String>,
    value: Value,
}

/// Reads partition `p` from offset 0 up to `hw` through node `id`, page by page.
async fn fetch_all(
    cluster: &Cluster,
    client: &reqwest::Client,
    id: u64,
    p: u32,
    hw: u64,
) -> Result<Vec<Fetched>> {
    let mut out: Vec<Fetched> = Vec::new();
    let mut offset = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut empty_pages = 0;
    while offset < hw {
        ensure!(
            Instant::now() < deadline,
            "fetching partition {p} via node {id} took over 60 s (at offset {offset} of {hw})"
        );
        let url = cluster.url(
            id,
            &format!("/v1/topics/{TOPIC}/partitions/{p}/records?offset={offset}&max_records=1000&max_bytes=4194304&max_wait_ms=0"),
        );
        let v = match get_json(client, &url).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) if e.retriable => {
                log!("fetch via node {id}: {}; retrying", short(&e.to_string()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok(Err(e)) => bail!("fetch p{p} offset {offset} via node {id}: {e}"),
            Err(e) => {
                log!("fetch via node {id}: {e:#}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let fetched_hw = v["high_watermark"]
            .as_u64()
            .ok_or_else(|| anyhow!("fetch: no high_watermark in {v}"))?;
        ensure!(
            fetched_hw >= hw,
            "fetch via node {id}: p{p} high_watermark {fetched_hw} went below the converged {hw}"
        );
        let records = v["records"]
            .as_array()
            .ok_or_else(|| anyhow!("fetch: no records array"))?;
        if records.is_empty() {
            empty_pages += 1;
            ensure!(empty_pages < 20, "fetch via node {id}: p{p} returns no records at offset {offset} below high watermark {hw}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for r in records {
            let o = r["offset"]
                .as_u64()
                .ok_or_else(|| anyhow!("fetch: record without offset: {r}"))?;
            if o >= hw {
                break;
            }
            out.push(Fetched {
                offset: o,
                key: r["key"].as_str().map(str::to_string),
                value: r["value"].clone(),
            });
        }
        let next = out.last().map_or(offset, |r| r.offset + 1);
        ensure!(
            next > offset,
            "fetch via node {id}: p{p} made no progress at offset {offset}"
        );
        offset = next;
    }
    Ok(out)
}

// -------------------------------------------------------------------------------------------------
// The producer's ledger
// -------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Ledger {
    /// value -> (partition, offset) for every acknowledged record.
    acked: HashMap<i64, (u32, u64)>,
    /// (partition, offset) -> value, to catch two acks for one offset.
    acked_at: HashMap<(u32, u64), i64>,
    /// Values whose write outcome is unknown.
    maybe: HashSet<i64>,
    /// Contract violations seen while producing.
    anomalies: Vec<String>,
    /// Counters for the summary.
    not_applied_retries: u64,
    connect_retries: u64,
    unknown_batches: u64,
    partial_batches: u64,
    dropped_batches: u64,
}

struct Producer {
    ledger: Mutex<Ledger>,
    acked_count: AtomicUsize,
    next_value: AtomicI64,
    stop: AtomicBool,
    /// Every request is sent to node `(rr % NODES) + 1`.
    rr: AtomicU64,
    /// Each task starts at most one batch per `pace` (so that a fast machine does not produce
    /// millions of records before the fault phases are over).
    pace: Duration,
    /// No value at or above this is ever sent: a hard bound on the records produced.
    value_limit: i64,
}

enum Outcome {
    Acked(Vec<(u32, u64)>),
    /// Definitely not written: retry elsewhere.
    NotApplied(String),
    /// Maybe written.
    Unknown(String),
    /// An error reply (outcome `unknown`) that still lists offsets for the records of the
    /// partitions that did commit: those are acknowledged, the others maybe written.
    Partial(Vec<Option<(u32, u64)>>, String),
}

impl Producer {
    /// A producer sending the values `first_value .. first_value + max_records`, each task at
    /// most one batch per `pace`.
    fn new(first_value: i64, max_records: i64, pace: Duration) -> Arc<Self> {
        Arc::new(Producer {
            ledger: Mutex::new(Ledger::default()),
            acked_count: AtomicUsize::new(0),
            next_value: AtomicI64::new(first_value),
            stop: AtomicBool::new(false),
            rr: AtomicU64::new(0),
            pace,
            value_limit: first_value + max_records,
        })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn acked(&self) -> usize {
        self.acked_count.load(Ordering::Relaxed)
    }

    /// Sends one batch to node `id` and classifies the result.
    async fn send(
        &self,
        cluster: &Cluster,
        client: &reqwest::Client,
        id: u64,
        values: &[i64],
    ) -> Outcome {
        let records: Vec<Value> = values
            .iter()
            .map(|v| json!({"key": format!("k-{v}"), "value": v}))
            .collect();
        let url = cluster.url(id, &format!("/v1/topics/{TOPIC}/records"));
        let resp = match client
            .post(&url)
            .json(&json!({ "records": records }))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Outcome::NotApplied(format!("connect to node {id}: {e}"))
            }
            Err(e) => return Outcome::Unknown(format!("node {id}: {e}")),
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Outcome::Unknown(format!("node {id}: reading reply: {e}")),
        };
        if status != 200 {
            let e = ApiErr::parse(status, text);
            if e.retriable && e.is_not_applied() {
                return Outcome::NotApplied(format!("node {id}: {e}"));
            }
            if !e.retriable && e.is_not_applied() {
                self.ledger().anomalies.push(format!(
                    "produce via node {id} failed with a non-retriable error: {e}"
                ));
                return Outcome::NotApplied(format!("node {id}: {e}"));
            }
            // Partial success: some partitions committed, and their records carry offsets.
            if let Ok(v) = serde_json::from_str::<Value>(&e.raw) {
                if let Some(offsets) = v["offsets"].as_array() {
                    if offsets.len() == values.len() {
                        let per_record: Vec<Option<(u32, u64)>> = offsets
                            .iter()
                            .map(|o| {
                                let p = u32::try_from(o["partition"].as_u64()?).ok()?;
                                Some((p, o["offset"].as_u64()?))
                            })
                            .collect();
                        return Outcome::Partial(per_record, format!("node {id}: {e}"));
                    }
                }
            }
            return Outcome::Unknown(format!("node {id}: {e}"));
        }
        let parsed: Result<Vec<(u32, u64)>> = (|| {
            let v: Value = serde_json::from_str(&text)?;
            let offsets = v["offsets"]
                .as_array()
                .ok_or_else(|| anyhow!("no offsets"))?;
            offsets
                .iter()
                .map(|o| {
                    let p = o["partition"]
                        .as_u64()
                        .ok_or_else(|| anyhow!("no partition"))?;
                    let off = o["offset"].as_u64().ok_or_else(|| anyhow!("no offset"))?;
                    Ok((u32::try_from(p)?, off))
                })
                .collect()
        })();
        match parsed {
            Ok(offsets) if offsets.len() == values.len() => Outcome::Acked(offsets),
            Ok(offsets) => {
                self.ledger().anomalies.push(format!(
                    "produce via node {id}: {} offsets for {} records: {text}",
                    offsets.len(),
                    values.len()
                ));
                Outcome::Unknown("bad reply".into())
            }
            Err(e) => {
                self.ledger().anomalies.push(format!(
                    "produce via node {id}: unparsable 200 reply ({e}): {text}"
                ));
                Outcome::Unknown("bad reply".into())
            }
        }
    }

    fn record_ack(&self, values: &[i64], offsets: &[(u32, u64)]) {
        let mut l = self.ledger();
        // Records of one partition in one request get consecutive offsets, in request order.
        let mut last: HashMap<u32, u64> = HashMap::new();
        for (v, &(p, o)) in values.iter().zip(offsets) {
            if p >= PARTITIONS {
                l.anomalies.push(format!(
                    "value {v} acknowledged in non-existent partition {p}"
                ));
            }
            if let Some(prev) = last.insert(p, o) {
                if o != prev + 1 {
                    l.anomalies.push(format!(
                        "batch offsets in p{p} not consecutive: {prev} then {o}"
                    ));
                }
            }
            if let Some(other) = l.acked_at.insert((p, o), *v) {
                l.anomalies.push(format!(
                    "p{p} offset {o} acknowledged for both {other} and {v}"
                ));
            }
            l.acked.insert(*v, (p, o));
        }
        drop(l);
        self.acked_count.fetch_add(values.len(), Ordering::Relaxed);
    }

    /// One producer task: batches of fresh values, round-robin over the nodes, until `stop`,
    /// `target` acknowledged records (when `target` is set) or `deadline`.
    async fn run(
        self: Arc<Self>,
        cluster: Arc<Cluster>,
        client: reqwest::Client,
        target: Option<usize>,
        deadline: Instant,
    ) {
        while !self.stop.load(Ordering::Relaxed)
            && Instant::now() < deadline
            && target.is_none_or(|t| self.acked() < t)
        {
            let batch_started = Instant::now();
            let first = self.next_value.fetch_add(BATCH, Ordering::Relaxed);
            if first + BATCH > self.value_limit {
                break;
            }
            let values: Vec<i64> = (first..first + BATCH).collect();
            let mut attempts = 0u32;
            loop {
                let id = self.rr.fetch_add(1, Ordering::Relaxed) % NODES + 1;
                match self.send(&cluster, &client, id, &values).await {
                    Outcome::Acked(offsets) => {
                        self.record_ack(&values, &offsets);
                        break;
                    }
                    Outcome::Partial(per_record, why) => {
                        let (acked, maybe): (Vec<_>, Vec<_>) = values
                            .iter()
                            .zip(per_record)
                            .partition(|(_, o)| o.is_some());
                        let acked_values: Vec<i64> = acked.iter().map(|(v, _)| **v).collect();
                        let acked_offsets: Vec<(u32, u64)> =
                            acked.iter().filter_map(|(_, o)| *o).collect();
                        self.record_ack(&acked_values, &acked_offsets);
                        let mut l = self.ledger();
                        l.partial_batches += 1;
                        l.maybe.extend(maybe.iter().map(|(v, _)| **v));
                        if l.partial_batches <= 20 {
                            log!(
                                "batch {first}..: partial success, {} acknowledged, {} maybe-written ({})",
                                acked_values.len(),
                                maybe.len(),
                                short(&why)
                            );
                        }
                        break;
                    }
                    Outcome::Unknown(why) => {
                        let mut l = self.ledger();
                        l.unknown_batches += 1;
                        l.maybe.extend(values.iter().copied());
                        if l.unknown_batches <= 20 {
                            log!(
                                "batch {first}..: outcome unknown ({}); counted as maybe-written",
                                short(&why)
                            );
                        }
                        break;
                    }
                    Outcome::NotApplied(why) => {
                        attempts += 1;
                        {
                            let mut l = self.ledger();
                            if why.starts_with("connect") {
                                l.connect_retries += 1;
                            } else {
                                l.not_applied_retries += 1;
                            }
                            if attempts >= 100
                                || Instant::now() >= deadline
                                || self.stop.load(Ordering::Relaxed)
                            {
                                // Every attempt was definitely not applied: the values were never written.
                                l.dropped_batches += 1;
                                log!(
                                    "batch {first}..: giving up after {attempts} not-applied attempts ({})",
                                    short(&why)
                                );
                                break;
                            }
                        }
                        // Give an election time to finish (and do not spin on a dead node).
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                }
            }
            sleep_until(batch_started + self.pace).await;
        }
    }
}

/// Spawns `tasks` producer tasks.
fn spawn_producers(
    producer: &Arc<Producer>,
    cluster: &Arc<Cluster>,
    client: &reqwest::Client,
    tasks: usize,
    target: Option<usize>,
    deadline: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|_| {
            tokio::spawn(Arc::clone(producer).run(
                Arc::clone(cluster),
                client.clone(),
                target,
                deadline,
            ))
        })
        .collect()
}

async fn join_all(handles: Vec<tokio::task::JoinHandle<()>>) -> Result<()> {
    for h in handles {
        h.await.context("producer task panicked")?;
    }
    Ok(())
}

/// Waits (bounded by `deadline`) until at least `n` records are acknowledged.
async fn wait_acked(producer: &Producer, n: usize, deadline: Instant) {
    while producer.acked() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// -------------------------------------------------------------------------------------------------
// Verification
// -------------------------------------------------------------------------------------------------

/// Reads every partition through every node of `live` and checks the log against the ledger. Values below
/// `first_value` or at/after the producer's next value were never sent.
async fn verify(
    cluster: &Cluster,
    client: &reqwest::Client,
    producer: &Producer,
    live: &[u64],
    first_value: i64,
) -> Result<()> {
    let hws = wait_converged(cluster, client, live).await?;
    log!("converged high watermarks: {hws:?}");
    let mut problems: Vec<String> = Vec::new();
    let mut reference: BTreeMap<u32, Vec<Fetched>> = BTreeMap::new();
    for &id in live {
        for p in 0..PARTITIONS {
            let hw = hws[&p];
            // The offsets endpoint agrees with describe.
            match get_json(
                client,
                &cluster.url(id, &format!("/v1/topics/{TOPIC}/partitions/{p}/offsets")),
            )
            .await?
            {
                Ok(v) => {
                    if v["earliest"].as_u64() != Some(0)
                        || v["latest"].as_u64().is_none_or(|l| l < hw)
                    {
                        problems.push(format!(
                            "node {id} p{p}: offsets {v} but converged high watermark {hw}"
                        ));
                    }
                }
                Err(e) => problems.push(format!("node {id} p{p}: offsets endpoint: {e}")),
            }
            let records = fetch_all(cluster, client, id, p, hw).await?;
            match reference.get(&p) {
                None => {
                    reference.insert(p, records);
                }
                Some(r) if *r == records => {}
                Some(r) => {
                    let first_diff = r.iter().zip(&records).position(|(a, b)| a != b);
                    problems.push(format!(
                        "node {id} p{p}: data differs from node {} ({} vs {} records, first difference at index {first_diff:?})",
                        live[0],
                        records.len(),
                        r.len()
                    ));
                }
            }
        }
    }

    let ledger = producer.ledger();
    let next_value = producer.next_value.load(Ordering::Relaxed);
    problems.extend(ledger.anomalies.iter().cloned());
    let mut seen: HashMap<i64, (u32, u64)> = HashMap::new();
    for (&p, records) in &reference {
        let hw = hws[&p];
        if records.len() as u64 != hw {
            problems.push(format!(
                "p{p}: {} records below high watermark {hw} (offsets not dense from 0)",
                records.len()
            ));
        }
        for (i, r) in records.iter().enumerate() {
            if r.offset != i as u64 {
                problems.push(format!(
                    "p{p}: record #{i} has offset {} (offsets not dense)",
                    r.offset
                ));
                break;
            }
        }
        for r in records {
            let Some(v) = r.value.as_i64() else {
                problems.push(format!(
                    "p{p} offset {}: value {} is not an integer",
                    r.offset, r.value
                ));
                continue;
            };
            if r.key.as_deref() != Some(format!("k-{v}").as_str()) {
                problems.push(format!(
                    "p{p} offset {}: value {v} has key {:?}",
                    r.offset, r.key
                ));
            }
            if let Some((p0, o0)) = seen.insert(v, (p, r.offset)) {
                problems.push(format!(
                    "value {v} appears twice: p{p0} offset {o0} and p{p} offset {}",
                    r.offset
                ));
            }
            if v < first_value || v >= next_value {
                problems.push(format!(
                    "p{p} offset {}: value {v} was never sent",
                    r.offset
                ));
            } else if !ledger.acked.contains_key(&v) && !ledger.maybe.contains(&v) {
                problems.push(format!("p{p} offset {}: value {v} only ever failed with not_applied, yet it was written", r.offset));
            }
        }
    }
    let mut missing = 0usize;
    for (v, &(p, o)) in &ledger.acked {
        match seen.get(v) {
            Some(&at) if at == (p, o) => {}
            Some(&(p2, o2)) => problems.push(format!(
                "acknowledged value {v} at p{p} offset {o} was read at p{p2} offset {o2}"
            )),
            None => {
                missing += 1;
                if missing <= 20 {
                    problems.push(format!(
                        "acknowledged value {v} (p{p} offset {o}) is missing"
                    ));
                }
            }
        }
    }
    if missing > 20 {
        problems.push(format!(
            "... {missing} acknowledged values missing in total"
        ));
    }
    let maybe_present = ledger.maybe.iter().filter(|v| seen.contains_key(v)).count();
    log!(
        "verified: {} acknowledged, {} maybe-written ({} of them present), {} records read per node, {} problem(s)",
        ledger.acked.len(),
        ledger.maybe.len(),
        maybe_present,
        seen.len(),
        problems.len()
    );
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(50).collect();
        bail!(
            "{} problem(s):\n{}",
            problems.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

fn summary(producer: &Producer) -> String {
    let l = producer.ledger();
    format!(
        "acked={} maybe={} unknown_batches={} partial_batches={} not_applied_retries={} connect_retries={} dropped_batches={}",
        l.acked.len(),
        l.maybe.len(),
        l.unknown_batches,
        l.partial_batches,
        l.not_applied_retries,
        l.connect_retries,
        l.dropped_batches
    )
}

// -------------------------------------------------------------------------------------------------
// Tests
// -------------------------------------------------------------------------------------------------

#[test]
fn acknowledged_records_survive_leader_kill_and_restart() -> Result<()> {
    run_serial(|| leader_kill_and_restart(false))
}

/// The same over TLS: clients and the nodes' Raft and forwarding traffic are HTTPS.
#[test]
fn acknowledged_records_survive_leader_kill_and_restart_over_tls() -> Result<()> {
    run_serial(|| leader_kill_and_restart(true))
}

/// Produces under load, `kill -9`s partition 0's leader, restarts it, kills another node, and
/// reads every acknowledged record back through the survivors.
async fn leader_kill_and_restart(tls: bool) -> Result<()> {
    {
        const TARGET: usize = 20_000;
        let cluster = Arc::new(Cluster::start_with(tls).await?);
        let client = cluster.http_client()?;
        create_topic(&cluster, &client).await?;
        let all: Vec<u64> = (1..=NODES).collect();
        let before = wait_for_leaders(&cluster, &client, &all).await?;
        log!("topic '{TOPIC}' ready: {before:?}");

        // 4 tasks, each at most 10 batches of 100 a second: up to 4,000 records/s.
        let producer = Producer::new(0, 150_000, Duration::from_millis(100));
        let started_at = Instant::now();
        let produce_deadline = started_at + Duration::from_secs(75);
        let tasks = spawn_producers(&producer, &cluster, &client, 4, None, produce_deadline);

        // Mid-way (by count and by time): kill -9 the leader of partition 0.
        wait_acked(&producer, TARGET * 35 / 100, produce_deadline).await;
        sleep_until(started_at + Duration::from_secs(2)).await;
        let victim = wait_for_leaders(&cluster, &client, &all).await?[&0]
            .leader
            .ok_or_else(|| anyhow!("partition 0 has no leader"))?;
        log!(
            "{} acknowledged; killing node {victim}, the leader of partition 0",
            producer.acked()
        );
        cluster.run(&["kill", &victim.to_string()]).await?;
        let killed_at = Instant::now();

        // Keep producing through the survivors for a while, then bring the victim back.
        let at_kill = producer.acked();
        let survivors: Vec<u64> = all.iter().copied().filter(|&i| i != victim).collect();
        let during = wait_for_leader_change(&cluster, &client, &survivors, victim).await?;
        wait_acked(
            &producer,
            at_kill + TARGET * 30 / 100,
            killed_at + Duration::from_secs(20),
        )
        .await;
        sleep_until(killed_at + Duration::from_secs(4)).await;
        log!(
            "{} acknowledged ({} since the kill); leaders now {during:?}",
            producer.acked(),
            producer.acked() - at_kill
        );
        ensure!(
            producer.acked() > at_kill,
            "no record was acknowledged while node {victim} was down ({})",
            summary(&producer)
        );
        log!("restarting node {victim}");
        cluster.run(&["restart", &victim.to_string()]).await?;
        let restarted_at = Instant::now();
        let at_restart = producer.acked();
        log!("node {victim} is ready again; {at_restart} acknowledged");

        // Produce through all nodes, the restarted one included (it catches up meanwhile).
        wait_acked(&producer, TARGET.max(at_restart + 2_000), produce_deadline).await;
        sleep_until(restarted_at + Duration::from_secs(3)).await;
        producer.stop.store(true, Ordering::Relaxed);
        join_all(tasks).await?;
        log!("producing done: {}", summary(&producer));
        ensure!(
            producer.acked() >= TARGET,
            "only {} records acknowledged before the deadline ({})",
            producer.acked(),
            summary(&producer)
        );

        cluster.run(&["wait-ready"]).await?;
        verify(&cluster, &client, &producer, &all, 0).await?;

        // The restarted node must now be a full member: take down another node (the current
        // leader of partition 0 unless that is the restarted node) and read everything again
        // through the two that are left, the restarted one among them.
        let leader_now = wait_for_leaders(&cluster, &client, &all).await?[&0].leader;
        let second = match leader_now {
            Some(l) if l != victim => l,
            _ => survivors[0],
        };
        log!("second failover: killing node {second}; reading through nodes {victim} and the other survivor");
        cluster.run(&["kill", &second.to_string()]).await?;
        let remaining: Vec<u64> = all.iter().copied().filter(|&i| i != second).collect();
        wait_for_leader_change(&cluster, &client, &remaining, second).await?;
        verify(&cluster, &client, &producer, &remaining, 0).await?;
        match Arc::try_unwrap(cluster) {
            Ok(c) => c.passed(),
            Err(_) => bail!("cluster still shared after the producers finished"),
        }
        Ok(())
    }
}

#[test]
fn whole_cluster_kill_and_restart_keeps_acknowledged_records() -> Result<()> {
    run_serial(|| async {
        const BEFORE_CRASH: usize = 5_000;
        const AFTER_RESTART: usize = 1_000;
        let cluster = Arc::new(Cluster::start().await?);
        let client = cluster.http_client()?;
        create_topic(&cluster, &client).await?;
        let all: Vec<u64> = (1..=NODES).collect();
        wait_for_leaders(&cluster, &client, &all).await?;

        // Produce, and kill -9 every node while the producers are still sending.
        let producer = Producer::new(0, 50_000, Duration::ZERO);
        let deadline = Instant::now() + Duration::from_secs(40);
        let tasks = spawn_producers(&producer, &cluster, &client, 3, None, deadline);
        wait_acked(&producer, BEFORE_CRASH, deadline).await;
        for id in &all {
            cluster.run(&["kill", &id.to_string()]).await?;
        }
        producer.stop.store(true, Ordering::Relaxed);
        join_all(tasks).await?;
        log!("killed every node under load; {}", summary(&producer));
        ensure!(
            producer.acked() >= BEFORE_CRASH,
            "only {} records acknowledged before the crash ({})",
            producer.acked(),
            summary(&producer)
        );

        log!("restarting every node");
        let ids: Vec<String> = all.iter().map(u64::to_string).collect();
        let mut args = vec!["restart", "--no-wait"];
        args.extend(ids.iter().map(String::as_str));
        cluster.run(&args).await?;
        cluster.run(&["wait-ready"]).await?;
        wait_for_leaders(&cluster, &client, &all).await?;
        verify(&cluster, &client, &producer, &all, 0).await?;

        // The restarted cluster takes writes, after everything written before (checked by
        // verifying the old and the new records together).
        let before = producer.acked();
        producer.stop.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(30);
        let target = Some(before + AFTER_RESTART);
        join_all(spawn_producers(
            &producer, &cluster, &client, 2, target, deadline,
        ))
        .await?;
        log!("after the restart: {}", summary(&producer));
        ensure!(
            producer.acked() >= before + AFTER_RESTART,
            "after the restart only {} more records were acknowledged ({})",
            producer.acked() - before,
            summary(&producer)
        );
        verify(&cluster, &client, &producer, &all, 0).await?;
        match Arc::try_unwrap(cluster) {
            Ok(c) => c.passed(),
            Err(_) => bail!("cluster still shared after the producers finished"),
        }
        Ok(())
    })
}

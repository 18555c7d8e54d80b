//! Metrics: each node owns one registry (three nodes in one test process never mix their
//! figures) and serves it at `GET /metrics` in the Prometheus text format (0.0.4).
//!
//! Two kinds of families:
//! - event counters and histograms kept in the registry ([`Metrics`]): HTTP requests, produced
//!   and fetched records, fsyncs, forwarding hops, leader changes;
//! - state read at scrape time from the node ([`kafka`], [`raftka`]): consumer lag, offsets,
//!   replicas, RocksDB sizes, process CPU and memory. Nothing is copied ahead of a scrape, so
//!   these can never drift from the state they describe.
//!
//! Which node exports which family (so that each is exported once per cluster, or summed
//! exactly over nodes) is documented in `docs/metrics.md`.
//!
//! The crate is `prometheus` rather than `prometheus-client`: the latter writes only
//! OpenMetrics, whose counter families (`# TYPE x counter` with samples `x_total`) Debian's
//! `promtool check metrics` (2.42) reads as two families and flags. Both keep a registry per
//! instance, which is what matters here.

pub mod http;
pub mod kafka;
pub mod raftka;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts,
    Registry, TextEncoder,
};

use crate::error::{ApiError, ErrorBody};
use crate::node::Node;

/// The registry of one node and the metrics that count events.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `raftka_http_requests_total{route,method,status}`.
    pub http_requests: IntCounterVec,
    /// `raftka_http_request_duration_seconds{route,method}`.
    pub http_duration: HistogramVec,
    /// `raftka_produce_records_total{topic}`: records acknowledged to producers by this node.
    pub produce_records: IntCounterVec,
    /// `raftka_produce_bytes_total{topic}`.
    pub produce_bytes: IntCounterVec,
    /// `raftka_fetch_records_total{topic}`: records returned to consumers by this node.
    pub fetch_records: IntCounterVec,
    /// `raftka_fetch_bytes_total{topic}`.
    pub fetch_bytes: IntCounterVec,
    /// `raftka_forward_requests_total{op}`: requests this node sent to another node's leader.
    pub forward_requests: IntCounterVec,
    /// `raftka_raft_leader_changes_total{kind}`.
    pub leader_changes: IntCounterVec,
    /// `raftka_raft_elections_won_total{kind}`.
    pub elections_won: IntCounterVec,
    fsync: Arc<FsyncMetrics>,
}

/// Group-commit figures, fed by the store's syncer thread.
struct FsyncMetrics {
    duration: Histogram,
    records: Histogram,
    appends: Histogram,
}

impl raft_store::SyncObserver for FsyncMetrics {
    fn fsynced(&self, took: Duration, appends: usize, records: u64) {
        self.duration.observe(took.as_secs_f64());
        self.appends.observe(appends as f64);
        self.records.observe(records as f64);
    }
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// A fresh registry with every event metric registered.
    ///
    /// # Errors
    /// Only on an invalid metric name or a duplicate registration (a bug).
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        // 0.5 ms .. ~8 s: a produce waits for a quorum fsync, a long poll up to its max wait.
        let latency = exponential_buckets(0.0005, 2.0, 15)?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "raftka_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template and method.",
            )
            .buckets(latency),
            &["route", "method"],
        )?;
        r.register(Box::new(http_duration.clone()))?;
        let fsync = Arc::new(FsyncMetrics {
            // 50 µs .. ~1.6 s.
            duration: histogram(
                &r,
                "raftka_storage_fsync_duration_seconds",
                "Time of one group-commit WAL fsync.",
                exponential_buckets(0.00005, 2.0, 16)?,
            )?,
            records: histogram(
                &r,
                "raftka_storage_fsync_records",
                "Produced records made durable by one WAL fsync (group commit).",
                exponential_buckets(1.0, 2.0, 15)?,
            )?,
            appends: histogram(
                &r,
                "raftka_storage_fsync_appends",
                "Raft log appends (of all groups) made durable by one WAL fsync.",
                exponential_buckets(1.0, 2.0, 12)?,
            )?,
        });
        Ok(Self {
            http_requests: counter_vec(
                &r,
                "raftka_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_duration,
            produce_records: counter_vec(
                &r,
                "raftka_produce_records_total",
                "Records acknowledged to producers through this node, by topic.",
                &["topic"],
            )?,
            produce_bytes: counter_vec(
                &r,
                "raftka_produce_bytes_total",
                "Bytes (key, value and headers) of the records acknowledged through this node.",
                &["topic"],
            )?,
            fetch_records: counter_vec(
                &r,
                "raftka_fetch_records_total",
                "Records returned to consumers through this node, by topic.",
                &["topic"],
            )?,
            fetch_bytes: counter_vec(
                &r,
                "raftka_fetch_bytes_total",
                "Bytes (key, value and headers) of the records returned through this node.",
                &["topic"],
            )?,
            forward_requests: counter_vec(
                &r,
                "raftka_forward_requests_total",
                "Requests this node forwarded to the leader on another node, by operation.",
                &["op"],
            )?,
            leader_changes: counter_vec(
                &r,
                "raftka_raft_leader_changes_total",
                "Times a Raft group replica on this node saw a new leader (kind: partition or metadata).",
                &["kind"],
            )?,
            elections_won: counter_vec(
                &r,
                "raftka_raft_elections_won_total",
                "Times this node became the leader of a Raft group (kind: partition or metadata).",
                &["kind"],
            )?,
            fsync,
            registry: r,
        })
    }

    /// The observer to hand to the store, so its syncer feeds the fsync histograms.
    pub fn sync_observer(&self) -> Arc<dyn raft_store::SyncObserver> {
        self.fsync.clone()
    }

    /// Counts records a producer got acknowledged (`records`, `bytes`) for `topic`.
    pub fn produced(&self, topic: &str, records: u64, bytes: u64) {
        self.produce_records
            .with_label_values(&[topic])
            .inc_by(records);
        self.produce_bytes.with_label_values(&[topic]).inc_by(bytes);
    }

    /// Counts records returned to a consumer for `topic`.
    pub fn fetched(&self, topic: &str, records: u64, bytes: u64) {
        self.fetch_records
            .with_label_values(&[topic])
            .inc_by(records);
        self.fetch_bytes.with_label_values(&[topic]).inc_by(bytes);
    }
}

/// Every family of `node`, in the Prometheus text format (0.0.4).
///
/// # Errors
/// When a scrape-time family cannot be built or encoded (a bug).
pub fn render(node: &Node) -> Result<String, prometheus::Error> {
    let mut families = node.metrics().registry.gather();
    families.extend(kafka::collect(node)?);
    families.extend(raftka::collect(node)?);
    let mut out = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(&families, &mut out)?;
    let text = String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
    Ok(kafka::declare_untyped(text))
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    responses(
        (status = 200, description = "The node's metrics", body = String,
            content_type = "text/plain"),
        (status = 500, description = "`internal`: the metrics could not be gathered", body = ErrorBody),
    )
)]
pub async fn serve(State(node): State<Node>) -> Response {
    let span = tracing::debug_span!("metrics_scrape");
    let _entered = span.enter();
    match render(&node) {
        Ok(body) => ([(CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e) => ApiError::internal(format!("metrics: {e}")).into_response(),
    }
}

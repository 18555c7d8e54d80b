//! `GET /metrics` on an in-process 3-node cluster: the kafka_exporter families are exported
//! once per cluster (each partition by its leader, cluster-wide ones by the metadata leader),
//! so sums over nodes are exact, and a leader kill moves a partition's families to the new
//! leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestCluster;
use serde_json::json;

/// One sample: family name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (our label values never hold quotes or commas).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let body = rest.trim_end_matches('}');
                    let labels = body
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (n.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            Sample {
                name,
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// Every running node's samples, by node id.
async fn scrape_all(c: &TestCluster) -> BTreeMap<u64, Vec<Sample>> {
    let mut out = BTreeMap::new();
    for id in c.ids() {
        if c.nodes.get(&id).and_then(Option::as_ref).is_none() {
            continue;
        }
        let r = c.http.get(c.url(id, "/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        out.insert(id, parse(&r.text().await.unwrap()));
    }
    out
}

/// The samples of `name` whose labels include `want`, as (node, value).
fn find(all: &BTreeMap<u64, Vec<Sample>>, name: &str, want: &[(&str, &str)]) -> Vec<(u64, f64)> {
    all.iter()
        .flat_map(|(id, samples)| {
            samples
                .iter()
                .filter(|s| {
                    s.name == name
                        && want
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|s| (*id, s.value))
        })
        .collect()
}

fn sum(v: &[(u64, f64)]) -> f64 {
    v.iter().map(|(_, x)| x).sum()
}

/// What the scrape of every node must show for topic `m` and group `g`.
/// `isr` is the number of in-sync replicas every partition must show.
fn check(
    all: &BTreeMap<u64, Vec<Sample>>,
    hw: &[u64; 3],
    committed: &[Option<u64>; 3],
    isr: f64,
) -> Result<(), String> {
    let mut lag_total = 0.0;
    for p in 0..3usize {
        let ps = p.to_string();
        let tp = [("topic", "m"), ("partition", ps.as_str())];
        let cur = find(all, "kafka_topic_partition_current_offset", &tp);
        if cur.len() != 1 || cur[0].1 != hw[p] as f64 {
            return Err(format!(
                "partition {p}: current offset exported as {cur:?}, want one {}",
                hw[p]
            ));
        }
        let leader = find(all, "kafka_topic_partition_leader", &tp);
        if leader != [(cur[0].0, cur[0].0 as f64)] {
            return Err(format!(
                "partition {p}: leader {leader:?}, exporter {}",
                cur[0].0
            ));
        }
        for (fam, want) in [
            ("kafka_topic_partition_replicas", 3.0),
            ("kafka_topic_partition_in_sync_replica", isr),
            (
                "kafka_topic_partition_under_replicated_partition",
                f64::from(isr < 3.0),
            ),
            ("kafka_topic_partition_oldest_offset", 0.0),
        ] {
            let got = find(all, fam, &tp);
            if got != [(cur[0].0, want)] {
                return Err(format!("partition {p}: {fam} {got:?}, want {want} once"));
            }
        }
        let cg = [
            ("consumergroup", "g"),
            ("topic", "m"),
            ("partition", ps.as_str()),
        ];
        let lag = find(all, "kafka_consumergroup_lag", &cg);
        let off = find(all, "kafka_consumergroup_current_offset", &cg);
        let (want_lag, want_off) = match committed[p] {
            Some(c) => ((hw[p] - c) as f64, c as f64),
            None => (-1.0, -1.0),
        };
        if lag.len() != 1 || lag[0].1 != want_lag || off.len() != 1 || off[0].1 != want_off {
            return Err(format!(
                "partition {p}: lag {lag:?} offset {off:?}, want {want_lag} {want_off}"
            ));
        }
        if want_lag >= 0.0 {
            lag_total += want_lag;
        }
    }
    let lag_sum = find(
        all,
        "kafka_consumergroup_lag_sum",
        &[("consumergroup", "g"), ("topic", "m")],
    );
    if sum(&lag_sum) != lag_total {
        return Err(format!("lag_sum over nodes {lag_sum:?}, want {lag_total}"));
    }
    let brokers = find(all, "kafka_brokers", &[]);
    if brokers.len() != 1 {
        return Err(format!("kafka_brokers exported as {brokers:?}, want once"));
    }
    let parts = find(all, "kafka_topic_partitions", &[("topic", "m")]);
    if parts.len() != 1 || parts[0].1 != 3.0 || parts[0].0 != brokers[0].0 {
        return Err(format!(
            "kafka_topic_partitions {parts:?}, want 3 once, by the metadata leader"
        ));
    }
    Ok(())
}

/// Scrapes until `check` passes, for at most `limit`.
async fn eventually(
    c: &TestCluster,
    limit: Duration,
    check: impl Fn(&BTreeMap<u64, Vec<Sample>>) -> Result<(), String>,
) -> BTreeMap<u64, Vec<Sample>> {
    let start = Instant::now();
    loop {
        let all = scrape_all(c).await;
        match check(&all) {
            Ok(()) => return all,
            Err(e) if start.elapsed() > limit => panic!("after {limit:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_families_sum_exactly_over_nodes_and_follow_the_leader() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("m", 3, 3).await;
    let counts = [12u64, 9, 6];
    for (p, n) in counts.iter().enumerate() {
        let records: Vec<_> = (0..*n)
            .map(|i| json!({"partition": p, "value": i}))
            .collect();
        let (s, b) = c
            .post(2, "/v1/topics/m/records", json!({"records": records}))
            .await;
        assert_eq!(s, 200, "{b}");
    }
    // Group g commits partitions 0 and 1 behind the head; partition 2 has no commit.
    for (p, o) in [(0, 5), (1, 2)] {
        let (s, b) = c
            .post(
                1,
                "/v1/groups/g/offsets/reset",
                json!({"topic": "m", "to": "offset", "offset": o, "partitions": [p]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let committed = [Some(5), Some(2), None];
    let all = eventually(&c, Duration::from_secs(10), |all| {
        check(all, &counts, &committed, 3.0)
    })
    .await;

    // Raftka's own families.
    let produced = find(&all, "raftka_produce_records_total", &[("topic", "m")]);
    assert_eq!(sum(&produced), 27.0, "{produced:?}");
    let route = find(
        &all,
        "raftka_http_requests_total",
        &[
            ("route", "/v1/topics/{topic}/records"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    assert_eq!(sum(&route), 3.0, "{route:?}");
    let fsyncs = find(&all, "raftka_storage_fsync_records_sum", &[]);
    // Every replica fsyncs every record: 3 copies of 27 (more only if a leader change made a
    // follower append an entry again).
    assert!(sum(&fsyncs) >= 81.0, "{fsyncs:?}");
    for id in c.ids() {
        for fam in [
            "raftka_rocksdb_wal_bytes",
            "raftka_process_resident_memory_bytes",
            "raftka_partition_groups_open",
        ] {
            let v = find(&all, fam, &[])
                .into_iter()
                .filter(|(n, _)| *n == id)
                .collect::<Vec<_>>();
            assert!(v.len() == 1 && v[0].1 > 0.0, "node {id}: {fam} {v:?}");
        }
        let opened = find(&all, "raftka_partition_groups_open", &[])
            .into_iter()
            .find(|(n, _)| *n == id);
        assert_eq!(opened, Some((id, 3.0)));
    }
    let leaders: f64 = sum(&find(&all, "raftka_partition_leaderships", &[]));
    assert_eq!(leaders, 3.0);

    // Kill the leader of partition 0: its families move to the new leader.
    let old = find(
        &all,
        "kafka_topic_partition_current_offset",
        &[("topic", "m"), ("partition", "0")],
    )[0]
    .0;
    c.crash(old).await;
    let all = eventually(&c, Duration::from_secs(20), |all| {
        // Every partition has a replica on the dead node: 2 in sync, under-replicated.
        check(all, &counts, &committed, 2.0)?;
        let brokers = find(all, "kafka_brokers", &[]);
        if brokers[0].1 != 2.0 {
            return Err(format!("kafka_brokers {brokers:?}, want 2 after the kill"));
        }
        Ok(())
    })
    .await;
    let new = find(
        &all,
        "kafka_topic_partition_current_offset",
        &[("topic", "m"), ("partition", "0")],
    )[0]
    .0;
    assert_ne!(new, old);
    // The survivors' replicas saw the leader change.
    let changes = find(
        &all,
        "raftka_raft_leader_changes_total",
        &[("kind", "partition")],
    );
    assert!(sum(&changes) >= 1.0, "{changes:?}");
    c.shutdown().await;
}

//! `raftka bench group`: consumer-group costs. Measures the latency of offset commits (each a
//! Raft write in the metadata group), how long a rebalance takes from a join until every member
//! holds its new assignment, and how long the group takes to hand a silent (killed) member's
//! partitions to the others. Members are simulated with the group HTTP API directly, so the
//! timings contain no client-library pacing other than the heartbeat interval given.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use raftka_client::{
    Client, CommitReply, CommitRequest, CommittedOffset, ErrorCode, HeartbeatReply, JoinReply,
    JoinRequest, ReleaseRequest,
};
use reqwest::Method;
use serde_json::json;

use super::histogram;

/// Options of `bench group`.
#[derive(Args, Clone)]
pub struct GroupArgs {
    /// Topic (created if missing).
    #[arg(long, default_value = "bench-group")]
    pub topic: String,
    /// Partitions, when the topic is created.
    #[arg(long, default_value_t = 6)]
    pub partitions: u32,
    /// Members in the group before the measured join.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Offset commits to time.
    #[arg(long, default_value_t = 500)]
    pub commits: u64,
    /// Session timeout of the members, in ms (bounds the takeover time).
    #[arg(long, default_value_t = 3000)]
    pub session_timeout_ms: u64,
    /// Heartbeat interval of the simulated members, in ms.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_ms: u64,
    /// Print a final JSON line.
    #[arg(long)]
    pub json: bool,
}

struct Member {
    id: String,
    generation: u64,
    owned: BTreeSet<(String, u32)>,
}

async fn join(client: &Client, group: &str, a: &GroupArgs) -> anyhow::Result<Member> {
    let request = JoinRequest {
        topics: vec![a.topic.clone()],
        session_timeout_ms: Some(a.session_timeout_ms),
        client_id: Some("bench".into()),
        member_id: None,
    };
    let j: JoinReply = client
        .call_with_body(
            Method::POST,
            &format!("/v1/groups/{group}/members"),
            &request,
        )
        .await?;
    Ok(Member {
        id: j.member_id,
        generation: j.generation,
        owned: BTreeSet::new(),
    })
}

/// One heartbeat, releasing revoked partitions at once. Returns whether nothing is left to revoke.
async fn beat(client: &Client, group: &str, m: &mut Member) -> anyhow::Result<bool> {
    // A heartbeat's body is an empty object (the protocol has no type for it).
    let b: HeartbeatReply = client
        .call_json(
            Method::POST,
            &format!("/v1/groups/{group}/members/{}/heartbeat", m.id),
            Some(json!({})),
        )
        .await?;
    m.generation = b.generation;
    m.owned = b
        .assignment
        .into_iter()
        .map(|t| (t.topic, t.partition))
        .collect();
    if b.revoking.is_empty() {
        return Ok(true);
    }
    let r: HeartbeatReply = client
        .call_with_body(
            Method::POST,
            &format!("/v1/groups/{group}/members/{}/release", m.id),
            &ReleaseRequest {
                generation: m.generation,
            },
        )
        .await?;
    m.generation = r.generation;
    m.owned = r
        .assignment
        .into_iter()
        .map(|t| (t.topic, t.partition))
        .collect();
    Ok(false)
}

/// Heartbeats every member until each owns its balanced share (bounded by `limit`).
async fn until_settled(
    client: &Client,
    group: &str,
    members: &mut [Member],
    partitions: u32,
    a: &GroupArgs,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let k = members.len() as u32;
    loop {
        let mut settled = true;
        for m in members.iter_mut() {
            settled &= beat(client, group, m).await?;
        }
        let total: usize = members.iter().map(|m| m.owned.len()).sum();
        let balanced = members.iter().all(|m| {
            let n = m.owned.len() as u32;
            n == partitions / k || n == partitions / k + 1 || (k > partitions && n <= 1)
        });
        if settled && total == partitions as usize && balanced {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!("group did not settle within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(a.heartbeat_ms)).await;
    }
}

/// Runs the group benchmark.
pub async fn run(client: Client, a: GroupArgs) -> anyhow::Result<()> {
    if a.members == 0 || a.partitions == 0 {
        bail!("--members and --partitions must be positive");
    }
    let partitions = match client.describe_topic(&a.topic).await {
        Ok(t) => t.partitions.len() as u32,
        Err(e) if e.error_code() == Some(ErrorCode::TopicNotFound) => client
            .create_topic(&a.topic, a.partitions, 3)
            .await?
            .partitions
            .len() as u32,
        Err(e) => return Err(e.into()),
    };
    let group = format!("bench-{}", std::process::id());
    let limit = Duration::from_millis(a.session_timeout_ms * 4 + 10_000);

    // 1. Commit latency: one member owns every partition and commits in turn.
    let mut solo = join(&client, &group, &a).await?;
    until_settled(
        &client,
        &group,
        std::slice::from_mut(&mut solo),
        partitions,
        &a,
        limit,
    )
    .await?;
    let mut hist = histogram()?;
    let owned: Vec<(String, u32)> = solo.owned.iter().cloned().collect();
    for i in 0..a.commits {
        let (t, p) = &owned[(i as usize) % owned.len()];
        let request = CommitRequest {
            member_id: solo.id.clone(),
            generation: solo.generation,
            offsets: vec![CommittedOffset {
                topic: t.clone(),
                partition: *p,
                offset: 0,
            }],
        };
        let t0 = Instant::now();
        let _: CommitReply = client
            .call_with_body(
                Method::POST,
                &format!("/v1/groups/{group}/offsets"),
                &request,
            )
            .await
            .context("commit")?;
        hist.record((t0.elapsed().as_micros() as u64).max(1))?;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "commit latency ms ({} commits): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        a.commits,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );

    // 2. Rebalance: grow to `members`, then time one more join until all hold their share.
    let mut members = vec![solo];
    while members.len() < a.members {
        members.push(join(&client, &group, &a).await?);
    }
    until_settled(&client, &group, &mut members, partitions, &a, limit).await?;
    let t0 = Instant::now();
    members.push(join(&client, &group, &a).await?);
    until_settled(&client, &group, &mut members, partitions, &a, limit).await?;
    let rebalance = t0.elapsed();
    println!(
        "rebalance: {} -> {} members, every member holding its new assignment after {:.0} ms",
        members.len() - 1,
        members.len(),
        rebalance.as_secs_f64() * 1000.0
    );

    // 3. Takeover: one member goes silent (as if killed); time until the others own everything.
    let silent = members.remove(0);
    let t0 = Instant::now();
    until_settled(&client, &group, &mut members, partitions, &a, limit).await?;
    let takeover = t0.elapsed();
    println!(
        "takeover: a silent member's {} partitions owned by the others after {:.0} ms (session timeout {} ms)",
        silent.owned.len(),
        takeover.as_secs_f64() * 1000.0,
        a.session_timeout_ms
    );
    for m in &members {
        let _ = client
            .send_raw(
                Method::DELETE,
                &format!("/v1/groups/{group}/members/{}", m.id),
                None,
            )
            .await;
    }
    if a.json {
        println!(
            "{}",
            json!({"commit_p50_ms": ms(0.5), "commit_p90_ms": ms(0.9), "commit_p99_ms": ms(0.99), "commit_max_ms": hist.max() as f64 / 1000.0,
                   "rebalance_ms": rebalance.as_secs_f64() * 1000.0, "takeover_ms": takeover.as_secs_f64() * 1000.0,
                   "session_timeout_ms": a.session_timeout_ms, "members": members.len() + 1, "partitions": partitions})
        );
    }
    Ok(())
}

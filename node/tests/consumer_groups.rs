//! Consumer groups on an in-process 3-node cluster: queue and pub-sub semantics, fencing,
//! session timeouts, coordinator failover and whole-cluster restart, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::TestCluster;
use serde_json::{json, Value};

type Tp = (String, u32);

struct Member {
    group: String,
    id: String,
    generation: u64,
    owned: BTreeSet<Tp>,
    via: u64,
}

fn tps(v: &Value) -> BTreeSet<Tp> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["topic"].as_str().unwrap().to_string(),
                x["partition"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

impl Member {
    async fn join(c: &TestCluster, via: u64, group: &str, topic: &str, timeout_ms: u64) -> Member {
        let (s, b) = c
            .post(
                via,
                &format!("/v1/groups/{group}/members"),
                json!({"topics": [topic], "session_timeout_ms": timeout_ms, "client_id": "t"}),
            )
            .await;
        assert_eq!(s, 200, "join: {b}");
        Member {
            group: group.into(),
            id: b["member_id"].as_str().unwrap().into(),
            generation: b["generation"].as_u64().unwrap(),
            owned: tps(&b["assignment"]),
            via,
        }
    }

    /// Heartbeats; gives up revoked partitions (committing nothing extra: callers commit as
    /// they process). Returns whether the member is settled (nothing left to revoke).
    async fn heartbeat(&mut self, c: &TestCluster) -> bool {
        let (s, b) = c
            .post(
                self.via,
                &format!("/v1/groups/{}/members/{}/heartbeat", self.group, self.id),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "heartbeat: {b}");
        self.generation = b["generation"].as_u64().unwrap();
        self.owned = tps(&b["assignment"]);
        if tps(&b["revoking"]).is_empty() {
            return true;
        }
        let (s, b) = c
            .post(
                self.via,
                &format!("/v1/groups/{}/members/{}/release", self.group, self.id),
                json!({"generation": self.generation}),
            )
            .await;
        assert_eq!(s, 200, "release: {b}");
        self.generation = b["generation"].as_u64().unwrap();
        self.owned = tps(&b["assignment"]);
        false
    }

    async fn commit(&self, c: &TestCluster, tp: &Tp, offset: u64) -> (u16, Value) {
        c.post(
            self.via,
            &format!("/v1/groups/{}/offsets", self.group),
            json!({"member_id": self.id, "generation": self.generation, "offsets": [{"topic": tp.0, "partition": tp.1, "offset": offset}]}),
        )
        .await
    }

    async fn leave(&self, c: &TestCluster) {
        let r = c
            .http
            .delete(c.url(
                self.via,
                &format!("/v1/groups/{}/members/{}", self.group, self.id),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// Heartbeats every member until the group is stable: no member has anything left to revoke.
async fn settle(c: &TestCluster, members: &mut [Member]) {
    for _ in 0..50 {
        let mut all = true;
        for m in members.iter_mut() {
            all &= m.heartbeat(c).await;
        }
        if all {
            let (_, d) = c
                .get(members[0].via, &format!("/v1/groups/{}", members[0].group))
                .await;
            if d["state"] == "stable" {
                return;
            }
        }
    }
    panic!("group did not settle");
}

async fn committed(c: &TestCluster, via: u64, group: &str) -> BTreeMap<Tp, u64> {
    let (s, b) = c.get(via, &format!("/v1/groups/{group}/offsets")).await;
    assert_eq!(s, 200, "{b}");
    b["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                (
                    o["topic"].as_str().unwrap().to_string(),
                    o["partition"].as_u64().unwrap() as u32,
                ),
                o["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn produce_n(c: &TestCluster, topic: &str, from: u64, n: u64) {
    let recs: Vec<Value> = (from..from + n)
        .map(|i| json!({"key": format!("k{i}"), "value": i}))
        .collect();
    let (s, b) = c
        .post(
            1,
            &format!("/v1/topics/{topic}/records"),
            json!({ "records": recs }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// Consumes every owned partition from the committed offset (earliest when none) to the end,
/// committing after each batch. Returns the values read.
async fn consume_round(c: &TestCluster, m: &Member) -> Vec<u64> {
    let offsets = committed(c, m.via, &m.group).await;
    let mut seen = vec![];
    for tp in &m.owned {
        let mut next = offsets.get(tp).copied().unwrap_or(0);
        loop {
            let (s, b) = c
                .get(
                    m.via,
                    &format!(
                        "/v1/topics/{}/partitions/{}/records?offset={next}&max_records=50",
                        tp.0, tp.1
                    ),
                )
                .await;
            assert_eq!(s, 200, "{b}");
            let recs = b["records"].as_array().unwrap();
            if recs.is_empty() {
                break;
            }
            for r in recs {
                seen.push(r["value"].as_u64().unwrap());
            }
            next = recs.last().unwrap()["offset"].as_u64().unwrap() + 1;
            let (s, b) = m.commit(c, tp, next).await;
            assert_eq!(s, 200, "commit: {b}");
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_semantics_each_record_once_extra_members_idle_and_leave_moves_partitions() {
    let c = TestCluster::start(3).await;
    c.create_topic("q", 6, 3).await;
    produce_n(&c, "q", 0, 300).await;
    let mut members = vec![];
    for via in 1..=3 {
        members.push(Member::join(&c, via, "workers", "q", 10_000).await);
    }
    settle(&c, &mut members).await;
    for m in &members {
        assert_eq!(
            m.owned.len(),
            2,
            "each of 3 members gets 2 of 6 partitions: {:?}",
            m.owned
        );
    }
    let owned: BTreeSet<Tp> = members
        .iter()
        .flat_map(|m| m.owned.iter().cloned())
        .collect();
    assert_eq!(owned.len(), 6, "no partition owned twice, none unowned");
    let mut seen = vec![];
    for m in &members {
        seen.extend(consume_round(&c, m).await);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..300).collect::<Vec<_>>(),
        "every record exactly once"
    );

    // A 7th and then an 8th member: with 8 members on 6 partitions, 2 sit idle.
    for i in 0..5 {
        members.push(Member::join(&c, (i % 3) + 1, "workers", "q", 10_000).await);
    }
    settle(&c, &mut members).await;
    let idle = members.iter().filter(|m| m.owned.is_empty()).count();
    assert_eq!((members.len(), idle), (8, 2));
    let owned: Vec<Tp> = members
        .iter()
        .flat_map(|m| m.owned.iter().cloned())
        .collect();
    assert_eq!(owned.iter().collect::<BTreeSet<_>>().len(), 6);
    assert_eq!(owned.len(), 6, "at most one member per partition");

    // Members leave: their partitions move; consumption resumes exactly at the commits.
    produce_n(&c, "q", 300, 120).await;
    let leaving: Vec<Member> = members.drain(..4).collect();
    for m in &leaving {
        m.leave(&c).await;
    }
    settle(&c, &mut members).await;
    let owned: Vec<Tp> = members
        .iter()
        .flat_map(|m| m.owned.iter().cloned())
        .collect();
    assert_eq!(owned.len(), 6);
    let mut seen = vec![];
    for m in &members {
        seen.extend(consume_round(&c, m).await);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (300..420).collect::<Vec<_>>(),
        "nothing skipped or redelivered after the handoff"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_groups_each_receive_every_record() {
    let c = TestCluster::start(3).await;
    c.create_topic("events", 3, 3).await;
    produce_n(&c, "events", 0, 90).await;
    for g in ["billing", "analytics"] {
        let mut ms = vec![
            Member::join(&c, 1, g, "events", 10_000).await,
            Member::join(&c, 2, g, "events", 10_000).await,
        ];
        settle(&c, &mut ms).await;
        let mut seen = vec![];
        for m in &ms {
            seen.extend(consume_round(&c, m).await);
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..90).collect::<Vec<_>>(),
            "group {g} sees every record"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_generation_commit_is_fenced_and_changes_nothing() {
    let c = TestCluster::start(3).await;
    c.create_topic("f", 2, 3).await;
    produce_n(&c, "f", 0, 20).await;
    let mut a = Member::join(&c, 1, "g", "f", 10_000).await;
    settle(&c, std::slice::from_mut(&mut a)).await;
    let tp = a.owned.iter().next().unwrap().clone();
    let (s, b) = a.commit(&c, &tp, 3).await;
    assert_eq!(s, 200, "{b}");
    let old_generation = a.generation;
    // A second member joins: a rebalance bumps the generation.
    let mut b_member = Member::join(&c, 2, "g", "f", 10_000).await;
    let (s, body) = a.commit(&c, &tp, 7).await;
    assert_eq!((s, body["error"].as_str()), (409, Some("fenced")), "{body}");
    assert_eq!(body["outcome"], "not_applied");
    assert_eq!(
        committed(&c, 3, "g").await[&tp],
        3,
        "a fenced commit does not move the offset"
    );
    // After heartbeating, the member commits again in the new generation.
    let mut ms = vec![a, b_member];
    settle(&c, &mut ms).await;
    b_member = ms.pop().unwrap();
    a = ms.pop().unwrap();
    assert!(a.generation > old_generation);
    let mine = a.owned.iter().next().unwrap().clone();
    let (s, body) = a.commit(&c, &mine, 4).await;
    assert_eq!(s, 200, "{body}");
    // Committing a partition it does not own is refused.
    let theirs = b_member.owned.iter().next().unwrap().clone();
    let (s, body) = a.commit(&c, &theirs, 1).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("partition_not_assigned")),
        "{body}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_member_expires_and_others_resume_from_its_commits() {
    let c = TestCluster::start(3).await;
    c.create_topic("s", 4, 3).await;
    produce_n(&c, "s", 0, 80).await;
    let mut ms = vec![
        Member::join(&c, 1, "g", "s", 1_500).await,
        Member::join(&c, 2, "g", "s", 1_500).await,
    ];
    settle(&c, &mut ms).await;
    // The silent member consumes part of its partitions, commits, then stops heartbeating.
    let silent = ms.pop().unwrap();
    let mut seen = consume_round(&c, &silent).await;
    let mut live = ms.pop().unwrap();
    seen.extend(consume_round(&c, &live).await);
    produce_n(&c, "s", 80, 40).await;
    let t0 = std::time::Instant::now();
    loop {
        live.heartbeat(&c).await;
        if live.owned.len() == 4 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "silent member never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1_000),
        "expired only after its session timeout"
    );
    seen.extend(consume_round(&c, &live).await);
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..120).collect::<Vec<_>>(),
        "takeover resumes exactly at the committed offsets"
    );
    let (_, d) = c.get(1, "/v1/groups/g").await;
    assert_eq!(d["members"].as_array().unwrap().len(), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_offsets_survive_coordinator_crash_and_whole_cluster_restart() {
    let mut c = TestCluster::start(3).await;
    c.create_topic("d", 3, 3).await;
    produce_n(&c, "d", 0, 60).await;
    let coordinator = c.nodes[&1].as_ref().unwrap().node.meta_leader().unwrap();
    let via = c.ids().into_iter().find(|i| *i != coordinator).unwrap();
    let mut m = Member::join(&c, via, "g", "d", 10_000).await;
    settle(&c, std::slice::from_mut(&mut m)).await;
    let first = consume_round(&c, &m).await;
    assert_eq!(first.len(), 60);
    let before = committed(&c, via, "g").await;
    // Kill the coordinator (the metadata leader) mid-consumption.
    c.crash(coordinator).await;
    produce_n_via(&c, via, "d", 60, 30).await;
    let t0 = std::time::Instant::now();
    loop {
        let (s, _) = c
            .post(
                via,
                &format!("/v1/groups/g/members/{}/heartbeat", m.id),
                json!({}),
            )
            .await;
        if s == 200 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no new coordinator");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed(&c, via, "g").await,
        before,
        "committed offsets survive the coordinator crash"
    );
    m.heartbeat(&c).await;
    let more = consume_round(&c, &m).await;
    assert_eq!(
        more.len(),
        30,
        "the member continues after the failover, from its commits"
    );
    let after = committed(&c, via, "g").await;
    // Whole-cluster crash and restart.
    c.restart(coordinator).await;
    for id in c.ids() {
        c.crash(id).await;
    }
    for id in c.ids() {
        c.restart(id).await;
    }
    c.wait_ready().await;
    assert_eq!(
        committed(&c, 1, "g").await,
        after,
        "committed offsets exactly as last acknowledged"
    );
    c.shutdown().await;
}

async fn produce_n_via(c: &TestCluster, via: u64, topic: &str, from: u64, n: u64) {
    let recs: Vec<Value> = (from..from + n).map(|i| json!({"value": i})).collect();
    for _ in 0..100 {
        let (s, _) = c
            .post(
                via,
                &format!("/v1/topics/{topic}/records"),
                json!({ "records": recs.clone() }),
            )
            .await;
        if s == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("produce never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_group_requests_get_documented_4xx_and_change_nothing() {
    let c = TestCluster::start(3).await;
    c.create_topic("b", 2, 3).await;
    produce_n(&c, "b", 0, 10).await;
    let mut m = Member::join(&c, 1, "g", "b", 10_000).await;
    settle(&c, std::slice::from_mut(&mut m)).await;
    let tp = m.owned.iter().next().unwrap().clone();
    let (s, _) = m.commit(&c, &tp, 2).await;
    assert_eq!(s, 200);
    let before = committed(&c, 2, "g").await;

    let (s, b) = m.commit(&c, &tp, 1_000).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("invalid_commit_offset")),
        "{b}"
    );
    let (s, b) = c
        .post(1, "/v1/groups/g/offsets", json!({"member_id": "ghost", "generation": m.generation, "offsets": [{"topic": "b", "partition": 0, "offset": 1}]}))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("unknown_member")),
        "{b}"
    );
    let (s, b) = c
        .post(1, "/v1/groups/nogroup/members/x/heartbeat", json!({}))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("group_not_found")),
        "{b}"
    );
    let (s, b) = c
        .post(1, "/v1/groups/g/members/ghost/heartbeat", json!({}))
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("unknown_member")),
        "{b}"
    );
    let (s, b) = c
        .post(1, "/v1/groups/g/offsets", json!({"member_id": m.id}))
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c
        .post(1, "/v1/groups/g/members", json!({"topics": []}))
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c
        .post(
            1,
            "/v1/groups/g/members",
            json!({"topics": ["b"], "session_timeout_ms": 5}),
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = c
        .post(
            1,
            "/v1/groups/g/offsets/reset",
            json!({"topic": "b", "to": "earliest"}),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("group_not_empty")),
        "{b}"
    );
    let r = c
        .http
        .delete(c.url(1, "/v1/groups/g"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(
        committed(&c, 3, "g").await,
        before,
        "refused requests change nothing"
    );

    // Once empty, offsets can be reset and the group deleted.
    m.leave(&c).await;
    let (s, b) = c
        .post(
            1,
            "/v1/groups/g/offsets/reset",
            json!({"topic": "b", "to": "latest"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let after = committed(&c, 2, "g").await;
    assert_eq!(
        after.values().sum::<u64>(),
        10,
        "reset to latest on both partitions"
    );
    let r = c
        .http
        .delete(c.url(1, "/v1/groups/g"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, _) = c.get(1, "/v1/groups/g").await;
    assert_eq!(s, 404);
    c.shutdown().await;
}

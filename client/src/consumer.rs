//! A consumer-group member: joins, heartbeats in the background, fetches from its assigned
//! partitions, commits (manually or every N ms), hands partitions over cleanly on a rebalance,
//! and leaves on [`Consumer::close`] (or, best effort, on drop).
//!
//! Rebalances are handled inside [`Consumer::poll`], on the caller's task, in this order:
//! 1. the [`RebalanceListener::on_revoked`] callback runs for partitions the member must give up
//!    (the last chance to finish work on them);
//! 2. the consumer commits its positions on those partitions;
//! 3. it releases them to the group, so their new owner can start exactly where it left off;
//! 4. [`RebalanceListener::on_assigned`] runs for newly owned partitions, whose position is the
//!    committed offset, or `auto_offset_reset` when none is committed.
//!
//! Delivery is at least once: records returned by `poll` and not yet committed are delivered
//! again to the next owner if this member dies.
//!
//! A later REST Proxy v2 layer maps a proxy "consumer instance" onto one such member: instance
//! id = member id, and the proxy's subscription, records, offsets and delete calls onto join,
//! fetch, commit and leave.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftka_protocol::{
    CommitReply, CommitRequest, CommittedOffset, ErrorCode, GroupOffsets, HeartbeatReply,
    JoinReply, JoinRequest, LeaveReply, ReleaseRequest, TopicPartitionRef,
};
use reqwest::Method;

use crate::client::Client;
use crate::error::Error;
use crate::types::FetchedRecord;

/// A topic partition.
pub type TopicPartition = (String, u32);

/// Where to start on a partition with no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The partition's first retained offset.
    Earliest,
    /// The partition's end (only new records).
    Latest,
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Group name.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Client name (part of the member id).
    pub client_id: String,
    /// Session timeout; heartbeats go out every third of it.
    pub session_timeout: Duration,
    /// Where to start without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Commit positions automatically at this interval (inside `poll`); `None` for manual.
    pub auto_commit_interval: Option<Duration>,
    /// Records per fetch.
    pub max_poll_records: u32,
    /// How long `poll` long-polls when nothing is available.
    pub poll_wait: Duration,
}

impl ConsumerConfig {
    /// Defaults: 10 s session, earliest, auto-commit every 5 s, 500 records, 1 s wait.
    pub fn new(group: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            client_id: "rust-consumer".into(),
            session_timeout: Duration::from_secs(10),
            auto_offset_reset: OffsetReset::Earliest,
            auto_commit_interval: Some(Duration::from_secs(5)),
            max_poll_records: 500,
            poll_wait: Duration::from_secs(1),
        }
    }
}

/// Called on rebalances, from inside [`Consumer::poll`].
pub trait RebalanceListener: Send {
    /// Partitions about to be given up; their positions are committed right after this.
    fn on_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions now owned.
    fn on_assigned(&mut self, _partitions: &[TopicPartition]) {}
}

struct NoopListener;
impl RebalanceListener for NoopListener {}

/// A consumed record with its partition.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The record.
    pub record: FetchedRecord,
}

/// The body of a heartbeat: an empty JSON object (the protocol has no type for it).
fn heartbeat_body() -> serde_json::Value {
    serde_json::json!({})
}

#[derive(Default)]
struct Shared {
    latest: Option<HeartbeatReply>,
    lost: bool,
}

/// A consumer-group member.
pub struct Consumer {
    client: Client,
    cfg: ConsumerConfig,
    member_id: String,
    generation: u64,
    owned: BTreeSet<TopicPartition>,
    positions: BTreeMap<TopicPartition, u64>,
    committed: BTreeMap<TopicPartition, u64>,
    shared: Arc<Mutex<Shared>>,
    heartbeat: tokio::task::JoinHandle<()>,
    listener: Box<dyn RebalanceListener>,
    last_commit: Instant,
    rr: usize,
    closed: bool,
}

fn tps(v: &[TopicPartitionRef]) -> BTreeSet<TopicPartition> {
    v.iter().map(|t| (t.topic.clone(), t.partition)).collect()
}

impl Consumer {
    /// Joins `cfg.group` and starts heartbeating.
    ///
    /// # Errors
    /// When the join fails (unreachable cluster, bad group or topic names).
    pub async fn join(client: Client, cfg: ConsumerConfig) -> Result<Self, Error> {
        Self::join_with_listener(client, cfg, Box::new(NoopListener)).await
    }

    /// Joins with a rebalance listener.
    ///
    /// # Errors
    /// As [`Consumer::join`].
    pub async fn join_with_listener(
        client: Client,
        cfg: ConsumerConfig,
        listener: Box<dyn RebalanceListener>,
    ) -> Result<Self, Error> {
        let request = JoinRequest {
            topics: cfg.topics.clone(),
            session_timeout_ms: Some(cfg.session_timeout.as_millis() as u64),
            client_id: Some(cfg.client_id.clone()),
            member_id: None,
        };
        let j: JoinReply = client
            .call_with_body(
                Method::POST,
                &format!("/v1/groups/{}/members", cfg.group),
                &request,
            )
            .await?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let heartbeat = spawn_heartbeat(
            client.clone(),
            cfg.group.clone(),
            j.member_id.clone(),
            cfg.session_timeout / 3,
            shared.clone(),
        );
        let mut c = Self {
            client,
            cfg,
            member_id: j.member_id,
            generation: j.generation,
            owned: BTreeSet::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            shared,
            heartbeat,
            listener,
            last_commit: Instant::now(),
            rr: 0,
            closed: false,
        };
        let initial = tps(&j.assignment);
        c.assign(initial).await?;
        Ok(c)
    }

    /// This member's id.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The group generation this member acts in.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Partitions owned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.iter().cloned().collect()
    }

    async fn assign(&mut self, new: BTreeSet<TopicPartition>) -> Result<(), Error> {
        let added: Vec<TopicPartition> = new.difference(&self.owned).cloned().collect();
        if added.is_empty() {
            self.owned = new;
            return Ok(());
        }
        let committed = self.fetch_committed().await?;
        for tp in &added {
            let pos = match committed.get(tp) {
                Some(o) => *o,
                None => self.reset_position(tp).await?,
            };
            self.positions.insert(tp.clone(), pos);
            if let Some(o) = committed.get(tp) {
                self.committed.insert(tp.clone(), *o);
            }
        }
        self.owned = new;
        self.listener.on_assigned(&added);
        Ok(())
    }

    async fn fetch_committed(&self) -> Result<BTreeMap<TopicPartition, u64>, Error> {
        let r: GroupOffsets = self
            .client
            .call_json(
                Method::GET,
                &format!("/v1/groups/{}/offsets", self.cfg.group),
                None,
            )
            .await?;
        Ok(r.offsets
            .into_iter()
            .map(|e| ((e.topic, e.partition), e.offset))
            .collect())
    }

    async fn reset_position(&self, tp: &TopicPartition) -> Result<u64, Error> {
        let o = self.client.partition_offsets(&tp.0, tp.1).await?;
        Ok(match self.cfg.auto_offset_reset {
            OffsetReset::Earliest => o.earliest,
            OffsetReset::Latest => o.latest,
        })
    }

    /// Applies what the last heartbeat said: revocations first (callback, commit, release),
    /// then new partitions.
    async fn handle_rebalance(&mut self) -> Result<(), Error> {
        let (latest, lost) = {
            let mut s = self
                .shared
                .lock()
                .map_err(|_| Error::Config("consumer state poisoned".into()))?;
            (s.latest.take(), std::mem::take(&mut s.lost))
        };
        if lost {
            // Expired or removed: everything is gone; join again as a new member.
            let gone: Vec<TopicPartition> = self.owned.iter().cloned().collect();
            self.listener.on_revoked(&gone);
            self.owned.clear();
            self.positions.clear();
            return Err(Error::Config(
                "this member was removed from the group (session expired); create a new Consumer"
                    .into(),
            ));
        }
        let Some(hb) = latest else { return Ok(()) };
        self.generation = hb.generation;
        let revoking = tps(&hb.revoking);
        if !revoking.is_empty() {
            let list: Vec<TopicPartition> = revoking.iter().cloned().collect();
            self.listener.on_revoked(&list);
            self.commit_partitions(&list).await?;
            let r: HeartbeatReply = self
                .client
                .call_with_body(
                    Method::POST,
                    &format!(
                        "/v1/groups/{}/members/{}/release",
                        self.cfg.group, self.member_id
                    ),
                    &ReleaseRequest {
                        generation: self.generation,
                    },
                )
                .await?;
            for tp in &list {
                self.positions.remove(tp);
                self.committed.remove(tp);
            }
            self.owned.retain(|tp| !revoking.contains(tp));
            self.generation = r.generation;
            return self.assign(tps(&r.assignment)).await;
        }
        let assignment = tps(&hb.assignment);
        let gone: Vec<TopicPartition> = self.owned.difference(&assignment).cloned().collect();
        if !gone.is_empty() {
            self.listener.on_revoked(&gone);
            for tp in &gone {
                self.positions.remove(tp);
            }
        }
        self.assign(assignment).await
    }

    /// Fetches the next records from owned partitions (round robin), long-polling up to
    /// `poll_wait` when none is available. Handles rebalances and auto-commit first.
    ///
    /// # Errors
    /// Fetch errors, or a fatal group error (removed from the group).
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, Error> {
        self.handle_rebalance().await?;
        if let Some(every) = self.cfg.auto_commit_interval {
            if self.last_commit.elapsed() >= every {
                self.commit().await?;
            }
        }
        let owned: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        if owned.is_empty() {
            tokio::time::sleep(self.cfg.poll_wait.min(Duration::from_millis(200))).await;
            return Ok(vec![]);
        }
        for i in 0..owned.len() {
            let tp = &owned[(self.rr + i) % owned.len()];
            // Long-poll only on the last partition tried, so one quiet partition does not
            // delay the others.
            let wait = if i + 1 == owned.len() {
                self.cfg.poll_wait.as_millis() as u64
            } else {
                0
            };
            let Some(&pos) = self.positions.get(tp) else {
                continue;
            };
            match self
                .client
                .fetch(&tp.0, tp.1, pos, self.cfg.max_poll_records, wait)
                .await
            {
                Ok(r) if !r.records.is_empty() => {
                    self.rr = (self.rr + i + 1) % owned.len();
                    if let Some(last) = r.records.last() {
                        self.positions.insert(tp.clone(), last.offset + 1);
                    }
                    return Ok(r
                        .records
                        .into_iter()
                        .map(|record| ConsumerRecord {
                            topic: tp.0.clone(),
                            partition: tp.1,
                            record,
                        })
                        .collect());
                }
                Ok(_) => {}
                Err(e) if e.error_code() == Some(ErrorCode::OffsetOutOfRange) => {
                    let p = self.reset_position(tp).await?;
                    self.positions.insert(tp.clone(), p);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(vec![])
    }

    /// Moves the position of an owned partition: the next `poll` reads from `offset`, and the
    /// next `commit` commits it. Use it to commit less than `poll` returned (for example only
    /// the records actually processed); records after `offset` are then delivered again.
    ///
    /// # Errors
    /// [`Error::Config`] when this member does not own the partition.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), Error> {
        let tp = (topic.to_string(), partition);
        if !self.owned.contains(&tp) {
            return Err(Error::Config(format!(
                "{topic}/{partition} is not assigned to this member"
            )));
        }
        self.positions.insert(tp, offset);
        Ok(())
    }

    async fn commit_partitions(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        let offsets: Vec<CommittedOffset> = partitions
            .iter()
            .filter_map(|tp| {
                let pos = *self.positions.get(tp)?;
                (self.committed.get(tp) != Some(&pos)).then(|| CommittedOffset {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    offset: pos,
                })
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let request = CommitRequest {
            member_id: self.member_id.clone(),
            generation: self.generation,
            offsets,
        };
        let _: CommitReply = self
            .client
            .call_with_body(
                Method::POST,
                &format!("/v1/groups/{}/offsets", self.cfg.group),
                &request,
            )
            .await?;
        for tp in partitions {
            if let Some(p) = self.positions.get(tp) {
                self.committed.insert(tp.clone(), *p);
            }
        }
        Ok(())
    }

    /// Commits the position of every owned partition: the offset after the last record
    /// returned by `poll` (the next offset to read).
    ///
    /// # Errors
    /// `fenced` after a rebalance this member has not seen yet (the next `poll` handles it),
    /// `unknown_member` after expiry.
    pub async fn commit(&mut self) -> Result<(), Error> {
        let owned: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        self.last_commit = Instant::now();
        match self.commit_partitions(&owned).await {
            Err(e) if e.error_code() == Some(ErrorCode::Fenced) => {
                // A rebalance happened: pick it up, then commit what we still own.
                self.refresh().await?;
                let owned: Vec<TopicPartition> = self.owned.iter().cloned().collect();
                self.commit_partitions(&owned).await
            }
            other => other,
        }
    }

    async fn refresh(&mut self) -> Result<(), Error> {
        let hb: HeartbeatReply = self
            .client
            .call_json(
                Method::POST,
                &format!(
                    "/v1/groups/{}/members/{}/heartbeat",
                    self.cfg.group, self.member_id
                ),
                Some(heartbeat_body()),
            )
            .await?;
        if let Ok(mut s) = self.shared.lock() {
            s.latest = Some(hb);
        }
        self.handle_rebalance().await
    }

    /// Commits (when auto-commit is on) and leaves the group, so partitions move at once.
    ///
    /// # Errors
    /// When the leave request fails; the session then expires on its own.
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        self.heartbeat.abort();
        if self.cfg.auto_commit_interval.is_some() {
            let _ = self.commit().await;
        }
        let _: LeaveReply = self
            .client
            .call_json(
                Method::DELETE,
                &format!("/v1/groups/{}/members/{}", self.cfg.group, self.member_id),
                None,
            )
            .await?;
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.closed {
            return;
        }
        // Best effort: leave so the partitions move now rather than after the session timeout.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let path = format!("/v1/groups/{}/members/{}", self.cfg.group, self.member_id);
            rt.spawn(async move {
                let _ = client.send_raw(Method::DELETE, &path, None).await;
            });
        }
    }
}

fn spawn_heartbeat(
    client: Client,
    group: String,
    member: String,
    every: Duration,
    shared: Arc<Mutex<Shared>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = format!("/v1/groups/{group}/members/{member}/heartbeat");
        loop {
            tokio::time::sleep(every.max(Duration::from_millis(100))).await;
            match client
                .call_json::<HeartbeatReply>(Method::POST, &path, Some(heartbeat_body()))
                .await
            {
                Ok(hb) => {
                    if let Ok(mut s) = shared.lock() {
                        s.latest = Some(hb);
                    }
                }
                Err(e)
                    if matches!(
                        e.error_code(),
                        Some(ErrorCode::UnknownMember | ErrorCode::GroupNotFound)
                    ) =>
                {
                    if let Ok(mut s) = shared.lock() {
                        s.lost = true;
                    }
                    return;
                }
                // Transient (election, unreachable node): keep trying within the session.
                Err(_) => {}
            }
        }
    })
}

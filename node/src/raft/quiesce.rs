//! Quiescence of idle partitions, and the node-level failure detector that keeps it safe.
//!
//! Every open Raft group ticks several times per heartbeat interval, and its leader sends a
//! heartbeat to each follower every interval, whether or not anything is written. With
//! thousands of partitions that idle work fills the machine. A *quiesced* group does none of
//! it: its replicas' openraft ticks are off (no heartbeats, no election timer), and it costs
//! nothing until it is used again.
//!
//! **Quiescing.** Once per heartbeat interval each node sends every peer one *beat* message
//! ([`BEAT_PATH`]). It lists the partitions this node leads, with the peer as a follower, that
//! have been idle for `--quiesce-after-ms` and are fully replicated: committed, applied and
//! matched on every voter at the leader's last log index. A follower agrees for a group only
//! if it sees the same committed vote (term and leader) and the same last log index; it then
//! turns its own tick off. When every follower of a group agreed, the leader turns its tick
//! off too, unless a request touched the group meanwhile. Groups with learners or a joint
//! configuration (a move in progress) and the metadata group are never quiesced.
//!
//! **Waking.** Any leader operation (produce, fetch, a leadership move or a membership step)
//! first wakes a quiesced leader: tick back on, then a `ReadIndex` round, which confirms the
//! leadership with a quorum and renews the lease that lapsed while the group was quiet (writes
//! and lease reads need it). A follower wakes when its group gets an append that carries
//! entries, a vote request, a snapshot or a leadership transfer, and when its leader stops
//! re-asserting the quiescence (each beat re-asserts it; a follower's agreement lasts
//! [`FOLLOWER_LEASE_BEATS`] beats).
//!
//! **Failure detection.** A quiesced follower has no election timer, so it needs another way
//! to notice that its leader is gone. Every internal request a node receives (Raft RPCs, the
//! heartbeat batches, the beats) records when the sender was last heard from. When a peer has
//! been silent for longer than `election_timeout_max`, every group here that it leads is woken
//! and one of its surviving voters, picked by rank so they do not split the vote, starts a
//! pre-vote ([`openraft::raft::trigger::Trigger::elect`] with `pre_vote`); the others follow
//! later if it does not win. This also serves active groups and the metadata group: a
//! follower starts its campaign once its leader's node has been silent for one
//! `election_timeout_max` (which is also the leader lease), instead of waiting for the lease
//! plus a random election timeout. Nothing here decides safety: a pre-vote is refused by any
//! voter whose lease on a live leader has not expired, and elections stay openraft's own.
//! Because the last message heard from a peer is never older than the last append of any
//! group it leads, when the peer counts as silent every such group's lease has expired at
//! this node too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::raft::ReadPolicy;
use openraft::storage::RaftStateMachine;
use openraft::{RaftMetrics, ServerState};
use raft_store::{codec, GroupId, NodeId, TypeConfig};
use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::partition::PartitionHandle;

/// The internal route that takes a [`Beat`].
pub const BEAT_PATH: &str = "/raft-node/beat";
/// A follower stays quiesced this many beat intervals after its leader last re-asserted it.
pub const FOLLOWER_LEASE_BEATS: u32 = 8;
/// A leader re-asserts the quiescence of its quiet groups every this many beats.
const REASSERT_EVERY: u64 = 2;
/// At most this many campaigns start per detector round (a quarter of a heartbeat interval):
/// a node that leads thousands of groups fails over in waves instead of one storm of
/// pre-votes. Groups left for later are awake, so openraft's own election timer covers them.
const CAMPAIGNS_PER_ROUND: usize = 64;

/// The message a node sends each peer once per heartbeat interval: it proves the sender is
/// alive, and asks the peer to quiesce (or to stay quiesced in) the listed groups.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Beat {
    /// Groups the sender leads, with the receiver as a follower, to quiesce.
    pub quiesce: Vec<QuiesceItem>,
}

/// One group a leader asks a follower to quiesce, with the leader's state the follower must
/// match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuiesceItem {
    /// The group.
    pub group: GroupId,
    /// The leader's committed vote (its term and id).
    pub vote: openraft::type_config::alias::VoteOf<TypeConfig>,
    /// The leader's last log index, committed and matched by every voter.
    pub last_log_index: Option<u64>,
}

/// The reply to a [`Beat`]: for each item, whether the follower quiesced.
pub type BeatReply = Vec<bool>;

/// The guarded value, also after a panic elsewhere while it was held (each change is a
/// single assignment, so the value stays consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How one replica came to be quiet.
#[derive(Debug, Clone, Copy)]
struct Quiesced {
    /// The group's leader when it went quiet.
    leader: NodeId,
    /// This replica is that leader.
    as_leader: bool,
    /// A follower wakes by itself after this, unless its leader re-asserts the quiescence.
    until: Instant,
    /// A leader: when every follower last agreed (at quiescence or a re-assertion), which
    /// also confirms they are still in sync.
    agreed: Instant,
}

/// The quiescence state of one partition replica ([`PartitionHandle::quiet`]).
#[derive(Debug, Default)]
pub struct Quiet {
    /// Set while the replica is quiesced (the fast path of every leader operation).
    quiesced: AtomicBool,
    /// Set from the moment a quiesced leader wakes until its lease is renewed.
    lease_pending: AtomicBool,
    /// Bumped by every leader operation, so a leader never quiesces under one.
    activity: AtomicU64,
    state: Mutex<Option<Quiesced>>,
    /// Serializes the renewal of the lease after a wake.
    waking: tokio::sync::Mutex<()>,
}

impl Quiet {
    /// Whether the replica is quiesced.
    pub fn is_quiesced(&self) -> bool {
        self.quiesced.load(Ordering::SeqCst)
    }

    /// Whether the replica is quiesced as its group's leader.
    pub fn is_quiesced_leader(&self) -> bool {
        self.is_quiesced() && lock(&self.state).is_some_and(|q| q.as_leader)
    }

    /// For a quiesced leader, how long ago every follower last confirmed it holds the
    /// leader's whole log (a quiet group has no heartbeat replies to show that).
    pub fn followers_confirmed_ago(&self) -> Option<Duration> {
        if !self.is_quiesced() {
            return None;
        }
        lock(&self.state)
            .filter(|q| q.as_leader)
            .map(|q| q.agreed.elapsed())
    }

    /// Records that every follower re-asserted the leader's quiescence.
    fn confirmed(&self) {
        if let Some(q) = lock(&self.state).as_mut().filter(|q| q.as_leader) {
            q.agreed = Instant::now();
        }
    }

    fn activity(&self) -> u64 {
        self.activity.load(Ordering::SeqCst)
    }

    /// Quiesces a follower replica of `leader` until `until` (or extends it).
    fn quiesce_follower<SM>(&self, raft: &raft_store::Raft<SM>, leader: NodeId, until: Instant)
    where
        SM: RaftStateMachine<TypeConfig>,
    {
        let mut state = lock(&self.state);
        let fresh = state.is_none();
        *state = Some(Quiesced {
            leader,
            as_leader: false,
            until,
            agreed: Instant::now(),
        });
        self.quiesced.store(true, Ordering::SeqCst);
        if fresh {
            raft.runtime_config().tick(false);
        }
    }

    /// Quiesces the leader replica `me`, unless a leader operation ran since `activity` was
    /// read. Returns whether it did.
    fn try_quiesce_leader<SM>(&self, raft: &raft_store::Raft<SM>, me: NodeId, seen: u64) -> bool
    where
        SM: RaftStateMachine<TypeConfig>,
    {
        {
            let mut state = lock(&self.state);
            if self.activity() != seen || state.is_some() {
                return false;
            }
            *state = Some(Quiesced {
                leader: me,
                as_leader: true,
                until: far_future(),
                agreed: Instant::now(),
            });
            self.quiesced.store(true, Ordering::SeqCst);
            raft.runtime_config().tick(false);
        }
        // An operation that bumped the activity after the check above may have missed the
        // flag: it must not run on a quiet leader.
        if self.activity() != seen {
            self.wake(raft);
            return false;
        }
        true
    }

    /// Turns the replica's tick back on. Returns whether it was quiesced. A leader woken this
    /// way renews its lease on its next operation.
    pub fn wake<SM>(&self, raft: &raft_store::Raft<SM>) -> bool
    where
        SM: RaftStateMachine<TypeConfig>,
    {
        let mut state = lock(&self.state);
        let Some(was) = state.take() else {
            return false;
        };
        if was.as_leader {
            self.lease_pending.store(true, Ordering::SeqCst);
        }
        self.quiesced.store(false, Ordering::SeqCst);
        raft.runtime_config().tick(true);
        true
    }

    /// Wakes a follower whose leader stopped re-asserting the quiescence.
    fn expire<SM>(&self, raft: &raft_store::Raft<SM>, now: Instant) -> bool
    where
        SM: RaftStateMachine<TypeConfig>,
    {
        if !self.is_quiesced() {
            return false;
        }
        let expired = lock(&self.state).is_some_and(|q| !q.as_leader && q.until <= now);
        expired && self.wake(raft)
    }

    /// Makes the replica ready for a leader operation: marks the activity and, if it was
    /// quiesced (or woken without renewing its lease), turns the tick on and confirms the
    /// leadership with a quorum (`ReadIndex`) within `timeout`. Errors are left to the
    /// operation itself, which reports them in its own terms.
    pub async fn ready_for_leader_op<SM>(&self, raft: &raft_store::Raft<SM>, timeout: Duration)
    where
        SM: RaftStateMachine<TypeConfig>,
    {
        self.activity.fetch_add(1, Ordering::SeqCst);
        if !self.quiesced.load(Ordering::SeqCst) && !self.lease_pending.load(Ordering::SeqCst) {
            return;
        }
        let _one = self.waking.lock().await;
        {
            let mut state = lock(&self.state);
            if let Some(was) = state.take() {
                self.lease_pending.store(true, Ordering::SeqCst);
                self.quiesced.store(false, Ordering::SeqCst);
                raft.runtime_config().tick(true);
                tracing::debug!(leader = was.leader, "partition woken");
            }
        }
        if !self.lease_pending.load(Ordering::SeqCst) {
            return;
        }
        let renewed =
            tokio::time::timeout(timeout, raft.ensure_linearizable(ReadPolicy::ReadIndex)).await;
        if !matches!(renewed, Ok(Ok(_))) {
            tracing::debug!("lease renewal after waking did not complete");
        }
        self.lease_pending.store(false, Ordering::SeqCst);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// When each peer was last heard from: any internal request it sent.
#[derive(Debug)]
pub struct Liveness {
    heard: Mutex<HashMap<NodeId, Instant>>,
    started: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            heard: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }
}

impl Liveness {
    /// Records a request from `peer`.
    pub fn heard(&self, peer: NodeId) {
        lock(&self.heard).insert(peer, Instant::now());
    }

    /// How long `peer` has been silent (since this node started, for one never heard).
    pub fn silent_for(&self, peer: NodeId) -> Duration {
        lock(&self.heard)
            .get(&peer)
            .copied()
            .unwrap_or(self.started)
            .elapsed()
    }
}

/// Whether a follower with metrics `m` may quiesce as `item` asks, the request coming from
/// `leader`.
fn follower_matches(m: &RaftMetrics<TypeConfig>, leader: NodeId, item: &QuiesceItem) -> bool {
    m.state == ServerState::Follower
        && m.current_leader == Some(leader)
        && m.vote == item.vote
        && m.vote.committed
        && m.last_log_index == item.last_log_index
        && m.local_committed.as_ref().map(|l| l.index) == item.last_log_index
}

/// Serves a [`Beat`] from `sender`: quiesces each listed group whose state matches.
pub fn serve_beat(node: &Node, sender: NodeId, beat: &Beat) -> BeatReply {
    let lease = beat_interval(node) * FOLLOWER_LEASE_BEATS;
    let until = Instant::now() + lease;
    beat.quiesce
        .iter()
        .map(|item| {
            let Some(h) = node.partitions().get(item.group) else {
                return false;
            };
            let ok = follower_matches(&h.raft.metrics().borrow_watched(), sender, item);
            if ok {
                h.quiet.quiesce_follower(&h.raft, sender, until);
            }
            ok
        })
        .collect()
}

/// The beat interval: the heartbeat interval.
fn beat_interval(node: &Node) -> Duration {
    Duration::from_millis(node.config().heartbeat_ms.max(1))
}

/// Whether the leader's metrics `m` show a group every voter has fully caught up with and
/// that is not changing membership, with its voters other than `me`.
fn quiescible(m: &RaftMetrics<TypeConfig>, me: NodeId) -> Option<Vec<NodeId>> {
    if m.state != ServerState::Leader || m.current_leader != Some(me) {
        return None;
    }
    let membership = m.membership_config.membership();
    if membership.get_joint_config().len() != 1 || membership.learner_ids().next().is_some() {
        return None;
    }
    let last = m.last_log_index;
    let at =
        |l: &Option<openraft::type_config::alias::LogIdOf<TypeConfig>>| l.as_ref().map(|l| l.index);
    if at(&m.local_committed) != last || at(&m.last_applied) != last {
        return None;
    }
    let replication = m.replication.as_ref()?;
    let followers: Vec<NodeId> = membership.voter_ids().filter(|v| *v != me).collect();
    let caught_up = followers.iter().all(|f| {
        replication
            .get(f)
            .is_some_and(|matched| at(matched) == last)
    });
    caught_up.then_some(followers)
}

/// A group this node leads that goes in this round's beats.
struct Candidate {
    handle: PartitionHandle,
    activity: u64,
    already: bool,
    /// The item's position in each follower's beat.
    slots: Vec<(NodeId, usize)>,
}

/// The leader side of one beat round: sends every peer its beat (with the groups to quiesce)
/// and quiesces the groups every follower agreed to.
async fn leader_round(
    node: &Node,
    idle: &mut HashMap<GroupId, (Option<u64>, Instant)>,
    round: u64,
) {
    let me = node.id();
    let now = Instant::now();
    let quiesce_after = Duration::from_millis(node.config().quiesce_after_ms);
    let enabled =
        node.config().quiesce_after_ms > 0 && !node.inner.shutting_down.load(Ordering::Acquire);
    let reassert = round.is_multiple_of(REASSERT_EVERY);
    let mut beats: BTreeMap<NodeId, Beat> = node
        .inner
        .transport
        .peers()
        .into_keys()
        .filter(|p| *p != me)
        .map(|p| (p, Beat::default()))
        .collect();
    let mut candidates = Vec::new();
    let mut open = BTreeSet::new();
    for handle in node.partitions().all() {
        open.insert(handle.group);
        if !enabled {
            continue;
        }
        let activity = handle.quiet.activity();
        let already = handle.quiet.is_quiesced_leader();
        if already && !reassert {
            continue;
        }
        let m = {
            let metrics = handle.raft.metrics();
            let m = metrics.borrow_watched();
            if m.state != ServerState::Leader && !already {
                idle.remove(&handle.group);
                continue;
            }
            m.clone()
        };
        let Some(followers) = quiescible(&m, me) else {
            idle.remove(&handle.group);
            if already {
                handle.quiet.wake(&handle.raft);
            }
            continue;
        };
        let since = idle.entry(handle.group).or_insert((m.last_log_index, now));
        if since.0 != m.last_log_index {
            *since = (m.last_log_index, now);
            continue;
        }
        if !already && now.duration_since(since.1) < quiesce_after {
            continue;
        }
        let mut slots = Vec::with_capacity(followers.len());
        for f in &followers {
            let Some(beat) = beats.get_mut(f) else {
                slots.clear();
                break;
            };
            slots.push((*f, beat.quiesce.len()));
            beat.quiesce.push(QuiesceItem {
                group: handle.group,
                vote: m.vote,
                last_log_index: m.last_log_index,
            });
        }
        if slots.len() == followers.len() {
            candidates.push(Candidate {
                handle,
                activity,
                already,
                slots,
            });
        }
    }
    idle.retain(|g, _| open.contains(g));

    let timeout = beat_interval(node);
    let sends = beats.into_iter().map(|(peer, beat)| async move {
        let reply = match codec::encode(&beat) {
            Ok(body) => node
                .inner
                .transport
                .post(peer, BEAT_PATH, body, timeout)
                .await
                .ok()
                .and_then(|b| codec::decode::<BeatReply>(&b).ok()),
            Err(_) => None,
        };
        (peer, reply.unwrap_or_default())
    });
    let replies: HashMap<NodeId, BeatReply> =
        futures::future::join_all(sends).await.into_iter().collect();

    for c in candidates {
        let agreed = c.slots.iter().all(|(peer, at)| {
            replies
                .get(peer)
                .and_then(|r| r.get(*at))
                .copied()
                .unwrap_or(false)
        });
        if !c.already && agreed {
            if c.handle
                .quiet
                .try_quiesce_leader(&c.handle.raft, me, c.activity)
            {
                tracing::debug!(group = c.handle.group, "partition quiesced");
            }
        } else if c.already && agreed {
            c.handle.quiet.confirmed();
        } else if c.already && !agreed {
            // A follower no longer agrees (it restarted, or its state moved): run normally
            // again until the group can quiesce anew.
            c.handle.quiet.wake(&c.handle.raft);
        }
    }
}

/// A pending campaign for a group whose leader's node went silent.
#[derive(Debug, Clone, Copy)]
struct Campaign {
    next: Instant,
    attempts: u32,
}

/// One round of the failure detector: who is silent, and the pacing of campaigns.
struct Detector<'a> {
    me: NodeId,
    silent: BTreeSet<NodeId>,
    campaigns: &'a mut HashMap<GroupId, Campaign>,
    /// Between one rank's first campaign and the next rank's.
    stagger: Duration,
    /// Between two campaigns of one group: a pre-vote refused because the other voter heard
    /// the leader a moment later than this node (its lease still ran) succeeds on a retry.
    retry: Duration,
    /// Campaigns this round may still start.
    budget: usize,
    /// Groups with a campaign still pending after this round.
    pending: BTreeSet<GroupId>,
}

impl Detector<'_> {
    /// Starts (or paces) a pre-vote in `group` if its leader's node is silent and this node
    /// is a surviving voter.
    async fn campaign<SM>(&mut self, group: GroupId, raft: &raft_store::Raft<SM>)
    where
        SM: RaftStateMachine<TypeConfig>,
    {
        let (leader, voters) = {
            let m = raft.metrics();
            let m = m.borrow_watched();
            if m.state == ServerState::Leader {
                return;
            }
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            (m.current_leader, voters)
        };
        let Some(leader) = leader.filter(|l| self.silent.contains(l)) else {
            return;
        };
        // The surviving voters in id order: the first campaigns at once, the next after a
        // stagger, so they do not split the vote.
        let mut alive: Vec<NodeId> = voters
            .into_iter()
            .filter(|v| !self.silent.contains(v))
            .collect();
        alive.sort_unstable();
        let Some(rank) = alive.iter().position(|v| *v == self.me) else {
            return;
        };
        self.pending.insert(group);
        let now = Instant::now();
        let c = self.campaigns.entry(group).or_insert(Campaign {
            next: now + self.stagger * u32::try_from(rank).unwrap_or(u32::MAX),
            attempts: 0,
        });
        if now < c.next || self.budget == 0 {
            return;
        }
        self.budget -= 1;
        c.attempts += 1;
        c.next = now + self.retry;
        tracing::info!(
            group,
            leader,
            attempt = c.attempts,
            "leader's node is silent: pre-vote"
        );
        if let Err(e) = raft.trigger().elect(true).await {
            tracing::debug!(group, error = %e, "election trigger");
        }
    }
}

/// The follower side, every few milliseconds: wakes followers whose leader stopped
/// re-asserting, and campaigns for groups whose leader's node went silent. A node that was
/// itself `starved` (this round ran late) wakes groups but starts no campaign: the silence
/// may be its own, and openraft's election timers still run in every awake group.
async fn follower_round(node: &Node, campaigns: &mut HashMap<GroupId, Campaign>, starved: bool) {
    let me = node.id();
    let now = Instant::now();
    let max = Duration::from_millis(node.config().election_max_ms);
    let step = step_of(node);
    let silent: BTreeSet<NodeId> = node
        .inner
        .transport
        .peers()
        .into_keys()
        .filter(|p| *p != me && node.liveness().silent_for(*p) > max + step)
        .collect();
    let handles = node.partitions().all();
    for h in &handles {
        if h.quiet.expire(&h.raft, now) {
            tracing::debug!(group = h.group, "quiescence lapsed: partition woken");
        }
    }
    if silent.is_empty() {
        campaigns.clear();
        return;
    }
    let mut detector = Detector {
        me,
        silent,
        campaigns,
        stagger: Duration::from_millis(node.config().election_min_ms / 2),
        retry: beat_interval(node),
        budget: if starved { 0 } else { CAMPAIGNS_PER_ROUND },
        pending: BTreeSet::new(),
    };
    for h in &handles {
        if h.current_leader()
            .is_some_and(|l| detector.silent.contains(&l))
        {
            h.quiet.wake(&h.raft);
        }
        detector.campaign(h.group, &h.raft).await;
    }
    detector
        .campaign(raft_store::METADATA_GROUP, node.meta_raft())
        .await;
    let pending = std::mem::take(&mut detector.pending);
    campaigns.retain(|g, _| pending.contains(g));
}

/// How often the follower side runs: a quarter of the heartbeat interval (at least 5 ms).
fn step_of(node: &Node) -> Duration {
    (beat_interval(node) / 4).max(Duration::from_millis(5))
}

/// The per-node task: beats (and quiescence) every heartbeat interval, failure detection
/// every quarter of one. Ends when the node shuts down.
pub async fn run(node: Node) {
    let step = step_of(&node);
    let per_beat = (beat_interval(&node).as_millis() / step.as_millis().max(1)).max(1) as u64;
    let mut idle = HashMap::new();
    let mut campaigns = HashMap::new();
    let mut i: u64 = 0;
    loop {
        let due = tokio::time::Instant::now() + step;
        tokio::select! {
            _ = node.inner.cancel.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let starved = due.elapsed() > step;
        follower_round(&node, &mut campaigns, starved).await;
        if i.is_multiple_of(per_beat) {
            leader_round(&node, &mut idle, i / per_beat).await;
        }
        i += 1;
    }
}

/// Whether an incoming Raft RPC `rpc` with `body` must wake a quiesced follower: anything but
/// a heartbeat (an append without entries) or a pre-vote.
pub fn rpc_wakes(rpc: &str, body: &[u8]) -> bool {
    match rpc {
        "append" => codec::decode::<openraft::raft::AppendEntriesRequest<TypeConfig>>(body)
            .map(|req| !req.entries.is_empty())
            .unwrap_or(false),
        "pre_vote" => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_counts_from_start_for_unheard_peers() {
        let l = Liveness::default();
        assert!(l.silent_for(7) < Duration::from_secs(1));
        l.heard(7);
        assert!(l.silent_for(7) < Duration::from_millis(100));
    }

    #[test]
    fn heartbeats_and_pre_votes_do_not_wake() {
        assert!(!rpc_wakes("pre_vote", b""));
        assert!(rpc_wakes("vote", b""));
        assert!(rpc_wakes("transfer_leader", b""));
        assert!(!rpc_wakes("append", b"not a request"));
    }
}

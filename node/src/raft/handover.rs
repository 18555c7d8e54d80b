//! Leadership handover: before a node stops, every group it leads (each partition and the
//! metadata group) hands its leadership to an in-sync voter, so producers see a hop to a new
//! leader instead of an election after leases expire (about 3-4 s with the default timings).
//!
//! openraft's `trigger().transfer_leader(to)` makes the leader refuse new writes and reads with
//! `ForwardToLeader { leader_id: Some(to), reason: LeadershipTransfer }` (answered as
//! `not_leader` with that hint, outcome `not_applied`), keep replicating what it has, and send
//! `TransferLeaderRequest` to the voters (`/raft/{group}/transfer_leader`, see
//! [`super::network`]). The target waits until its log has flushed up to the leader's last log
//! id and campaigns without waiting for the lease. There is no completion callback: we watch
//! the group's metrics until another node leads.
//!
//! A transfer that does not complete in time leaves the group as a stop without handover would:
//! the others elect once the leader's lease expires. Nothing is lost either way; only the pause
//! differs.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use openraft::async_runtime::WatchReceiver;
use openraft::storage::RaftStateMachine;
use openraft::RaftMetrics;
use raft_store::{GroupId, NodeId, TypeConfig};
use tokio::time::Instant;

/// How many groups hand over at once.
const CONCURRENT_HANDOVERS: usize = 64;

/// What one group's handover did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// This node did not lead the group.
    NotLeader,
    /// Another node leads now.
    Transferred(NodeId),
    /// No other voter is alive: the group elects after the lease expires.
    NoTarget,
    /// The transfer was asked for but no other leader appeared in time.
    TimedOut,
}

/// The counts of a node's handover, for the shutdown log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandoverReport {
    /// Groups whose leadership moved.
    pub transferred: usize,
    /// Led groups with no live voter to take over.
    pub no_target: usize,
    /// Led groups whose transfer did not complete in time.
    pub timed_out: usize,
}

/// The voter that should take over from this leader: among those that acknowledged the leader
/// within `fresh` (alive), the one whose replicated log reaches furthest, the most recently
/// acknowledged among equals. Under load no follower has every entry at every instant; the
/// transfer itself makes the leader stop taking writes and the target wait until its log has
/// flushed up to the leader's last entry before it campaigns. `None` when this node does not
/// lead or no other voter is alive.
pub fn transfer_target(m: &RaftMetrics<TypeConfig>, fresh: Duration) -> Option<NodeId> {
    use openraft::Instant as _;
    if m.current_leader != Some(m.id) {
        return None;
    }
    let replication = m.replication.as_ref()?;
    let ack_age = |node: &NodeId| {
        m.heartbeat
            .as_ref()
            .and_then(|h| h.get(node))
            .and_then(|t| t.as_ref())
            .map_or(Duration::MAX, |t| t.elapsed())
    };
    let matched = |node: &NodeId| {
        replication
            .get(node)
            .and_then(|l| l.as_ref())
            .map(|l| l.index())
    };
    m.membership_config
        .voter_ids()
        .filter(|v| *v != m.id && ack_age(v) <= fresh)
        .max_by_key(|v| (matched(v), std::cmp::Reverse(ack_age(v))))
}

/// Hands `raft`'s leadership (if this node holds it) to an in-sync voter that acknowledged it
/// within `fresh`, and waits, until `deadline`, for another node to lead. Also stops this
/// replica from campaigning again, as the node is about to stop.
pub async fn hand_over<SM>(
    raft: &raft_store::Raft<SM>,
    me: NodeId,
    fresh: Duration,
    deadline: Instant,
) -> Handover
where
    SM: RaftStateMachine<TypeConfig>,
{
    raft.runtime_config().elect(false);
    let target = {
        let m = raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(me) {
            return Handover::NotLeader;
        }
        transfer_target(&m, fresh)
    };
    match target {
        Some(to) => transfer(raft, me, to, deadline).await,
        None => Handover::NoTarget,
    }
}

/// Asks `raft`'s leader (this node) to hand its leadership to `to` and waits, until `deadline`,
/// for another node to lead.
pub async fn transfer<SM>(
    raft: &raft_store::Raft<SM>,
    me: NodeId,
    to: NodeId,
    deadline: Instant,
) -> Handover
where
    SM: RaftStateMachine<TypeConfig>,
{
    if raft.trigger().transfer_leader(to).await.is_err() {
        return Handover::TimedOut;
    }
    let wait = deadline.saturating_duration_since(Instant::now());
    match raft
        .wait(Some(wait))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != me),
            "leadership handover",
        )
        .await
    {
        Ok(m) => Handover::Transferred(m.current_leader.unwrap_or(to)),
        Err(_) => Handover::TimedOut,
    }
}

/// Whether `to` may take over from this leader now: a voter that acknowledged the leader
/// within `fresh` and whose log is at most `max_lag` entries behind.
pub fn may_take_over(
    m: &RaftMetrics<TypeConfig>,
    to: NodeId,
    fresh: Duration,
    max_lag: u64,
) -> bool {
    use openraft::Instant as _;
    if m.current_leader != Some(m.id) || !m.membership_config.voter_ids().any(|v| v == to) {
        return false;
    }
    let acked = m
        .heartbeat
        .as_ref()
        .and_then(|h| h.get(&to))
        .and_then(|t| t.as_ref())
        .is_some_and(|t| t.elapsed() <= fresh);
    let matched = m
        .replication
        .as_ref()
        .and_then(|r| r.get(&to))
        .and_then(|l| l.as_ref())
        .map(|l| l.index());
    let lag = match (m.last_log_index, matched) {
        (Some(last), Some(at)) => last.saturating_sub(at),
        (Some(last), None) => last + 1,
        (None, _) => 0,
    };
    acked && lag <= max_lag
}

/// How long one handover may take, and the whole of a node's.
#[derive(Debug, Clone, Copy)]
pub struct HandoverLimits {
    /// A voter that has not acknowledged the leader this recently is not a target.
    pub fresh: Duration,
    /// One group's transfer: the target waits up to an election timeout for its log to flush,
    /// then wins one vote round.
    pub per_group: Duration,
    /// Every group of the node together.
    pub budget: Duration,
}

/// Runs [`hand_over`] for many groups, at most [`CONCURRENT_HANDOVERS`] at a time, each within
/// `limits.per_group` and all within `limits.budget`, and counts the results.
pub async fn hand_over_all<'a, SM, I>(
    groups: I,
    me: NodeId,
    limits: HandoverLimits,
) -> HandoverReport
where
    SM: RaftStateMachine<TypeConfig> + 'a,
    I: IntoIterator<Item = (GroupId, &'a raft_store::Raft<SM>)>,
{
    let deadline = Instant::now() + limits.budget;
    let results: Vec<(GroupId, Handover)> = stream::iter(groups)
        .map(|(group, raft)| async move {
            let until = deadline.min(Instant::now() + limits.per_group);
            (group, hand_over(raft, me, limits.fresh, until).await)
        })
        .buffer_unordered(CONCURRENT_HANDOVERS)
        .collect()
        .await;
    let mut report = HandoverReport::default();
    for (group, h) in results {
        match h {
            Handover::NotLeader => {}
            Handover::Transferred(to) => {
                report.transferred += 1;
                tracing::debug!(group, to, "leadership handed over");
            }
            Handover::NoTarget => {
                report.no_target += 1;
                tracing::debug!(group, "no live voter to hand leadership to");
            }
            Handover::TimedOut => {
                report.timed_out += 1;
                tracing::debug!(group, "leadership handover did not complete in time");
            }
        }
    }
    report
}

//! Preferred leaders: every partition's first replica is its preferred leader (placement
//! rotates first replicas across nodes, so preferred leaderships are balanced). A restart or a
//! failure moves leaderships away; this brings them back, as Kafka's
//! `auto.leader.rebalance.enable`:
//!
//! - periodically (every `--leader-rebalance-interval-ms`), each node hands the partitions it
//!   leads but does not prefer to their preferred replica, when that replica is alive and
//!   caught up ([`crate::raft::handover::may_take_over`]);
//! - on demand, `POST /v1/cluster/rebalance-leaders` asks each such partition's leader to do
//!   the same ([`Node::move_to_preferred_leader`]).
//!
//! A move is a leadership transfer: the leader stops taking writes, the target catches up on
//! the last entries and is elected without waiting for a lease, so writers see a pause of a
//! few round trips and `not_leader` answers (not applied) that name the new leader.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use openraft::async_runtime::WatchReceiver;
use raft_store::{GroupId, NodeId};
use raftka_protocol::{LeaderMove, LeaderMoveOutcome, LeaderRebalance};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::forward::InternalRequest;
use crate::forward::Leader;
use crate::node::Node;
use crate::partition::PartitionHandle;
use crate::raft::handover::{self, Handover};

/// A preferred replica at most this many log entries behind may take over: it catches up on
/// them while the leader holds writes, well within the transfer's wait.
pub const MAX_TAKEOVER_LAG: u64 = 64;
/// How many moves run at once.
const CONCURRENT_MOVES: usize = 16;

impl PartitionHandle {
    /// On the leader: hands leadership to `to` if it may take over now.
    ///
    /// # Errors
    /// `not_leader` (with a hint) when this replica does not lead.
    pub async fn move_leadership(
        &self,
        me: NodeId,
        to: NodeId,
        fresh: Duration,
        deadline: Instant,
    ) -> Result<LeaderMoveOutcome, ApiError> {
        // A quiet group has no fresh acknowledgements to judge the target by: wake it first.
        let wake_within = deadline.saturating_duration_since(Instant::now());
        self.quiet
            .ready_for_leader_op(&self.raft, wake_within)
            .await;
        let m = self.raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(me) {
            return Err(ApiError::new(
                crate::error::ErrorCode::NotLeader,
                format!("node {me} does not lead this partition"),
            )
            .with_leader(m.current_leader));
        }
        if to == me {
            return Ok(LeaderMoveOutcome::AlreadyPreferred);
        }
        if !handover::may_take_over(&m, to, fresh, MAX_TAKEOVER_LAG) {
            return Ok(LeaderMoveOutcome::TargetNotReady);
        }
        Ok(
            match handover::transfer(&self.raft, me, to, deadline).await {
                Handover::Transferred(_) => LeaderMoveOutcome::Moved,
                Handover::NotLeader | Handover::NoTarget => LeaderMoveOutcome::TargetNotReady,
                Handover::TimedOut => LeaderMoveOutcome::TimedOut,
            },
        )
    }
}

impl Node {
    /// How recently a replica must have acknowledged its leader to take over, and how long a
    /// transfer may take.
    fn move_limits(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.config().election_min_ms),
            Duration::from_millis(self.config().election_max_ms),
        )
    }

    /// Asks the leader of partition `group` to hand leadership to `to`, its preferred replica.
    ///
    /// # Errors
    /// Routing errors when no leader answers.
    pub async fn move_to_preferred_leader(
        &self,
        group: GroupId,
        replicas: &[NodeId],
        to: NodeId,
    ) -> Result<LeaderMoveOutcome, ApiError> {
        let (_, wait) = self.move_limits();
        let deadline = Instant::now() + self.config().request_timeout() + wait;
        let req = InternalRequest::MoveLeadership { group, to };
        self.call_leader(Leader::Partition { group, replicas }, req, deadline)
            .await
    }

    /// Serves a move on this node (the leader's side of [`Node::move_to_preferred_leader`]).
    pub(crate) async fn local_move_leadership(
        &self,
        h: &PartitionHandle,
        to: NodeId,
    ) -> Result<LeaderMoveOutcome, ApiError> {
        let (fresh, wait) = self.move_limits();
        h.move_leadership(self.id(), to, fresh, Instant::now() + wait)
            .await
    }

    /// Moves every partition that is not led by its preferred replica back to it, where that
    /// replica may take over; `POST /v1/cluster/rebalance-leaders`.
    pub async fn rebalance_leaders(&self) -> LeaderRebalance {
        let partitions: Vec<(String, u32, GroupId, Vec<NodeId>)> = self.with_metadata(|m| {
            m.all_groups()
                .map(|(t, i, p)| (t.name.clone(), i, p.group, p.replicas.clone()))
                .collect()
        });
        let statuses = futures::future::join_all(
            partitions
                .iter()
                .map(|(_, _, group, replicas)| self.partition_status(*group, replicas)),
        )
        .await;
        let mut already_preferred = 0;
        let mut todo = Vec::new();
        for ((topic, partition, group, replicas), status) in partitions.into_iter().zip(statuses) {
            let Some(&preferred) = replicas.first() else {
                continue;
            };
            if status.leader == Some(preferred) {
                already_preferred += 1;
            } else {
                todo.push((topic, partition, group, replicas, status.leader, preferred));
            }
        }
        let moves = stream::iter(todo)
            .map(|(topic, partition, group, replicas, from, to)| async move {
                let outcome = match from {
                    None => LeaderMoveOutcome::NoLeader,
                    Some(_) => self
                        .move_to_preferred_leader(group, &replicas, to)
                        .await
                        .unwrap_or(LeaderMoveOutcome::NoLeader),
                };
                LeaderMove {
                    topic,
                    partition,
                    from,
                    to,
                    outcome,
                }
            })
            .buffer_unordered(CONCURRENT_MOVES)
            .collect::<Vec<_>>()
            .await;
        let mut moves = moves;
        moves.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        LeaderRebalance {
            already_preferred,
            moves,
        }
    }
}

/// The periodic rebalance: runs until the node shuts down. Each round moves the partitions this
/// node leads but does not prefer to their preferred replicas, where they may take over.
pub async fn run(node: Node) {
    let every = Duration::from_millis(node.config().leader_rebalance_interval_ms);
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = node.inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let me = node.id();
        let preferred: Vec<(GroupId, NodeId)> = node.with_metadata(|m| {
            m.all_groups()
                .filter_map(|(_, _, p)| Some((p.group, *p.replicas.first()?)))
                .filter(|(_, first)| *first != me)
                .collect()
        });
        let led: Vec<(PartitionHandle, NodeId)> = preferred
            .into_iter()
            .filter_map(|(group, to)| {
                let h = node.partitions().get(group)?;
                (h.current_leader() == Some(me)).then_some((h, to))
            })
            .collect();
        if led.is_empty() {
            continue;
        }
        let moved = stream::iter(led)
            .map(|(h, to)| {
                let node = node.clone();
                async move { node.local_move_leadership(&h, to).await }
            })
            .buffer_unordered(CONCURRENT_MOVES)
            .filter(|r| futures::future::ready(matches!(r, Ok(LeaderMoveOutcome::Moved))))
            .count()
            .await;
        if moved > 0 {
            tracing::info!(moved, "leaderships returned to their preferred replicas");
        }
    }
}

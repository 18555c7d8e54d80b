//! Changing one Raft group's members, one safe step at a time, on its leader.
//!
//! [`step`] is called repeatedly (by the controller, through the group's leader) with the
//! target voter set. Each call looks at the group's metrics and does at most one thing:
//!
//! 1. wait while a membership entry is uncommitted (changes are strictly serialized);
//! 2. finish a joint configuration left by a leader change (flatten it);
//! 3. add one missing target node as a learner (`add_learner(.., blocking = false)`);
//! 4. wait until every new node has caught up (its matched index within `max_lag` entries of
//!    the leader's last log index; a learner whose entries were purged gets the snapshot
//!    first);
//! 5. hand leadership to a caught-up voter that stays, when this leader is leaving;
//! 6. switch the voters with joint consensus (`change_membership_if(ReplaceAllVoters, ..)`,
//!    guarded by the effective membership's log id, so no concurrent change is overwritten);
//! 7. remove learners that are not in the target.
//!
//! It answers [`MoveProgress::Done`] only when the committed configuration is uniform and has
//! exactly the target voters and no other node: only then may the old replicas' data go.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::impls::BasicNode;
use openraft::storage::RaftStateMachine;
use openraft::{ChangeMembers, Precondition, RaftMetrics};
use raft_store::{NodeId, TypeConfig};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// Where a group's membership change stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveProgress {
    /// The committed configuration is exactly the target.
    Done,
    /// Not yet; what it waits for.
    Waiting(String),
}

/// How long one membership change may take to commit before the step reports it as pending.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How far (in log entries) each new member is behind the leader, `None` for one with
/// nothing matched yet.
pub fn lag_of(m: &RaftMetrics<TypeConfig>, node: NodeId) -> Option<u64> {
    let last = m.last_log_index.unwrap_or(0);
    let matched = m
        .replication
        .as_ref()?
        .get(&node)?
        .as_ref()
        .map(|l| l.index())?;
    Some(last.saturating_sub(matched))
}

/// One step of moving the group led here to the voter set `target`. `addrs` gives new nodes'
/// addresses (kept in the membership for operators; the transport has its own book).
///
/// # Errors
/// `not_leader` (with a hint) when this node does not lead the group; `leader_not_available`
/// when openraft refuses the change for a transient reason (retried on the next step).
pub async fn step<SM>(
    raft: &raft_store::Raft<SM>,
    target: &[NodeId],
    addrs: &BTreeMap<NodeId, String>,
    max_lag: u64,
    retain_removed: bool,
) -> Result<MoveProgress, ApiError>
where
    SM: RaftStateMachine<TypeConfig>,
{
    let m = raft.metrics().borrow_watched().clone();
    if m.current_leader != Some(m.id) {
        return Err(
            ApiError::new(ErrorCode::NotLeader, "not the group's leader")
                .with_leader(m.current_leader),
        );
    }
    let target: BTreeSet<NodeId> = target.iter().copied().collect();
    let effective = m.membership_config.clone();
    if effective.log_id() != m.committed_membership_config.log_id() {
        return Ok(MoveProgress::Waiting(
            "a membership change is committing".into(),
        ));
    }
    let membership = effective.membership();
    if membership.get_joint_config().len() > 1 {
        // A leader change interrupted a switch: flatten the joint configuration first.
        change(
            raft,
            ChangeMembers::AddVoterIds(BTreeSet::new()),
            true,
            &effective,
        )
        .await?;
        return Ok(MoveProgress::Waiting(
            "finishing an interrupted voter switch".into(),
        ));
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let known: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    if voters == target {
        let extra: BTreeSet<NodeId> = known.difference(&target).copied().collect();
        if extra.is_empty() {
            return Ok(MoveProgress::Done);
        }
        if !retain_removed {
            change(raft, ChangeMembers::RemoveNodes(extra), false, &effective).await?;
            return Ok(MoveProgress::Waiting("removing old learners".into()));
        }
        return Ok(MoveProgress::Done);
    }
    if let Some(new) = target.iter().find(|t| !known.contains(t)) {
        let addr = addrs.get(new).cloned().unwrap_or_default();
        match raft.add_learner(*new, BasicNode { addr }, false).await {
            Ok(_) => {}
            Err(e) => return Err(refused(e)),
        }
        return Ok(MoveProgress::Waiting(format!(
            "node {new} added as a learner"
        )));
    }
    for t in target.difference(&voters) {
        match lag_of(&m, *t) {
            Some(lag) if lag <= max_lag => {}
            Some(lag) => {
                return Ok(MoveProgress::Waiting(format!(
                    "node {t} is catching up: {lag} entries behind"
                )))
            }
            None => {
                return Ok(MoveProgress::Waiting(format!(
                    "node {t} has not acknowledged anything yet"
                )))
            }
        }
    }
    if !target.contains(&m.id) {
        // Hand over first, to a voter that stays and is caught up, so the group does not wait
        // for the removed leader to step down after the change commits.
        let successor = voters
            .intersection(&target)
            .filter(|v| lag_of(&m, **v).is_some_and(|l| l <= max_lag))
            .min_by_key(|v| lag_of(&m, **v))
            .copied();
        if let Some(to) = successor {
            raft.trigger()
                .transfer_leader(to)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            return Ok(MoveProgress::Waiting(format!(
                "handing leadership to node {to}"
            )));
        }
    }
    change(
        raft,
        ChangeMembers::ReplaceAllVoters(target.clone()),
        retain_removed,
        &effective,
    )
    .await?;
    Ok(MoveProgress::Waiting("voters switched".into()))
}

async fn change<SM>(
    raft: &raft_store::Raft<SM>,
    members: ChangeMembers<NodeId, BasicNode>,
    retain: bool,
    base: &openraft::type_config::alias::StoredMembershipOf<TypeConfig>,
) -> Result<(), ApiError>
where
    SM: RaftStateMachine<TypeConfig>,
{
    let guard = Precondition::LastMembershipLogId {
        last_membership_log_id: *base.log_id(),
    };
    match tokio::time::timeout(
        CHANGE_TIMEOUT,
        raft.change_membership_if(members, retain, [guard]),
    )
    .await
    {
        Err(_) => Err(ApiError::new(
            ErrorCode::LeaderNotAvailable,
            "membership change did not commit in time",
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(refused(e)),
    }
}

fn refused(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ApiError::new(ErrorCode::NotLeader, f.to_string()).with_leader(f.leader_id)
        }
        other => ApiError::new(ErrorCode::LeaderNotAvailable, other.to_string()),
    }
}

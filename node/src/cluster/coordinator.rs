//! The group coordinator: soft session state on the metadata leader.
//!
//! Heartbeats are not Raft writes. The metadata leader keeps a deadline per member in memory
//! and proposes `RemoveMembers` through Raft when one passes. After a leader change the new
//! leader knows no deadlines, so every member gets a fresh session timeout instead of being
//! expelled at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::groups::TopicPartition;
use super::metadata::{MetaCommand, MetaResponse};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;

/// What a heartbeat tells a member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The group's generation.
    pub generation: u64,
    /// Partitions the member owns now (may consume and commit).
    pub assignment: Vec<TopicPartition>,
    /// Owned partitions the member must give up: stop, commit, then call release.
    pub revoking: Vec<TopicPartition>,
}

/// Session deadlines, valid only while this node leads the metadata group.
#[derive(Default)]
pub struct Coordinator {
    // std Mutex: short sections, never held across an await.
    state: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    term: Option<u64>,
    deadlines: HashMap<(String, String), Instant>,
}

impl Coordinator {
    fn touch(&self, group: &str, member: &str, timeout: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.deadlines.insert(
                (group.to_string(), member.to_string()),
                Instant::now() + timeout,
            );
        }
    }
}

impl Node {
    fn meta_term(&self) -> u64 {
        use openraft::async_runtime::WatchReceiver;
        self.meta_raft().metrics().borrow_watched().current_term
    }

    /// Handles a heartbeat on the metadata leader.
    ///
    /// # Errors
    /// `not_leader` elsewhere; `group_not_found`, `unknown_member`.
    pub(crate) fn local_heartbeat(
        &self,
        group: &str,
        member: &str,
    ) -> Result<HeartbeatReply, ApiError> {
        let leader = self.meta_leader();
        if leader != Some(self.id()) {
            return Err(
                ApiError::new(ErrorCode::NotLeader, "not the group coordinator")
                    .with_leader(leader),
            );
        }
        let (reply, timeout) = self.with_metadata(|m| {
            let g = m.groups.get(group).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::GroupNotFound,
                    format!("group '{group}' does not exist"),
                )
            })?;
            let st = g.members.get(member).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownMember,
                    format!(
                        "member '{member}' is not in group '{group}' (left or expired); join again"
                    ),
                )
            })?;
            Ok::<_, ApiError>((
                HeartbeatReply {
                    generation: g.generation,
                    assignment: g.owned_by(member),
                    revoking: g.revoking(member),
                },
                Duration::from_millis(st.session_timeout_ms),
            ))
        })?;
        self.inner.coordinator.touch(group, member, timeout);
        Ok(reply)
    }

    /// Runs until shutdown: expires members whose session passed, while this node leads.
    pub(crate) async fn run_coordinator(self) {
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if self.meta_leader() != Some(self.id()) {
                if let Ok(mut s) = self.inner.coordinator.state.lock() {
                    s.term = None;
                    s.deadlines.clear();
                }
                continue;
            }
            let expired = self.collect_expired();
            for (group, members) in expired {
                tracing::info!(%group, ?members, "session timeout: removing members");
                let cmd = MetaCommand::RemoveMembers {
                    group: group.clone(),
                    members: members.clone(),
                };
                match self.local_meta_write(cmd, Duration::from_secs(5)).await {
                    Ok(MetaResponse::GroupOk) | Ok(MetaResponse::GroupRefused(_)) => {
                        if let Ok(mut s) = self.inner.coordinator.state.lock() {
                            for m in members {
                                s.deadlines.remove(&(group.clone(), m));
                            }
                        }
                    }
                    Ok(other) => tracing::warn!(?other, "unexpected reply to RemoveMembers"),
                    Err(e) => tracing::warn!(error = %e, "could not remove expired members"),
                }
            }
        }
    }

    fn collect_expired(&self) -> Vec<(String, Vec<String>)> {
        let term = self.meta_term();
        let members: Vec<(String, String, u64)> = self.with_metadata(|m| {
            m.groups
                .iter()
                .flat_map(|(g, st)| {
                    st.members
                        .iter()
                        .map(move |(id, ms)| (g.clone(), id.clone(), ms.session_timeout_ms))
                })
                .collect()
        });
        let now = Instant::now();
        let Ok(mut s) = self.inner.coordinator.state.lock() else {
            return vec![];
        };
        if s.term != Some(term) {
            // New leadership: nobody is expelled for heartbeats the old leader received.
            s.term = Some(term);
            s.deadlines.clear();
        }
        let live: std::collections::HashSet<(String, String)> = members
            .iter()
            .map(|(g, m, _)| (g.clone(), m.clone()))
            .collect();
        s.deadlines.retain(|k, _| live.contains(k));
        let mut expired: HashMap<String, Vec<String>> = HashMap::new();
        for (g, m, timeout) in members {
            let deadline = *s
                .deadlines
                .entry((g.clone(), m.clone()))
                .or_insert(now + Duration::from_millis(timeout));
            if deadline <= now {
                expired.entry(g).or_default().push(m);
            }
        }
        expired.into_iter().collect()
    }
}

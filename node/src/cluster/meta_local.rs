//! The metadata group's leader-local operations: apply a command, give a read index. Both
//! answer `not_leader` (with a hint) on any other node. Other nodes reach them through
//! [`crate::forward`]; the coordinator calls them directly on the leader.

use std::time::Duration;

use openraft::errors::{ClientWriteError, RaftError};
use openraft::raft::ReadPolicy;
use raft_store::{codec, ApplyResult, Command};

use super::metadata::{MetaCommand, MetaResponse};
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;

impl Node {
    fn require_meta_leader(&self) -> Result<(), ApiError> {
        let leader = self.meta_leader();
        if leader == Some(self.id()) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::NotLeader, "not the metadata leader").with_leader(leader))
        }
    }

    /// Applies a metadata command if this node leads the metadata group, waiting at most
    /// `timeout` for it to commit.
    ///
    /// # Errors
    /// `not_leader` (not applied); `timeout` or `write_outcome_unknown` once proposed.
    pub(crate) async fn local_meta_write(
        &self,
        cmd: MetaCommand,
        timeout: Duration,
    ) -> Result<MetaResponse, ApiError> {
        self.require_meta_leader()?;
        let bytes = codec::encode(&cmd).map_err(|e| ApiError::internal(e.to_string()))?;
        match tokio::time::timeout(timeout, self.meta_raft().client_write(Command::Blob(bytes)))
            .await
        {
            Err(_) => Err(ApiError::new(
                ErrorCode::Timeout,
                "metadata change did not commit in time",
            )),
            Ok(Ok(resp)) => match resp.data {
                ApplyResult::Blob(b) => {
                    codec::decode(&b).map_err(|e| ApiError::internal(e.to_string()))
                }
                other => Err(ApiError::internal(format!(
                    "unexpected apply result {other:?}"
                ))),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ApiError::new(ErrorCode::NotLeader, f.to_string()).with_leader(f.leader_id))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)))) => {
                Err(ApiError::new(ErrorCode::WriteOutcomeUnknown, f.to_string())
                    .with_leader(f.leader_id))
            }
            Ok(Err(e)) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// The metadata group's linearizable read index, if this node leads it.
    ///
    /// # Errors
    /// `not_leader`; `leader_not_available` when leadership cannot be confirmed.
    pub(crate) async fn local_meta_read_index(&self) -> Result<u64, ApiError> {
        self.require_meta_leader()?;
        self.meta_raft()
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|l| l.index())
            .map_err(|e| ApiError::new(ErrorCode::LeaderNotAvailable, e.to_string()))
    }
}

//! openraft's network: Raft RPCs for one group, sent to `POST /raft/{group}/{rpc}` on a peer.

use std::future::Future;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::OptionalSend;
use raft_store::{codec, GroupId, NodeId, TypeConfig, METADATA_GROUP};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::transport::{SendError, Transport};

/// Creates Raft network clients for one group.
#[derive(Clone)]
pub struct GroupNetwork {
    transport: Transport,
    group: GroupId,
}

impl GroupNetwork {
    /// The network of `group`.
    pub fn new(transport: Transport, group: GroupId) -> Self {
        Self { transport, group }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(
        &mut self,
        target: NodeId,
        _node: &openraft::impls::BasicNode,
    ) -> PeerClient {
        PeerClient {
            transport: self.transport.clone(),
            group: self.group,
            target,
        }
    }
}

/// Sends one group's Raft RPCs to one peer.
pub struct PeerClient {
    transport: Transport,
    group: GroupId,
    target: NodeId,
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        rpc: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let path = format!("/raft/{}/{rpc}", self.group);
        let sent = self.transport.post(self.target, &path, body, timeout).await;
        Self::reply(sent)
    }

    /// A heartbeat (an append without entries), batched with the other groups' heartbeats
    /// to the same peer ([`super::heartbeats`]).
    async fn heartbeat(
        &self,
        req: &AppendEntriesRequest<TypeConfig>,
        timeout: Duration,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = self
            .transport
            .post_heartbeat(self.target, self.group, body, timeout)
            .await;
        Self::reply(sent)
    }

    /// Decodes a peer's reply, or maps the failure onto openraft's errors.
    fn reply<Resp: DeserializeOwned>(
        sent: Result<bytes::Bytes, SendError>,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        match sent {
            Ok(bytes) => {
                codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
            }
            // Unreachable makes openraft back off; a missing group (404) is treated the same,
            // since the peer has not opened this group yet.
            Err(e @ SendError::NotSent { .. }) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e @ SendError::Status { status: 404, .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // The metadata group's empty appends also carry its commits to followers, whose
        // local reads (topic configs, groups) should see them at once: one group's
        // heartbeats are not worth that delay.
        if rpc.entries.is_empty()
            && self.group != METADATA_GROUP
            && self.transport.heartbeat_window().is_some()
        {
            return self.heartbeat(&rpc, option.soft_ttl()).await;
        }
        self.call("append", &rpc, option.soft_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("vote", &rpc, option.soft_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("pre_vote", &rpc, option.soft_ttl()).await
    }

    /// Asks the target to take over leadership ([`super::handover`]). Without this RPC (the
    /// trait's default says unreachable) a transfer leaves the old leader refusing writes
    /// until the others elect after its lease expires.
    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("transfer_leader", &req, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = (vote, snapshot.meta, snapshot.snapshot);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.call::<_, SnapshotResponse<TypeConfig>>("snapshot", &req, option.hard_ttl()) => {
                res.map_err(|e| match e {
                    RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                    other => StreamingError::Network(NetworkError::new(&other)),
                })
            }
        }
    }
}

//! A single-node Raft group on the RocksDB store, for the storage tests: no peers, the node
//! elects itself at once.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{impls::BasicNode, OptionalSend};
use raft_store::reader::ReadLimits;
use raft_store::{
    ApplyResult, Command, LogProgress, LogStore, PartitionReader, PartitionStateMachine, Record,
    RecordBatch, Store, TypeConfig, ValueKind,
};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
#[error("single-node test network")]
struct NoPeers;

struct NoNetwork;
struct NoClient;

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoClient;
    async fn new_client(&mut self, _t: u64, _n: &BasicNode) -> NoClient {
        NoClient
    }
}

impl RaftNetworkV2<TypeConfig> for NoClient {
    type SnapshotData = Vec<u8>;
    async fn append_entries(
        &mut self,
        _r: AppendEntriesRequest<TypeConfig>,
        _o: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }
    async fn vote(
        &mut self,
        _r: VoteRequest<TypeConfig>,
        _o: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }
    async fn full_snapshot(
        &mut self,
        _v: VoteOf<TypeConfig>,
        _s: SnapshotOf<TypeConfig, Vec<u8>>,
        _c: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _o: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(Unreachable::new(&NoPeers)))
    }
}

pub type PRaft = raft_store::Raft<PartitionStateMachine>;

pub struct Group {
    pub raft: PRaft,
    pub progress: watch::Receiver<LogProgress>,
    pub reader: PartitionReader,
}

pub fn config() -> Arc<openraft::Config> {
    Arc::new(
        openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            snapshot_policy: openraft::SnapshotPolicy::Never,
            // As the node: a snapshot is a retention boundary, purge all it covers.
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

pub async fn open_group(store: &Store, group: u64) -> Group {
    let (sm, progress) = PartitionStateMachine::open(store.clone(), group).unwrap();
    let raft = PRaft::new(
        1,
        config(),
        NoNetwork,
        LogStore::new(store.clone(), group),
        sm,
    )
    .await
    .unwrap();
    if !raft.is_initialized().await.unwrap() {
        let mut m = BTreeMap::new();
        m.insert(
            1u64,
            BasicNode {
                addr: "local".into(),
            },
        );
        raft.initialize(m).await.unwrap();
    }
    raft.wait(Some(Duration::from_secs(10)))
        .state(openraft::ServerState::Leader, "leader")
        .await
        .unwrap();
    Group {
        raft,
        progress,
        reader: PartitionReader::new(store.clone(), group),
    }
}

pub fn batch(group: u64, start: u64, n: u64) -> RecordBatch {
    RecordBatch {
        records: (start..start + n)
            .map(|i| Record {
                timestamp_ms: i as i64,
                key: Some(Bytes::from(format!("k{}", i % 7))),
                value: Bytes::from(format!("{{\"g\":{group},\"v\":{i}}}")),
                value_kind: ValueKind::Json,
                headers: vec![],
            })
            .collect(),
        ..Default::default()
    }
}

pub async fn produce(g: &Group, group: u64, start: u64, n: u64) -> u64 {
    let resp = g
        .raft
        .client_write(Command::Produce(batch(group, start, n)))
        .await
        .unwrap();
    match resp.data {
        ApplyResult::Produced {
            base_offset, count, ..
        } => {
            assert_eq!(count as u64, n);
            base_offset
        }
        other => panic!("unexpected {other:?}"),
    }
}

pub fn read_all(g: &Group) -> Vec<(u64, String)> {
    let hw = g.progress.borrow().high_watermark;
    let lim = ReadLimits {
        max_records: usize::MAX,
        max_bytes: usize::MAX,
    };
    let start = g.progress.borrow().log_start_offset;
    g.reader
        .read(start, hw, lim)
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.record.value.to_vec()).unwrap(),
            )
        })
        .collect()
}

pub async fn wait_hw(g: &Group, hw: u64) {
    let mut p = g.progress.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        p.wait_for(|x| x.high_watermark >= hw),
    )
    .await
    .expect("hw reached in time")
    .unwrap();
}

pub async fn close(g: Group) {
    g.raft.shutdown().await.unwrap();
}

pub async fn reopen(dir: &Path) -> Store {
    // The syncer thread may still hold the previous DB for a moment.
    for _ in 0..100 {
        match Store::open(dir) {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Store::open(dir).unwrap()
}

pub fn timed_batch(timestamps: &[i64]) -> RecordBatch {
    RecordBatch {
        records: timestamps
            .iter()
            .map(|ts| Record {
                timestamp_ms: *ts,
                key: None,
                value: Bytes::from(ts.to_string()),
                value_kind: ValueKind::Json,
                headers: vec![],
            })
            .collect(),
        ..Default::default()
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! openraft's storage conformance suite, run against the RocksDB log store with both state
//! machines (partition and blob).

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use raft_store::{BlobState, BlobStateMachine, LogStore, PartitionStateMachine, Store, TypeConfig};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

struct PartitionBuilder;

impl StoreBuilder<TypeConfig, LogStore, PartitionStateMachine, TempDir> for PartitionBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, PartitionStateMachine), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let store = Store::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        // A non-zero group id, so that the key prefix is exercised.
        let (sm, _progress) = PartitionStateMachine::open(store.clone(), 42)
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, LogStore::new(store, 42), sm))
    }
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Counter(u64);

impl BlobState for Counter {
    fn apply(&mut self, _index: u64, _command: &[u8]) -> Vec<u8> {
        self.0 += 1;
        self.0.to_be_bytes().to_vec()
    }
}

struct BlobBuilder;

impl StoreBuilder<TypeConfig, LogStore, BlobStateMachine<Counter>, TempDir> for BlobBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, BlobStateMachine<Counter>), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let store = Store::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let sm = BlobStateMachine::open(store.clone(), 0)
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, LogStore::new(store, 0), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_store_passes_openraft_suite() {
    Suite::test_all(PartitionBuilder).await.expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_passes_openraft_suite() {
    Suite::test_all(BlobBuilder).await.expect("suite");
}

//! # raftka-protocol
//!
//! The one home of Raftka's v1 wire contract, shared by the server (`raftka-node`) and the Rust
//! client (`raftka-client`), so a renamed field fails to compile or fails a test on both sides
//! instead of silently decoding as a default.
//!
//! - [`error`]: the error-code table ([`ErrorCode`]: number, name, HTTP status, retriable,
//!   outcome), [`Outcome`] and the JSON error body every failure has. Between nodes a code
//!   travels by its stable number, never by its position in the enum.
//! - [`topics`]: topic administration (create, list, describe, configs, delete).
//! - [`records`]: produce and fetch, and partition offsets.
//! - [`groups`]: consumer groups (join, heartbeat, release, leave, commit, reset, describe).
//! - [`cluster`]: cluster state, nodes, replica lag, health.
//! - [`security`]: users, bearer tokens and ACLs.
//! - [`partitioner`]: Kafka's murmur2 default partitioner, bit for bit.
//!
//! Readers are lenient where the server may grow (new optional fields default), writers emit
//! exactly the documented shape; `tests/fixtures/` holds one real reply per endpoint, written
//! by the server's handlers, and `tests/fixtures.rs` decodes each back into its type.

pub mod cluster;
pub mod error;
pub mod groups;
pub mod partitioner;
pub mod records;
pub mod security;
pub mod topics;

pub use cluster::*;
pub use error::{ErrorBody, ErrorCode, Outcome};
pub use groups::*;
pub use records::*;
pub use security::*;
pub use topics::*;

/// A node's id in the cluster.
pub type NodeId = u64;

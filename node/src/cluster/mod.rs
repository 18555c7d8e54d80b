//! Cluster-wide state and its management.
//!
//! - [`metadata`]: the metadata group's state machine (topics, placement, consumer groups);
//! - [`meta_local`]: its leader-local write and read index;
//! - [`placement`]: where a new topic's replicas go;
//! - [`topic_config`]: topic configs (retention, record size) and their validation;
//! - [`groups`]: consumer-group state: membership, sticky assignment, fenced commits;
//! - [`coordinator`]: heartbeats and session expiry, on the metadata leader;
//! - [`leader_balance`]: returning leaderships to preferred replicas;
//! - [`reconcile`]: opens and closes this node's partition groups to match the metadata;
//! - [`membership`]: the node registry, partition moves in flight and their planning;
//! - [`controller`]: carries out moves, metadata voter repair and node retirement, on the
//!   metadata leader;
//! - [`join`]: a new node's `--join` handshake.

pub mod controller;
pub mod coordinator;
pub mod groups;
pub mod join;
pub mod leader_balance;
pub mod membership;
pub mod meta_local;
pub mod metadata;
pub mod placement;
pub mod reconcile;
pub mod topic_config;

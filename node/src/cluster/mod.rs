//! Cluster-wide state and its management.
//!
//! - [`metadata`]: the metadata group's state machine (topics, placement, consumer groups);
//! - [`meta_local`]: its leader-local write and read index;
//! - [`placement`]: where a new topic's replicas go;
//! - [`topic_config`]: topic configs (retention, record size) and their validation;
//! - [`groups`]: consumer-group state: membership, sticky assignment, fenced commits;
//! - [`coordinator`]: heartbeats and session expiry, on the metadata leader;
//! - [`leader_balance`]: returning leaderships to preferred replicas;
//! - [`reconcile`]: opens and closes this node's partition groups to match the metadata.

pub mod coordinator;
pub mod groups;
pub mod leader_balance;
pub mod meta_local;
pub mod metadata;
pub mod placement;
pub mod reconcile;
pub mod topic_config;

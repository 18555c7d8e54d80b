//! Cluster-wide state: the metadata group (topics and placement) and replica placement.

pub mod coordinator;
pub mod groups;
pub mod metadata;
pub mod placement;
pub mod reconcile;
pub mod topic_config;

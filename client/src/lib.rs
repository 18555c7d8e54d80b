//! Rust client for Raftka's HTTP/JSON API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftka_client::Error> {
//! use raftka_client::{Client, NewRecord};
//! let client = Client::new(["127.0.0.1:19091", "127.0.0.1:19092"])?;
//! client.create_topic("orders", 3, 3).await?;
//! let offsets = client
//!     .produce("orders", &[NewRecord::json(serde_json::json!({"item": "book"})).with_key("user-1")])
//!     .await?;
//! let fetched = client.fetch("orders", offsets[0].partition, 0, 100, 0).await?;
//! println!("{} records", fetched.records.len());
//! # Ok(()) }
//! ```
//!
//! For many records, use the batching [`Producer`] (see the [`producer`] module). To grow,
//! shrink or heal a live cluster (reassign partitions, rebalance, decommission or replace a
//! node), see the [`membership`] module.
//!
//! Errors say whether a write definitely did not happen ([`Outcome::NotApplied`]) or may have
//! happened ([`Outcome::Unknown`]). [`Client`] never retries the latter on its own; the
//! [`Producer`] does, because it is idempotent by default (its resends carry the same producer
//! id and sequences, and the server answers a resend of a stored batch with its original
//! offsets).
//!
//! With authentication required on the nodes, give the client a bearer token
//! ([`Client::with_token`]); users, tokens and ACLs are managed through the calls of the
//! [`security`] module.
//!
//! The request and reply types are those of the wire contract, [`raftka_protocol`], re-exported
//! from [`types`]; errors carry the protocol's [`ErrorCode`] ([`Error::error_code`]).

pub mod client;
pub mod compression;
pub mod consumer;
pub mod error;
mod leaders;
pub mod membership;
pub mod partitioner;
pub mod producer;
pub mod security;
#[cfg(test)]
mod test_server;
pub mod types;

pub use client::Client;
pub use compression::Compression;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener};
pub use error::{Error, ErrorCode, Outcome};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerStats, RetryPolicy};
pub use types::*;

//! What the producer needs from the network, as a trait so that tests can script the server's
//! answers (including failures that are hard to provoke on a real cluster).

use std::future::Future;
use std::pin::Pin;

use crate::client::{Client, ProduceAck};
use crate::error::Error;

/// A boxed, sendable future (what an object-safe async trait method returns).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The two calls the producer makes.
pub(crate) trait Transport: Send + Sync + 'static {
    /// The number of partitions of `topic`.
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<u32, Error>>;

    /// Sends one produce request body (`{"records":[…]}`, all for `partition`) and returns
    /// one offset per record, and whether they are the original offsets of a batch stored
    /// before.
    fn produce<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        body: bytes::Bytes,
    ) -> BoxFuture<'a, Result<ProduceAck, Error>>;
}

impl Transport for Client {
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<u32, Error>> {
        Box::pin(async move {
            let t = self.describe_topic(topic).await?;
            Ok(t.partitions.len() as u32)
        })
    }

    fn produce<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        body: bytes::Bytes,
    ) -> BoxFuture<'a, Result<ProduceAck, Error>> {
        Box::pin(self.produce_to_leader(topic, partition, body))
    }
}

//! The producer's cache of partition counts per topic, needed to place keyed records with the
//! partitioner. An entry is dropped when the server answers `partition_not_found` or
//! `topic_not_found`, so the next send looks the topic up again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::transport::Transport;
use crate::error::Error;

#[derive(Default)]
pub(crate) struct PartitionCounts {
    // std RwLock: held only to read or insert one entry, never across an `.await`.
    by_topic: RwLock<HashMap<String, (Arc<str>, u32)>>,
}

impl PartitionCounts {
    /// The topic's name (shared) and partition count, from the cache or the server.
    pub async fn get(
        &self,
        transport: &dyn Transport,
        topic: &str,
    ) -> Result<(Arc<str>, u32), Error> {
        if let Some(hit) = self
            .by_topic
            .read()
            .ok()
            .and_then(|m| m.get(topic).cloned())
        {
            return Ok(hit);
        }
        // Two concurrent misses may both ask the server; both answers are the same.
        let n = transport.partition_count(topic).await?;
        if n == 0 {
            return Err(Error::Decode(format!("topic {topic} has no partitions")));
        }
        let entry = (Arc::<str>::from(topic), n);
        if let Ok(mut m) = self.by_topic.write() {
            m.insert(topic.to_string(), entry.clone());
        }
        Ok(entry)
    }

    /// Drops the topic's entry.
    pub fn forget(&self, topic: &str) {
        if let Ok(mut m) = self.by_topic.write() {
            m.remove(topic);
        }
    }
}

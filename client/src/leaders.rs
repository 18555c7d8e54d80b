//! Where each partition's leader is, as a hint: produce requests and fetches go straight to it
//! and skip the forwarding hop a non-leader would add.
//!
//! The cache is only ever a hint. Any node still serves any request, so a stale entry costs a
//! forward (the old leader answers `not_leader` or forwards) and is then dropped; an address
//! that refuses the connection (nothing was sent) is dropped and the request goes to the
//! bootstrap nodes as before (a fetch, being a read, also after a `not_leader` answer or a
//! broken connection). Entries come from the topic description (`leader` per partition) and
//! the cluster state (node addresses), refreshed at most once a second per topic.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The least time between two refreshes of one topic's leaders.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default, Debug)]
struct Entries {
    /// `(topic, partition)` to the leader's base URL.
    leaders: HashMap<(String, u32), String>,
    /// When each topic was last refreshed.
    refreshed: HashMap<String, Instant>,
}

/// The leader hints of one client. Shared by its clones.
#[derive(Default, Debug)]
pub(crate) struct LeaderCache {
    // std RwLock: held only to read or update a map entry, never across an `.await`.
    entries: RwLock<Entries>,
}

impl LeaderCache {
    /// The leader's base URL of a partition, if known.
    pub fn get(&self, topic: &str, partition: u32) -> Option<String> {
        let e = self.entries.read().ok()?;
        e.leaders.get(&(topic.to_string(), partition)).cloned()
    }

    /// Drops a partition's entry (its leader moved, or its address refused the connection).
    pub fn forget(&self, topic: &str, partition: u32) {
        if let Ok(mut e) = self.entries.write() {
            e.leaders.remove(&(topic.to_string(), partition));
        }
    }

    /// Whether `topic` may be refreshed now; if so, marks it refreshed.
    pub fn claim_refresh(&self, topic: &str, now: Instant) -> bool {
        let Ok(mut e) = self.entries.write() else {
            return false;
        };
        match e.refreshed.get(topic) {
            Some(at) if now.duration_since(*at) < REFRESH_EVERY => false,
            _ => {
                e.refreshed.insert(topic.to_string(), now);
                true
            }
        }
    }

    /// Replaces `topic`'s entries: `leaders[p]` is partition `p`'s leader id, `addr_of` maps
    /// a node id to its base URL.
    pub fn update(
        &self,
        topic: &str,
        leaders: &[Option<u64>],
        addr_of: impl Fn(u64) -> Option<String>,
    ) {
        let Ok(mut e) = self.entries.write() else {
            return;
        };
        e.leaders.retain(|(t, _), _| t != topic);
        for (p, leader) in leaders.iter().enumerate() {
            if let Some(url) = leader.and_then(&addr_of) {
                e.leaders.insert((topic.to_string(), p as u32), url);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_replaced_per_topic_and_forgotten() {
        let c = LeaderCache::default();
        let addr = |id: u64| (id != 9).then(|| format!("http://n{id}"));
        c.update("a", &[Some(1), None, Some(9)], addr);
        c.update("b", &[Some(2)], addr);
        assert_eq!(c.get("a", 0).as_deref(), Some("http://n1"));
        assert_eq!(c.get("a", 1), None, "no leader");
        assert_eq!(c.get("a", 2), None, "unknown address");
        c.update("a", &[Some(3)], addr);
        assert_eq!(c.get("a", 0).as_deref(), Some("http://n3"));
        assert_eq!(
            c.get("b", 0).as_deref(),
            Some("http://n2"),
            "other topics kept"
        );
        c.forget("b", 0);
        assert_eq!(c.get("b", 0), None);
    }

    #[test]
    fn refreshes_are_rate_limited_per_topic() {
        let c = LeaderCache::default();
        let t0 = Instant::now();
        assert!(c.claim_refresh("a", t0));
        assert!(!c.claim_refresh("a", t0 + Duration::from_millis(500)));
        assert!(c.claim_refresh("b", t0));
        assert!(c.claim_refresh("a", t0 + REFRESH_EVERY));
    }
}

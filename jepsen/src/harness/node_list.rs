//! The addresses clients send to: the cluster's members, which the membership nemesis changes
//! while the clients run (a node that joins is added, a node that leaves for good is dropped).
//!
//! Clients pick a node by index; an index is taken modulo the current length, so an index drawn
//! before the list shrank still names some member. Every access is a short read or write lock
//! that never spans a request.

use std::net::SocketAddr;
use std::sync::RwLock;

/// The current members' HTTP addresses, in id order.
#[derive(Debug, Default)]
pub struct NodeList {
    // std's RwLock: each critical section is one clone or push, never across an `.await` or I/O.
    addrs: RwLock<Vec<(u64, SocketAddr)>>,
}

impl NodeList {
    /// A list of `(id, address)` pairs.
    pub fn new(nodes: Vec<(u64, SocketAddr)>) -> Self {
        let mut nodes = nodes;
        nodes.sort_unstable();
        NodeList {
            addrs: RwLock::new(nodes),
        }
    }

    /// How many members there are now (at least 1, so that a modulo never divides by 0).
    pub fn len(&self) -> usize {
        self.addrs.read().map_or(1, |a| a.len().max(1))
    }

    /// Always false: an empty list still reports one slot (see [`NodeList::len`]).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The address at `index` modulo the current length.
    ///
    /// # Panics
    /// Never: an empty list (which the harness never makes) yields the unspecified address.
    pub fn get(&self, index: usize) -> SocketAddr {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        self.addrs
            .read()
            .ok()
            .and_then(|a| (!a.is_empty()).then(|| a[index % a.len()].1))
            .unwrap_or(unspecified)
    }

    /// Every `(id, address)`, in id order.
    pub fn all(&self) -> Vec<(u64, SocketAddr)> {
        self.addrs.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Adds node `id` at `addr` (no-op if present).
    pub fn add(&self, id: u64, addr: SocketAddr) {
        if let Ok(mut a) = self.addrs.write() {
            if !a.iter().any(|(i, _)| *i == id) {
                a.push((id, addr));
                a.sort_unstable();
            }
        }
    }

    /// Drops node `id` (no-op if absent). The last member is never dropped.
    pub fn remove(&self, id: u64) {
        if let Ok(mut a) = self.addrs.write() {
            if a.len() > 1 {
                a.retain(|(i, _)| *i != id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn indexes_wrap_and_membership_changes_show() {
        let l = NodeList::new(vec![(2, addr(2)), (1, addr(1))]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get(0), addr(1));
        assert_eq!(l.get(3), addr(2));
        l.add(6, addr(6));
        l.add(6, addr(6));
        assert_eq!(l.len(), 3);
        l.remove(1);
        assert_eq!(l.all(), vec![(2, addr(2)), (6, addr(6))]);
        l.remove(2);
        l.remove(6);
        assert_eq!(l.all(), vec![(6, addr(6))], "the last member stays");
    }
}

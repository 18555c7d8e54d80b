//! Names and addresses of the test network, shared with `jepsen/netns.sh`, which builds it.
//!
//! ```text
//!            namespace rkj-br: bridge rkj0 (no address)
//!          /        |         |                 \
//!   rkj-c (client)  rkj-n1    rkj-n2    ...    rkj-nN       rkj-n(N+1) ... rkj-n(N+S)
//!   198.18.0.2      198.18.0.11  198.18.0.12    198.18.0.(10+N)  spare slots
//! ```
//!
//! Nodes `1..=N` form the cluster (`--peers`). The `S` spare slots are namespaces for nodes that
//! join later (`--join`, the `add-node` fault of the membership nemesis); slot `i` always hosts
//! node id `i`, so a node's id names its namespace and address, and an id that left the cluster
//! is never started again.
//!
//! Every namespace has only its loopback and one veth (`eth0`) on the bridge, with an address in
//! the benchmarking range 198.18.0.0/15 (RFC 2544) and no default route, so no packet can leave
//! the test's own hosts. The harness itself runs inside the client namespace; it reaches a node
//! namespace only through `ip netns exec`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// The node's HTTP port, the same in every namespace.
pub const NODE_PORT: u16 = 9092;

/// Prefix of every namespace (and the bridge) the harness uses.
pub const PREFIX: &str = "rkj";

/// The network of one run: `nodes + spares` node namespaces plus the client namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Number of nodes the cluster starts with, ids `1..=nodes`.
    pub nodes: u64,
    /// Spare slots for nodes that join later, ids `nodes+1..=nodes+spares`.
    pub spares: u64,
}

impl Topology {
    /// The ids of the nodes the cluster starts with, ascending.
    pub fn ids(&self) -> Vec<u64> {
        (1..=self.nodes).collect()
    }

    /// Every slot's id, spares included, ascending.
    pub fn slots(&self) -> Vec<u64> {
        (1..=self.nodes + self.spares).collect()
    }

    /// The spare slots' ids, ascending.
    pub fn spare_ids(&self) -> Vec<u64> {
        (self.nodes + 1..=self.nodes + self.spares).collect()
    }

    /// The namespace of node `id`.
    pub fn node_ns(&self, id: u64) -> String {
        format!("{PREFIX}-n{id}")
    }

    /// The client namespace (where the harness runs).
    pub fn client_ns(&self) -> String {
        format!("{PREFIX}-c")
    }

    /// Node `id`'s address.
    pub fn node_ip(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 10 + id as u8)
    }

    /// The client namespace's address.
    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 2)
    }

    /// Node `id`'s HTTP address.
    pub fn node_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.node_ip(id), NODE_PORT))
    }

    /// The `--peers` value every node gets.
    pub fn peers_arg(&self) -> String {
        self.ids()
            .iter()
            .map(|id| format!("{id}={}", self.node_addr(*id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Smallest majority of the initial nodes.
    pub fn majority(&self) -> usize {
        self.nodes as usize / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_the_benchmarking_range() {
        let t = Topology {
            nodes: 5,
            spares: 3,
        };
        for id in t.slots() {
            let ip = t.node_ip(id);
            assert_eq!(ip.octets()[..2], [198, 18]);
        }
        assert_eq!(t.node_ns(3), "rkj-n3");
        assert_eq!(
            t.peers_arg(),
            "1=198.18.0.11:9092,2=198.18.0.12:9092,3=198.18.0.13:9092,4=198.18.0.14:9092,5=198.18.0.15:9092"
        );
        assert_eq!(t.majority(), 3);
        assert_eq!(t.spare_ids(), vec![6, 7, 8]);
        assert_eq!(t.node_ip(8).octets(), [198, 18, 0, 18]);
    }
}

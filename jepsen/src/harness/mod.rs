//! The fault-injection harness: real `raftka-node` processes in network namespaces, a nemesis
//! on a seeded schedule, Jepsen-style clients recording a history, and the [`checker`] at the
//! end.
//!
//! `jepsen/run` builds the binaries and the network (`jepsen/netns.sh`), then runs the
//! `raftka-jepsen` binary inside the client namespace. Modules:
//! - [`topology`]: namespace names and addresses (198.18.0.0/15, no route out);
//! - [`cluster`]: the namespace-aware node launcher (`ip netns exec rkj-n<i> raftka-node …`);
//! - [`firewall`]: nftables grudges and packet loss, `tc tbf` bandwidth limits;
//! - [`nemesis`]: fault kinds, the seeded schedule, apply and heal;
//! - [`http`]: a one-shot HTTP client that knows whether a request left;
//! - [`node_list`]: the members' addresses clients send to, changed by the membership nemesis;
//! - [`client`]: the queue client, mapping every reply to `ok`, `fail` or `info`;
//! - [`group`]: the consumer-group client of the `group` and `offsets` workloads;
//! - [`workload`]: concurrent clients and the final phase;
//! - [`recorder`]: the JSON-lines history;
//! - [`cell`]: one workload × nemesis run from setup to verdict;
//! - [`profile`]: the `ci`, `full` and canary cells;
//! - [`table`]: the verdict table;
//! - [`rng`]: the seeded generator behind every choice.
//!
//! [`checker`]: crate::checker

pub mod cell;
pub mod client;
pub mod cluster;
pub mod firewall;
pub mod group;
pub mod http;
pub mod nemesis;
pub mod node_list;
pub mod profile;
pub mod recorder;
pub mod rng;
pub mod table;
pub mod topology;
pub mod workload;

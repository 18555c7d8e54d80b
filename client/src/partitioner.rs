//! Kafka's default partitioner, `toPositive(murmur2(key)) % partitions`: the protocol's
//! partitioner ([`raftka_protocol::partitioner`]), the very one the server calls, re-exported
//! here so a key lands in the same partition whether the [`Producer`](crate::Producer) or the
//! server picks it.

pub use raftka_protocol::partitioner::*;

//! The openraft type configuration and the application data that travels through Raft.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Identifies a node in the cluster.
pub type NodeId = u64;

/// Identifies a Raft group on a node. Group 0 is the metadata group; every partition has its own.
pub type GroupId = u64;

/// The group id of the metadata group.
pub const METADATA_GROUP: GroupId = 0;

openraft::declare_raft_types!(
    /// Raftka's openraft type configuration, shared by the metadata and the partition groups.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
);

/// A Raft handle over any state machine of Raftka.
pub type Raft<SM> = openraft::Raft<TypeConfig, SM>;

/// How a record's value was sent, so that a fetch can hand it back the same way.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueKind {
    /// The value is UTF-8 JSON text.
    #[default]
    Json,
    /// The value is opaque bytes (sent base64-encoded over HTTP).
    Binary,
}

/// One record, as stored inside a produce batch.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// CreateTime given by the producer, or the leader's append time.
    pub timestamp_ms: i64,
    /// Optional key; records with equal keys go to the same partition.
    pub key: Option<Bytes>,
    /// The value's bytes.
    pub value: Bytes,
    /// How [`Record::value`] should be presented.
    pub value_kind: ValueKind,
    /// Headers, in the order given.
    pub headers: Vec<(String, Bytes)>,
}

impl Record {
    /// Approximate size in bytes, used for fetch `max_bytes` and limits.
    pub fn approx_size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 16
    }
}

/// An idempotent producer's identity and the sequence number of a batch's first record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProducerSequence {
    /// The producer's id (chosen by the client, e.g. a UUID).
    pub producer_id: String,
    /// Sequence of the batch's first record; the batch's records take consecutive sequences.
    pub sequence: u64,
}

/// The records of one produce request for one partition. They take consecutive offsets.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordBatch {
    /// The records, in the order they take offsets.
    pub records: Vec<Record>,
    /// Set for idempotent producers: a retried batch gets its original offsets back.
    pub producer: Option<ProducerSequence>,
    /// Set when the request carried an `Idempotency-Key`: the same key gets the same offsets.
    pub idempotency_key: Option<String>,
}

/// Application data carried by a Raft log entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Append records to a partition log.
    Produce(RecordBatch),
    /// An opaque command for a [`crate::BlobStateMachine`] (the metadata group).
    Blob(Vec<u8>),
    /// Retention: move the partition's log start up to `before_offset` (rounded down to the
    /// batch that holds it, and never past the high watermark). Every replica applies it at the
    /// same log position, so all agree on `log_start_offset`; each then deletes the data below
    /// on its own.
    Truncate {
        /// The first offset to keep.
        before_offset: u64,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Produce(b) => write!(f, "Produce({} records)", b.records.len()),
            Command::Blob(b) => write!(f, "Blob({} bytes)", b.len()),
            Command::Truncate { before_offset } => write!(f, "Truncate(before {before_offset})"),
        }
    }
}

/// What applying a [`Command`] produced.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// Nothing to report (blank and membership entries).
    Empty,
    /// The batch took offsets `[base_offset, base_offset + count)`.
    Produced {
        /// Offset of the batch's first record.
        base_offset: u64,
        /// Number of records.
        count: u32,
        /// The batch had been applied before (a retry): these are its original offsets and
        /// nothing was appended now.
        duplicate: bool,
    },
    /// An idempotent producer's sequence does not follow its last batch; nothing was appended.
    SequenceError {
        /// The sequence the partition expects next.
        expected: u64,
        /// The sequence received.
        got: u64,
    },
    /// The response of a blob command, opaque to the store.
    Blob(Vec<u8>),
    /// The command was not valid for this group's state machine; nothing was applied.
    Rejected(String),
    /// A [`Command::Truncate`] was applied; the log now starts at this offset.
    Truncated {
        /// The partition's log start offset after the command.
        log_start_offset: u64,
    },
}

//! The error-code table and the one JSON error shape every client sees.
//!
//! `{"error_code":40401,"error":"topic_not_found","message":"…","retriable":false,"outcome":"not_applied"}`
//!
//! `outcome` tells a writer whether its write definitely did not happen (`not_applied`, safe to
//! retry) or may have happened (`unknown`). Every error of a write endpoint carries it; reads
//! omit it. Clients branch on `error_code` (as an [`ErrorCode`]), never on `message`. The table
//! in `docs/api.md#errors` mirrors this one and a unit test pins every row.
//!
//! Invariant: a code's number and name never change and are never reused. Between nodes (and
//! across versions during a rolling upgrade) a code travels as its number: [`ErrorCode`]'s
//! serde form is the number, so reordering or inserting variants changes nothing on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::records::ProducedRecord;

/// Whether a failed write may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Definitely not written: retrying cannot create a duplicate.
    NotApplied,
    /// Maybe written: the request may have been committed.
    Unknown,
}

/// Declares an error-code enum with its table. Used once for [`ErrorCode`]; the tests use it
/// again to declare the same codes in another order and show the wire form does not move.
macro_rules! error_codes {
    ($(#[$enum_doc:meta])* $enum:ident {
        $( $(#[$doc:meta])* $variant:ident = ($num:expr, $name:expr, $status:expr, $retriable:expr, $outcome:expr), )*
    }) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum { $( $(#[$doc])* $variant, )* }

        impl $enum {
            /// All codes, in table order, for documentation and tests.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)*];
            /// The stable numeric code.
            pub fn number(self) -> u32 { match self { $($enum::$variant => $num,)* } }
            /// The code with this number, if this version knows it.
            pub fn from_number(n: u32) -> Option<Self> {
                match n { $($num => Some($enum::$variant),)* _ => None }
            }
            /// The stable snake_case name.
            pub fn name(self) -> &'static str { match self { $($enum::$variant => $name,)* } }
            /// The code with this name, if this version knows it.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some($enum::$variant),)* _ => None }
            }
            /// The HTTP status.
            pub fn http_status(self) -> u16 { match self { $($enum::$variant => $status,)* } }
            /// Whether retrying the same request may succeed.
            pub fn retriable(self) -> bool { match self { $($enum::$variant => $retriable,)* } }
            /// The outcome of a write that failed with this code, unless the request says
            /// otherwise (a produce whose other partitions were written is `unknown`).
            pub fn write_outcome(self) -> Outcome { match self { $($enum::$variant => $outcome,)* } }
        }

        impl Serialize for $enum {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u32(self.number())
            }
        }

        /// Decodes by number. A number this version does not know (from a newer node) becomes
        /// `Internal`, whose outcome is `unknown`: an unknown code never makes a write look
        /// safely not applied.
        impl<'de> Deserialize<'de> for $enum {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = u32::deserialize(d)?;
                Ok(Self::from_number(n).unwrap_or($enum::Internal))
            }
        }
    };
}

use Outcome::{NotApplied, Unknown};
error_codes! {
    /// Every error Raftka returns. The numbers follow the Confluent REST Proxy where it has one.
    ErrorCode {
    /// The request is malformed (bad JSON, missing field, bad query parameter, bad path).
    BadRequest = (40001, "bad_request", 400, false, NotApplied),
    /// An offset parameter is negative or not a number.
    InvalidOffset = (40002, "invalid_offset", 400, false, NotApplied),
    /// A topic name or topic setting is invalid.
    InvalidTopic = (40003, "invalid_topic", 400, false, NotApplied),
    /// The request lacks the cluster secret (internal endpoints only).
    Unauthorized = (40101, "unauthorized", 401, false, NotApplied),
    /// Authentication is required and the request has no valid bearer token.
    Unauthenticated = (40102, "unauthenticated", 401, false, NotApplied),
    /// The caller's principal lacks the ACL for this operation; nothing changed.
    Forbidden = (40301, "forbidden", 403, false, NotApplied),
    /// The topic does not exist.
    TopicNotFound = (40401, "topic_not_found", 404, false, NotApplied),
    /// The partition does not exist in the topic.
    PartitionNotFound = (40402, "partition_not_found", 404, false, NotApplied),
    /// The consumer group member is unknown (never joined, left, or its session expired).
    UnknownMember = (40403, "unknown_member", 404, false, NotApplied),
    /// No such route.
    RouteNotFound = (40404, "not_found", 404, false, NotApplied),
    /// The consumer group does not exist.
    GroupNotFound = (40405, "group_not_found", 404, false, NotApplied),
    /// The node id is not registered in the cluster.
    NodeNotFound = (40406, "node_not_found", 404, false, NotApplied),
    /// No such user (or token of the user).
    UserNotFound = (40407, "user_not_found", 404, false, NotApplied),
    /// No ACL equal to the one to delete.
    AclNotFound = (40408, "acl_not_found", 404, false, NotApplied),
    /// The method is not allowed on this route.
    MethodNotAllowed = (40501, "method_not_allowed", 405, false, NotApplied),
    /// The topic already exists.
    TopicExists = (40901, "topic_exists", 409, false, NotApplied),
    /// The request carries an old group generation (a zombie member); nothing changed.
    Fenced = (40902, "fenced", 409, false, NotApplied),
    /// The member does not own the partition it commits for.
    PartitionNotAssigned = (40903, "partition_not_assigned", 409, false, NotApplied),
    /// The group has members; the operation needs an empty group.
    GroupNotEmpty = (40904, "group_not_empty", 409, false, NotApplied),
    /// A partition is already being moved; wait for that move to finish.
    ReassignmentInProgress = (40905, "reassignment_in_progress", 409, false, NotApplied),
    /// The node's state does not allow the operation (e.g. `--dead` for a node that still
    /// answers, or placing replicas on a draining or removed node).
    InvalidNodeState = (40906, "invalid_node_state", 409, false, NotApplied),
    /// A user of that name exists.
    UserExists = (40907, "user_exists", 409, false, NotApplied),
    /// The request (body, URI or headers) is larger than the node accepts.
    PayloadTooLarge = (41301, "payload_too_large", 413, false, NotApplied),
    /// The requested offset is outside `[log_start_offset, high_watermark]`.
    OffsetOutOfRange = (41601, "offset_out_of_range", 416, false, NotApplied),
    /// The Content-Type is not JSON.
    UnsupportedMediaType = (41501, "unsupported_media_type", 415, false, NotApplied),
    /// A record is invalid (no value, both value forms, bad base64, key too long, too large).
    InvalidRecord = (42201, "invalid_record", 422, false, NotApplied),
    /// The produce request holds no records.
    EmptyBatch = (42202, "empty_batch", 422, false, NotApplied),
    /// Not enough live nodes for the requested replication factor.
    InvalidReplicationFactor = (42203, "invalid_replication_factor", 422, false, NotApplied),
    /// A committed offset beyond the partition's end (or below its start).
    InvalidCommitOffset = (42204, "invalid_commit_offset", 422, false, NotApplied),
    /// An idempotent producer's sequence skips or repeats out of order; nothing was written.
    OutOfOrderSequence = (42205, "out_of_order_sequence", 422, false, NotApplied),
    /// A replica list that cannot be applied: empty, repeated nodes, or fewer replicas than a
    /// majority of the current ones (the partition would lose data it has acknowledged).
    InvalidReplicas = (42206, "invalid_replicas", 422, false, NotApplied),
    /// The partition (or metadata) has no leader right now, e.g. during an election.
    LeaderNotAvailable = (50301, "leader_not_available", 503, true, NotApplied),
    /// The contacted node is not the leader; carries a leader hint.
    NotLeader = (50302, "not_leader", 503, true, NotApplied),
    /// The node is starting or shutting down.
    NotReady = (50303, "not_ready", 503, true, NotApplied),
    /// The write was proposed but its fate is unknown (leader changed, replication stalled).
    WriteOutcomeUnknown = (50304, "write_outcome_unknown", 503, true, Unknown),
    /// The request timed out after it may have been proposed.
    Timeout = (50401, "timeout", 504, true, Unknown),
    /// An unexpected server error; the write may or may not have happened.
    Internal = (50001, "internal", 500, true, Unknown),
    /// The local storage failed (poisoned after an fsync error).
    StorageFailed = (50002, "storage_failed", 500, true, Unknown),
    }
}

/// The JSON body of every error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The stable number ([`ErrorCode::number`]); kept raw so a client can report a code newer
    /// than itself.
    pub error_code: u32,
    /// The stable name ([`ErrorCode::name`]).
    pub error: String,
    /// Human-readable detail; never branch on it.
    pub message: String,
    /// Whether retrying the same request may succeed.
    pub retriable: bool,
    /// On writes: whether the write definitely did not happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The leader the client should talk to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_hint: Option<u64>,
    /// With `offset_out_of_range`: the partition's first readable offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<u64>,
    /// With `offset_out_of_range`: the partition's high watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
    /// A produce that failed on some partitions: every record's placement, offset or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Vec<ProducedRecord>>,
    /// The id of the request (also in the `x-request-id` header and the server's log lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// A body with the code's number, name and retriability.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error_code: code.number(),
            error: code.name().to_string(),
            message: message.into(),
            retriable: code.retriable(),
            outcome: None,
            leader_hint: None,
            log_start_offset: None,
            high_watermark: None,
            offsets: None,
            request_id: None,
        }
    }

    /// The code, when this version knows its number.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_number(self.error_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn error_table_rows_are_pinned() {
        let rows: Vec<(u32, &str, u16, bool, Outcome)> = ErrorCode::ALL
            .iter()
            .map(|c| {
                (
                    c.number(),
                    c.name(),
                    c.http_status(),
                    c.retriable(),
                    c.write_outcome(),
                )
            })
            .collect();
        let expected = vec![
            (40001, "bad_request", 400, false, NotApplied),
            (40002, "invalid_offset", 400, false, NotApplied),
            (40003, "invalid_topic", 400, false, NotApplied),
            (40101, "unauthorized", 401, false, NotApplied),
            (40102, "unauthenticated", 401, false, NotApplied),
            (40301, "forbidden", 403, false, NotApplied),
            (40401, "topic_not_found", 404, false, NotApplied),
            (40402, "partition_not_found", 404, false, NotApplied),
            (40403, "unknown_member", 404, false, NotApplied),
            (40404, "not_found", 404, false, NotApplied),
            (40405, "group_not_found", 404, false, NotApplied),
            (40406, "node_not_found", 404, false, NotApplied),
            (40407, "user_not_found", 404, false, NotApplied),
            (40408, "acl_not_found", 404, false, NotApplied),
            (40501, "method_not_allowed", 405, false, NotApplied),
            (40901, "topic_exists", 409, false, NotApplied),
            (40902, "fenced", 409, false, NotApplied),
            (40903, "partition_not_assigned", 409, false, NotApplied),
            (40904, "group_not_empty", 409, false, NotApplied),
            (40905, "reassignment_in_progress", 409, false, NotApplied),
            (40906, "invalid_node_state", 409, false, NotApplied),
            (40907, "user_exists", 409, false, NotApplied),
            (41301, "payload_too_large", 413, false, NotApplied),
            (41601, "offset_out_of_range", 416, false, NotApplied),
            (41501, "unsupported_media_type", 415, false, NotApplied),
            (42201, "invalid_record", 422, false, NotApplied),
            (42202, "empty_batch", 422, false, NotApplied),
            (42203, "invalid_replication_factor", 422, false, NotApplied),
            (42204, "invalid_commit_offset", 422, false, NotApplied),
            (42205, "out_of_order_sequence", 422, false, NotApplied),
            (42206, "invalid_replicas", 422, false, NotApplied),
            (50301, "leader_not_available", 503, true, NotApplied),
            (50302, "not_leader", 503, true, NotApplied),
            (50303, "not_ready", 503, true, NotApplied),
            (50304, "write_outcome_unknown", 503, true, Unknown),
            (50401, "timeout", 504, true, Unknown),
            (50001, "internal", 500, true, Unknown),
            (50002, "storage_failed", 500, true, Unknown),
        ];
        assert_eq!(rows, expected);
    }

    #[test]
    fn numbers_and_names_are_unique_and_round_trip() {
        let nums: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.number()).collect();
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(nums.len(), ErrorCode::ALL.len());
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_number(c.number()), Some(*c));
            assert_eq!(ErrorCode::from_name(c.name()), Some(*c));
            // The HTTP status is the number's first three digits.
            assert_eq!(u32::from(c.http_status()), c.number() / 100, "{c:?}");
        }
    }

    #[allow(dead_code)]
    mod reordered {
        // The same codes in reverse order and with a variant in between: an older or newer
        // build of the table. Only the numbers must agree.
        use super::super::Outcome::{self, NotApplied, Unknown};
        use serde::{Deserialize, Deserializer, Serialize, Serializer};
        error_codes! {
            /// A reordered copy of the table.
            Reordered {
            /// Storage.
            StorageFailed = (50002, "storage_failed", 500, true, Unknown),
            /// Internal.
            Internal = (50001, "internal", 500, true, Unknown),
            /// A code only the other build knows.
            FromTheFuture = (49999, "from_the_future", 400, false, NotApplied),
            /// Timeout.
            Timeout = (50401, "timeout", 504, true, Unknown),
            /// Not leader.
            NotLeader = (50302, "not_leader", 503, true, NotApplied),
            /// Fenced.
            Fenced = (40902, "fenced", 409, false, NotApplied),
            /// Bad request.
            BadRequest = (40001, "bad_request", 400, false, NotApplied),
            }
        }
    }

    #[test]
    fn codes_cross_between_nodes_by_number_whatever_the_enum_order() {
        use reordered::Reordered;
        for code in ErrorCode::ALL {
            // postcard, as between nodes: the bytes are those of the number.
            let bytes = postcard::to_stdvec(code).expect("encode");
            assert_eq!(
                bytes,
                postcard::to_stdvec(&code.number()).expect("encode number")
            );
            assert_eq!(
                postcard::from_bytes::<ErrorCode>(&bytes).expect("decode"),
                *code
            );
            // A build with the table in another order reads the same code.
            if let Some(other) = Reordered::from_number(code.number()) {
                let decoded: Reordered = postcard::from_bytes(&bytes).expect("decode reordered");
                assert_eq!(decoded, other);
                assert_eq!(decoded.name(), code.name());
                let back: ErrorCode =
                    postcard::from_bytes(&postcard::to_stdvec(&decoded).expect("encode"))
                        .expect("decode back");
                assert_eq!(back, *code);
            }
        }
        // A code this build does not know decodes as `internal` (outcome unknown), never as
        // a code that would call a write safely not applied.
        let future = postcard::to_stdvec(&Reordered::FromTheFuture).expect("encode");
        let decoded: ErrorCode = postcard::from_bytes(&future).expect("decode");
        assert_eq!(decoded, ErrorCode::Internal);
        assert_eq!(decoded.write_outcome(), Outcome::Unknown);
    }

    #[test]
    fn body_has_the_stable_shape() {
        let mut b = ErrorBody::new(ErrorCode::TopicNotFound, "topic 'orders' does not exist");
        b.outcome = Some(Outcome::NotApplied);
        let v = serde_json::to_value(&b).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"error_code": 40401, "error": "topic_not_found",
                "message": "topic 'orders' does not exist", "retriable": false,
                "outcome": "not_applied"})
        );
        let read =
            serde_json::to_value(ErrorBody::new(ErrorCode::TopicNotFound, "x")).expect("json");
        assert!(read.get("outcome").is_none());
        assert_eq!(b.code(), Some(ErrorCode::TopicNotFound));
    }
}

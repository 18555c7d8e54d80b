//! The error-code table and the one JSON error shape every client sees.
//!
//! `{"error_code":40401,"error":"topic_not_found","message":"…","retriable":false,"outcome":"not_applied"}`
//!
//! `outcome` tells a writer whether its write definitely did not happen (`not_applied`, safe to
//! retry) or may have happened (`unknown`). It is absent on reads. Clients branch on
//! `error_code` or `error`, never on `message`. The table in `docs/api.md#errors` mirrors this and a
//! unit test pins every row.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use raft_store::NodeId;

/// Whether a failed write may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Definitely not written: retrying cannot create a duplicate.
    NotApplied,
    /// Maybe written: the request may have been committed.
    Unknown,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($num:expr, $name:expr, $status:expr, $retriable:expr, $outcome:expr), )*) => {
        /// Every error Raftka returns. The numbers follow the Confluent REST Proxy where it has one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode { $( $(#[$doc])* $variant, )* }

        impl ErrorCode {
            /// All codes, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];
            /// The stable numeric code.
            pub fn number(self) -> u32 { match self { $(ErrorCode::$variant => $num,)* } }
            /// The stable snake_case name.
            pub fn name(self) -> &'static str { match self { $(ErrorCode::$variant => $name,)* } }
            /// The HTTP status.
            pub fn status(self) -> StatusCode { match self { $(ErrorCode::$variant => $status,)* } }
            /// Whether retrying the same request may succeed.
            pub fn retriable(self) -> bool { match self { $(ErrorCode::$variant => $retriable,)* } }
            /// The write outcome this code implies; `None` means "depends on the request"
            /// (reads carry no outcome).
            pub fn write_outcome(self) -> Outcome { match self { $(ErrorCode::$variant => $outcome,)* } }
        }
    };
}

use Outcome::{NotApplied, Unknown};
error_codes! {
    /// The request is malformed (bad JSON, missing field, bad query parameter).
    BadRequest = (40001, "bad_request", StatusCode::BAD_REQUEST, false, NotApplied),
    /// An offset parameter is negative or not a number.
    InvalidOffset = (40002, "invalid_offset", StatusCode::BAD_REQUEST, false, NotApplied),
    /// A topic name or topic setting is invalid.
    InvalidTopic = (40003, "invalid_topic", StatusCode::BAD_REQUEST, false, NotApplied),
    /// The request lacks the cluster secret (internal endpoints only).
    Unauthorized = (40101, "unauthorized", StatusCode::UNAUTHORIZED, false, NotApplied),
    /// The topic does not exist.
    TopicNotFound = (40401, "topic_not_found", StatusCode::NOT_FOUND, false, NotApplied),
    /// The partition does not exist in the topic.
    PartitionNotFound = (40402, "partition_not_found", StatusCode::NOT_FOUND, false, NotApplied),
    /// The consumer group member is unknown (never joined, left, or its session expired).
    UnknownMember = (40403, "unknown_member", StatusCode::NOT_FOUND, false, NotApplied),
    /// No such route.
    RouteNotFound = (40404, "not_found", StatusCode::NOT_FOUND, false, NotApplied),
    /// The consumer group does not exist.
    GroupNotFound = (40405, "group_not_found", StatusCode::NOT_FOUND, false, NotApplied),
    /// The method is not allowed on this route.
    MethodNotAllowed = (40501, "method_not_allowed", StatusCode::METHOD_NOT_ALLOWED, false, NotApplied),
    /// The topic already exists.
    TopicExists = (40901, "topic_exists", StatusCode::CONFLICT, false, NotApplied),
    /// The request carries an old group generation (a zombie member); nothing changed.
    Fenced = (40902, "fenced", StatusCode::CONFLICT, false, NotApplied),
    /// The member does not own the partition it commits for.
    PartitionNotAssigned = (40903, "partition_not_assigned", StatusCode::CONFLICT, false, NotApplied),
    /// The group has members; the operation needs an empty group.
    GroupNotEmpty = (40904, "group_not_empty", StatusCode::CONFLICT, false, NotApplied),
    /// The request body is larger than the node accepts.
    PayloadTooLarge = (41301, "payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, false, NotApplied),
    /// The requested offset is outside `[log_start_offset, high_watermark]`.
    OffsetOutOfRange = (41601, "offset_out_of_range", StatusCode::RANGE_NOT_SATISFIABLE, false, NotApplied),
    /// The Content-Type is not JSON.
    UnsupportedMediaType = (41501, "unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE, false, NotApplied),
    /// A record is invalid (no value, both value forms, bad base64, key too long, too large).
    InvalidRecord = (42201, "invalid_record", StatusCode::UNPROCESSABLE_ENTITY, false, NotApplied),
    /// The produce request holds no records.
    EmptyBatch = (42202, "empty_batch", StatusCode::UNPROCESSABLE_ENTITY, false, NotApplied),
    /// Not enough live nodes for the requested replication factor.
    InvalidReplicationFactor = (42203, "invalid_replication_factor", StatusCode::UNPROCESSABLE_ENTITY, false, NotApplied),
    /// A committed offset beyond the partition's end (or below its start).
    InvalidCommitOffset = (42204, "invalid_commit_offset", StatusCode::UNPROCESSABLE_ENTITY, false, NotApplied),
    /// An idempotent producer's sequence skips or repeats out of order; nothing was written.
    OutOfOrderSequence = (42205, "out_of_order_sequence", StatusCode::UNPROCESSABLE_ENTITY, false, NotApplied),
    /// The partition (or metadata) has no leader right now, e.g. during an election.
    LeaderNotAvailable = (50301, "leader_not_available", StatusCode::SERVICE_UNAVAILABLE, true, NotApplied),
    /// The contacted node is not the leader; carries a leader hint.
    NotLeader = (50302, "not_leader", StatusCode::SERVICE_UNAVAILABLE, true, NotApplied),
    /// The node is starting or shutting down.
    NotReady = (50303, "not_ready", StatusCode::SERVICE_UNAVAILABLE, true, NotApplied),
    /// The write was proposed but its fate is unknown (leader changed, replication stalled).
    WriteOutcomeUnknown = (50304, "write_outcome_unknown", StatusCode::SERVICE_UNAVAILABLE, true, Unknown),
    /// The request timed out after it may have been proposed.
    Timeout = (50401, "timeout", StatusCode::GATEWAY_TIMEOUT, true, Unknown),
    /// An unexpected server error; the write may or may not have happened.
    Internal = (50001, "internal", StatusCode::INTERNAL_SERVER_ERROR, true, Unknown),
    /// The local storage failed (poisoned after an fsync error).
    StorageFailed = (50002, "storage_failed", StatusCode::INTERNAL_SERVER_ERROR, true, Unknown),
}

/// An error as returned to clients (and passed between nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// The write outcome, when the request was a write. Overrides the code's default.
    pub outcome: Option<Outcome>,
    /// The leader the client should talk to, when known.
    pub leader_hint: Option<NodeId>,
    /// For `offset_out_of_range`: the partition's bounds.
    pub bounds: Option<(u64, u64)>,
}

impl ApiError {
    /// A new error with the code's defaults.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            outcome: None,
            leader_hint: None,
            bounds: None,
        }
    }

    /// Marks this error as the result of a write, so `outcome` is reported.
    pub fn for_write(mut self) -> Self {
        if self.outcome.is_none() {
            self.outcome = Some(self.code.write_outcome());
        }
        self
    }

    /// Sets the leader hint.
    pub fn with_leader(mut self, leader: Option<NodeId>) -> Self {
        self.leader_hint = leader;
        self
    }

    /// Whether a write that failed with this error definitely did not happen.
    pub fn is_not_applied(&self) -> bool {
        self.outcome.unwrap_or(self.code.write_outcome()) == Outcome::NotApplied
    }

    /// Shorthand constructors.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, msg)
    }
    /// Topic not found.
    pub fn topic_not_found(topic: &str) -> Self {
        Self::new(
            ErrorCode::TopicNotFound,
            format!("topic '{topic}' does not exist"),
        )
    }
    /// Internal error (unknown outcome).
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, msg)
    }

    /// The JSON body clients see.
    pub fn body(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "error_code": self.code.number(),
            "error": self.code.name(),
            "message": self.message,
            "retriable": self.code.retriable(),
        });
        if let Some(o) = self.outcome {
            v["outcome"] = serde_json::json!(o);
        }
        if let Some(l) = self.leader_hint {
            v["leader_hint"] = serde_json::json!(l);
        }
        if let Some((start, hw)) = self.bounds {
            v["log_start_offset"] = serde_json::json!(start);
            v["high_watermark"] = serde_json::json!(hw);
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            // 5xx are logged once, inside the request span; 4xx are the client's business.
            tracing::warn!(code = self.code.name(), message = %self.message, "request failed");
        }
        (status, axum::Json(self.body())).into_response()
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
                    c.status().as_u16(),
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
            (40401, "topic_not_found", 404, false, NotApplied),
            (40402, "partition_not_found", 404, false, NotApplied),
            (40403, "unknown_member", 404, false, NotApplied),
            (40404, "not_found", 404, false, NotApplied),
            (40405, "group_not_found", 404, false, NotApplied),
            (40501, "method_not_allowed", 405, false, NotApplied),
            (40901, "topic_exists", 409, false, NotApplied),
            (40902, "fenced", 409, false, NotApplied),
            (40903, "partition_not_assigned", 409, false, NotApplied),
            (40904, "group_not_empty", 409, false, NotApplied),
            (41301, "payload_too_large", 413, false, NotApplied),
            (41601, "offset_out_of_range", 416, false, NotApplied),
            (41501, "unsupported_media_type", 415, false, NotApplied),
            (42201, "invalid_record", 422, false, NotApplied),
            (42202, "empty_batch", 422, false, NotApplied),
            (42203, "invalid_replication_factor", 422, false, NotApplied),
            (42204, "invalid_commit_offset", 422, false, NotApplied),
            (42205, "out_of_order_sequence", 422, false, NotApplied),
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
    fn numbers_and_names_are_unique() {
        let nums: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.number()).collect();
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(nums.len(), ErrorCode::ALL.len());
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn body_has_the_stable_shape() {
        let e = ApiError::topic_not_found("orders").for_write();
        let b = e.body();
        assert_eq!(b["error_code"], 40401);
        assert_eq!(b["error"], "topic_not_found");
        assert_eq!(b["retriable"], false);
        assert_eq!(b["outcome"], "not_applied");
        assert!(b["message"].as_str().unwrap_or_default().contains("orders"));
        let read = ApiError::topic_not_found("orders").body();
        assert!(read.get("outcome").is_none());
    }
}

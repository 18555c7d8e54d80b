//! [`ApiError`]: an error as a handler returns it and as it travels between nodes, and its
//! HTTP response in the one JSON error shape.
//!
//! The table itself ([`ErrorCode`]: number, name, HTTP status, retriable, outcome) and the body
//! shape ([`ErrorBody`]) live in `raftka-protocol`, shared with the client. Between nodes an
//! `ApiError` is postcard-encoded and its code travels by number (see
//! `raftka_protocol::error`).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use raft_store::NodeId;
pub use raftka_protocol::error::{ErrorBody, ErrorCode, Outcome};
use raftka_protocol::ProducedRecord;

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

    /// Marks this error as the result of a write, so `outcome` is reported: the code's
    /// [`ErrorCode::write_outcome`] unless an outcome was already set (a produce whose other
    /// partitions were written sets `unknown` itself).
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

    /// The HTTP status of this error's code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A malformed request.
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
    pub fn body(&self) -> ErrorBody {
        let mut b = ErrorBody::new(self.code, self.message.clone());
        b.outcome = self.outcome;
        b.leader_hint = self.leader_hint;
        if let Some((start, hw)) = self.bounds {
            b.log_start_offset = Some(start);
            b.high_watermark = Some(hw);
        }
        b
    }

    /// The response for a produce that failed on some partitions: the error body plus every
    /// record's placement.
    pub fn into_response_with_offsets(self, offsets: Vec<ProducedRecord>) -> Response {
        let mut body = self.clone().for_write().body();
        body.offsets = Some(offsets);
        body.request_id = current_request_id().map(|id| id.to_string());
        self.log();
        (self.status(), axum::Json(body)).into_response()
    }

    fn log(&self) {
        if self.status().is_server_error() {
            // 5xx are logged once, inside the request span; 4xx are the client's business.
            tracing::warn!(code = self.code.name(), message = %self.message, "request failed");
        }
    }
}

/// What the answer to a request needs to know about it, whichever layer answers (a handler, an
/// extractor's rejection, the router's fallback). Set by [`crate::api::request_span`].
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Any method but GET and HEAD: its errors carry `outcome`.
    pub is_write: bool,
    /// The request id: in the `request` span (so in every log line of the request), the
    /// `x-request-id` header, every error body, and the requests forwarded for it.
    pub id: Arc<str>,
}

tokio::task_local! {
    /// The request being answered on this task.
    pub static REQUEST: RequestContext;
}

/// The id of the request this task answers, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST.try_with(|r| r.id.clone()).ok()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request = REQUEST.try_with(Clone::clone).ok();
        let is_write = request.as_ref().is_some_and(|r| r.is_write);
        let this = if is_write { self.for_write() } else { self };
        this.log();
        let mut body = this.body();
        body.request_id = request.map(|r| r.id.to_string());
        let mut resp = (this.status(), axum::Json(body)).into_response();
        if this.code == ErrorCode::PayloadTooLarge {
            // The body may be left unread on the connection, which the server then closes:
            // say so, so that a client does not send its next request down it.
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_outcome_only_for_writes() {
        let e = ApiError::topic_not_found("orders").for_write();
        let b = serde_json::to_value(e.body()).unwrap_or_default();
        assert_eq!(b["error_code"], 40401);
        assert_eq!(b["error"], "topic_not_found");
        assert_eq!(b["retriable"], false);
        assert_eq!(b["outcome"], "not_applied");
        assert!(b["message"].as_str().unwrap_or_default().contains("orders"));
        let read =
            serde_json::to_value(ApiError::topic_not_found("orders").body()).unwrap_or_default();
        assert!(read.get("outcome").is_none());
    }

    #[test]
    fn status_follows_the_table() {
        for code in ErrorCode::ALL {
            let e = ApiError::new(*code, "x");
            assert_eq!(e.status().as_u16(), code.http_status());
        }
    }

    #[test]
    fn bounds_become_body_fields() {
        let mut e = ApiError::new(ErrorCode::OffsetOutOfRange, "below the log start");
        e.bounds = Some((5, 9));
        let b = e.body();
        assert_eq!((b.log_start_offset, b.high_watermark), (Some(5), Some(9)));
    }
}

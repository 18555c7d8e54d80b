//! The client's error type, mirroring the server's error shape.

use serde::Deserialize;

/// Whether a failed write may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Definitely not written; retrying is safe.
    NotApplied,
    /// Maybe written; a retry may duplicate.
    Unknown,
}

/// A client error. Cloneable, because the [`Producer`](crate::Producer) hands one batch's error to
/// every record of the batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with an error.
    #[error("{name} ({code}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Stable numeric code.
        code: u32,
        /// Stable name, e.g. `topic_not_found`.
        name: String,
        /// Human-readable message.
        message: String,
        /// Whether retrying may help.
        retriable: bool,
        /// The write outcome, for writes.
        outcome: Option<Outcome>,
        /// The full error body (extra fields such as `offsets` or `high_watermark`).
        body: serde_json::Value,
    },
    /// No node could be reached; nothing was sent.
    #[error("no node reachable: {0}")]
    Unreachable(String),
    /// The request failed after it may have reached a node (timeout, reset).
    #[error("request failed after sending: {0}")]
    Transport(String),
    /// The reply was not what the API promises.
    #[error("unexpected reply: {0}")]
    Decode(String),
    /// Bad client configuration, or a record the client refuses before sending it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The producer shut down before it could report this record's fate: it may or may not have
    /// been written.
    #[error("the producer stopped before this record's outcome was known")]
    ProducerClosed,
}

impl Error {
    /// For a write: whether it definitely did not happen (`NotApplied`) or may have (`Unknown`).
    pub fn outcome(&self) -> Outcome {
        match self {
            Error::Server {
                outcome: Some(o), ..
            } => *o,
            Error::Server { status, .. } if *status < 500 => Outcome::NotApplied,
            Error::Unreachable(_) | Error::Config(_) => Outcome::NotApplied,
            _ => Outcome::Unknown,
        }
    }

    /// Whether the write may be retried without risking a duplicate: its outcome is
    /// [`Outcome::NotApplied`] and the condition may pass (an election, an unreachable node).
    /// Errors that will fail again the same way (a 4xx) are not retriable.
    pub fn is_retriable_write(&self) -> bool {
        match self {
            Error::Server { retriable, .. } => *retriable && self.outcome() == Outcome::NotApplied,
            Error::Unreachable(_) => true,
            _ => false,
        }
    }

    /// The server's numeric error code, if the server answered.
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's error name, if the server answered.
    pub fn name(&self) -> Option<&str> {
        match self {
            Error::Server { name, .. } => Some(name),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error_code: u32,
    pub error: String,
    pub message: String,
    pub retriable: bool,
    pub outcome: Option<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, name: &str, retriable: bool, outcome: Option<Outcome>) -> Error {
        Error::Server {
            status,
            code: 0,
            name: name.into(),
            message: String::new(),
            retriable,
            outcome,
            body: serde_json::Value::Null,
        }
    }

    #[test]
    fn only_not_applied_retriable_errors_are_retriable_writes() {
        let leader = server(503, "leader_not_available", true, Some(Outcome::NotApplied));
        assert!(leader.is_retriable_write());
        let unknown = server(503, "write_outcome_unknown", true, Some(Outcome::Unknown));
        assert!(!unknown.is_retriable_write());
        let timeout = server(504, "timeout", true, Some(Outcome::Unknown));
        assert!(!timeout.is_retriable_write());
        let invalid = server(422, "invalid_record", false, Some(Outcome::NotApplied));
        assert!(!invalid.is_retriable_write());
        assert!(Error::Unreachable("x".into()).is_retriable_write());
        assert!(!Error::Transport("reset".into()).is_retriable_write());
        assert_eq!(Error::Transport("reset".into()).outcome(), Outcome::Unknown);
        assert_eq!(Error::ProducerClosed.outcome(), Outcome::Unknown);
    }
}

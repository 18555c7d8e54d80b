//! The client's error type, mirroring the server's error shape ([`raftka_protocol::ErrorBody`]).
//!
//! Branch on [`Error::error_code`] (an [`ErrorCode`] from the protocol's one error table),
//! never on the message.

pub use raftka_protocol::{ErrorCode, Outcome};

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

    /// The server's error code, if the server answered with a code this version knows (a
    /// newer server may send codes this client has never heard of: `None`, as for errors that
    /// did not come from the server).
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code().and_then(ErrorCode::from_number)
    }

    /// The server's error name, if the server answered.
    pub fn name(&self) -> Option<&str> {
        match self {
            Error::Server { name, .. } => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, name: &str, retriable: bool, outcome: Option<Outcome>) -> Error {
        Error::Server {
            status,
            code: ErrorCode::from_name(name).map_or(0, ErrorCode::number),
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

    #[test]
    fn error_code_is_the_known_code_of_a_server_error() {
        let e = server(503, "not_leader", true, Some(Outcome::NotApplied));
        assert_eq!(e.error_code(), Some(ErrorCode::NotLeader));
        assert_eq!(e.code(), Some(50302));
        let mut newer = e.clone();
        if let Error::Server { code, .. } = &mut newer {
            *code = 59999;
        }
        assert_eq!(
            newer.error_code(),
            None,
            "a code this version does not know"
        );
        assert_eq!(newer.code(), Some(59999));
        assert_eq!(Error::Unreachable("x".into()).error_code(), None);
    }
}

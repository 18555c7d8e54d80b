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

/// A client error.
#[derive(Debug, thiserror::Error)]
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
    /// Bad client configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
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

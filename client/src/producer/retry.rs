//! When the producer resends a failed batch, and after how long.
//!
//! The one rule: a batch is resent only when its error says the write **definitely did not
//! happen** (`outcome: not_applied`) and the condition may pass (a retriable server error such
//! as `leader_not_available`, or no node reachable). An `unknown` outcome (a timeout, a
//! `write_outcome_unknown`, a connection broken after sending) is never retried: the records may
//! be in the log already, and a resend could duplicate them. Those reach the caller as errors.

use std::time::Duration;

use crate::error::Error;

/// How often and how patiently a batch is resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first send included (1 = never retry).
    pub max_attempts: u32,
    /// Wait before the first resend; doubles on each further resend.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, 50 ms doubling to at most 1 s: about 5.5 s of retrying in all, which
    /// covers a partition leader election (1–2 s) with room to spare.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// What to do after attempt number `attempt` (1-based) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Resend after waiting this long.
    RetryAfter(Duration),
    /// Give up and hand the error to the caller.
    Fail,
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    /// Decides whether a batch whose attempt number `attempt` failed with `err` is resent.
    pub(crate) fn decide(&self, err: &Error, attempt: u32) -> Decision {
        if err.is_retriable_write() && attempt < self.max_attempts {
            Decision::RetryAfter(self.backoff(attempt))
        } else {
            Decision::Fail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Outcome;

    fn server(status: u16, name: &str, retriable: bool, outcome: Outcome) -> Error {
        Error::Server {
            status,
            code: 0,
            name: name.into(),
            message: String::new(),
            retriable,
            outcome: Some(outcome),
            body: serde_json::Value::Null,
        }
    }

    #[test]
    fn not_applied_retriable_errors_are_retried_with_growing_backoff() {
        let p = RetryPolicy::default();
        let e = server(503, "leader_not_available", true, Outcome::NotApplied);
        assert_eq!(
            p.decide(&e, 1),
            Decision::RetryAfter(Duration::from_millis(50))
        );
        assert_eq!(
            p.decide(&e, 2),
            Decision::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.decide(&e, 6),
            Decision::RetryAfter(Duration::from_secs(1))
        );
        let unreachable = Error::Unreachable("127.0.0.1:1: refused".into());
        assert!(matches!(p.decide(&unreachable, 1), Decision::RetryAfter(_)));
    }

    #[test]
    fn unknown_outcomes_are_never_retried() {
        let p = RetryPolicy::default();
        for e in [
            server(503, "write_outcome_unknown", true, Outcome::Unknown),
            server(504, "timeout", true, Outcome::Unknown),
            server(500, "internal", true, Outcome::Unknown),
            Error::Transport("connection reset".into()),
            Error::Decode("garbage".into()),
        ] {
            assert_eq!(p.decide(&e, 1), Decision::Fail, "{e}");
        }
    }

    #[test]
    fn errors_that_would_fail_again_are_not_retried() {
        let p = RetryPolicy::default();
        for e in [
            server(422, "invalid_record", false, Outcome::NotApplied),
            server(404, "partition_not_found", false, Outcome::NotApplied),
            server(413, "payload_too_large", false, Outcome::NotApplied),
        ] {
            assert_eq!(p.decide(&e, 1), Decision::Fail, "{e}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let e = server(503, "not_leader", true, Outcome::NotApplied);
        assert!(matches!(p.decide(&e, 2), Decision::RetryAfter(_)));
        assert_eq!(p.decide(&e, 3), Decision::Fail);
        let never = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(never.decide(&e, 1), Decision::Fail);
    }
}

//! When the producer resends a failed batch, and after how long.
//!
//! Which errors are resent depends on whether the producer is idempotent:
//!
//! - **Idempotent** (the default): every batch carries the producer's id and the sequence of its
//!   first record, and a resend carries exactly the same ones. The partition's state machine
//!   recognises a batch it has already stored and answers with the original offsets, so a
//!   resend cannot duplicate. Every transient error is therefore resent: `not_applied` ones
//!   (an election, an unreachable node) **and** `unknown` ones (a timeout, a
//!   `write_outcome_unknown`, a connection broken after sending).
//! - **Not idempotent** (`idempotence(false)`): a batch is resent only when its error says the
//!   write **definitely did not happen** (`outcome: not_applied`) and the condition may pass. An
//!   `unknown` outcome is never resent: the records may be in the log already, and a resend
//!   could duplicate them. Those reach the caller as errors.
//!
//! In both modes an error that would fail again the same way (a 4xx such as `invalid_record`
//! or `out_of_order_sequence`) is not resent, and resending stops after
//! [`RetryPolicy::max_attempts`] attempts or once [`RetryPolicy::delivery_timeout`] has passed
//! since the batch was first sent, whichever comes first.

use std::time::Duration;

use crate::error::{Error, Outcome};

/// How often and how patiently a batch is resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first send included (1 = never retry). Default: unbounded
    /// (`u32::MAX`), so that [`delivery_timeout`](Self::delivery_timeout) is the bound, as with
    /// Kafka's `retries=MAX_INT` and `delivery.timeout.ms`.
    pub max_attempts: u32,
    /// Wait before the first resend; doubles on each further resend.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long after its first send a batch may still be (re)sent. When it runs out, the
    /// batch's records get the last error. Default 30 s: several partition leader elections
    /// (1–5 s each).
    pub delivery_timeout: Duration,
    /// Longest wait for the answer to one attempt (also capped by what is left of the delivery
    /// timeout). An attempt cut short has an `unknown` outcome: the request may have arrived.
    /// Default 15 s: the server answers within its own commit wait (10 s by default).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(15),
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

/// Whether a write that failed with `err` may be resent at all. Idempotent batches may be
/// resent whatever their outcome, as long as the error is transient; others only when the
/// write definitely did not happen.
pub(crate) fn may_resend(err: &Error, idempotent: bool) -> bool {
    if err.is_retriable_write() {
        return true;
    }
    if !idempotent {
        return false;
    }
    match err {
        // A server error says whether it is transient (`timeout`, `write_outcome_unknown`, …).
        Error::Server { retriable, .. } => *retriable,
        // A connection broken or timed out after sending: the request may or may not have
        // arrived; resending the same producer id and sequence is harmless either way.
        Error::Transport(_) => true,
        // A reply that is not the API's shape, a refused record, a stopped producer: resending
        // would not make them pass.
        Error::Unreachable(_) | Error::Decode(_) | Error::Config(_) | Error::ProducerClosed => {
            false
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    /// Decides whether a batch whose attempt number `attempt` failed with `err`, `elapsed`
    /// after its first send, is resent.
    pub(crate) fn decide(
        &self,
        err: &Error,
        attempt: u32,
        elapsed: Duration,
        idempotent: bool,
    ) -> Decision {
        let wait = self.backoff(attempt);
        if may_resend(err, idempotent)
            && attempt < self.max_attempts
            && elapsed.saturating_add(wait) < self.delivery_timeout
        {
            Decision::RetryAfter(wait)
        } else {
            Decision::Fail
        }
    }

    /// How long attempt may wait for its answer, `elapsed` after the batch's first send.
    pub(crate) fn attempt_budget(&self, elapsed: Duration) -> Duration {
        self.delivery_timeout
            .saturating_sub(elapsed)
            .min(self.attempt_timeout)
    }
}

/// The error a batch's records get when it is given up. When an earlier attempt may have been
/// written (its outcome was `unknown`), a last `not_applied` error does not prove the records
/// are absent: the error is reported with an `unknown` outcome.
pub(crate) fn final_error(last: &Error, maybe_written_before: bool) -> Error {
    if !maybe_written_before || last.outcome() == Outcome::Unknown {
        return last.clone();
    }
    match last {
        Error::Server {
            status,
            code,
            name,
            message,
            retriable,
            body,
            ..
        } => Error::Server {
            status: *status,
            code: *code,
            name: name.clone(),
            message: format!("{message} (an earlier attempt of this batch may have been written)"),
            retriable: *retriable,
            outcome: Some(Outcome::Unknown),
            body: body.clone(),
        },
        other => Error::Transport(format!(
            "{other} (an earlier attempt of this batch may have been written)"
        )),
    }
}

/// The idempotence state of one partition: the producer id its batches carry and the sequence
/// the next batch starts at.
///
/// - A batch's sequence is fixed when it is first sent and never changes across its resends.
/// - The sequence advances (by the batch's record count) only when a batch is acknowledged,
///   original or duplicate.
/// - A batch given up without knowing whether it was written leaves the partition's sequence
///   unknowable: the server expects either this sequence or the next one. The partition then
///   moves to a fresh producer id (a new *epoch*, which the server treats as a new producer that
///   may start anywhere) and restarts at sequence 0, so that no later batch is mistaken for that
///   one or refused as out of order.
/// - A batch refused for good (`not_applied`) was not stored: the next batch reuses its
///   sequence. Except `out_of_order_sequence`: the server expects another sequence than the
///   producer's (which should not happen), so the partition moves to a fresh producer id too,
///   rather than having every later batch refused the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartitionSequence {
    /// 0 at first; one more on each reset.
    pub epoch: u32,
    /// Sequence of the next batch's first record.
    pub next: u64,
}

impl PartitionSequence {
    /// The producer id this partition's batches carry, from the producer's base id.
    pub fn producer_id(&self, base: &str) -> String {
        if self.epoch == 0 {
            base.to_string()
        } else {
            format!("{base}.{}", self.epoch)
        }
    }

    /// A batch of `records` records was acknowledged.
    pub fn acknowledged(&mut self, records: u64) {
        self.next += records;
    }

    /// A batch was given up; `sequence_unknown` when any of its attempts had an unknown
    /// outcome, or the server refused its sequence as out of order.
    pub fn given_up(&mut self, sequence_unknown: bool) {
        if sequence_unknown {
            self.epoch += 1;
            self.next = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    fn server(status: u16, name: &str, retriable: bool, outcome: Outcome) -> Error {
        Error::Server {
            status,
            code: crate::ErrorCode::from_name(name).map_or(0, crate::ErrorCode::number),
            name: name.into(),
            message: String::new(),
            retriable,
            outcome: Some(outcome),
            body: serde_json::Value::Null,
        }
    }

    fn unknown_errors() -> Vec<Error> {
        vec![
            server(503, "write_outcome_unknown", true, Outcome::Unknown),
            server(504, "timeout", true, Outcome::Unknown),
            server(500, "internal", true, Outcome::Unknown),
            Error::Transport("connection reset".into()),
        ]
    }

    #[test]
    fn not_applied_retriable_errors_are_retried_with_growing_backoff() {
        let p = RetryPolicy::default();
        let e = server(503, "leader_not_available", true, Outcome::NotApplied);
        for idempotent in [true, false] {
            assert_eq!(
                p.decide(&e, 1, NOW, idempotent),
                Decision::RetryAfter(Duration::from_millis(50))
            );
            assert_eq!(
                p.decide(&e, 2, NOW, idempotent),
                Decision::RetryAfter(Duration::from_millis(100))
            );
            assert_eq!(
                p.decide(&e, 6, NOW, idempotent),
                Decision::RetryAfter(Duration::from_secs(1))
            );
            let unreachable = Error::Unreachable("127.0.0.1:1: refused".into());
            assert!(matches!(
                p.decide(&unreachable, 1, NOW, idempotent),
                Decision::RetryAfter(_)
            ));
        }
    }

    #[test]
    fn unknown_outcomes_are_retried_only_when_idempotent() {
        let p = RetryPolicy::default();
        for e in unknown_errors() {
            assert!(
                matches!(p.decide(&e, 1, NOW, true), Decision::RetryAfter(_)),
                "idempotent: {e}"
            );
            assert_eq!(p.decide(&e, 1, NOW, false), Decision::Fail, "plain: {e}");
        }
        // An undecodable reply is not transient: neither mode resends it.
        let garbage = Error::Decode("garbage".into());
        assert_eq!(p.decide(&garbage, 1, NOW, true), Decision::Fail);
        assert_eq!(p.decide(&garbage, 1, NOW, false), Decision::Fail);
    }

    #[test]
    fn errors_that_would_fail_again_are_not_retried_in_either_mode() {
        let p = RetryPolicy::default();
        for e in [
            server(422, "invalid_record", false, Outcome::NotApplied),
            server(422, "out_of_order_sequence", false, Outcome::NotApplied),
            server(404, "partition_not_found", false, Outcome::NotApplied),
            server(413, "payload_too_large", false, Outcome::NotApplied),
            Error::Config("bad".into()),
        ] {
            assert_eq!(p.decide(&e, 1, NOW, true), Decision::Fail, "{e}");
            assert_eq!(p.decide(&e, 1, NOW, false), Decision::Fail, "{e}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let e = server(503, "not_leader", true, Outcome::NotApplied);
        assert!(matches!(
            p.decide(&e, 2, NOW, false),
            Decision::RetryAfter(_)
        ));
        assert_eq!(p.decide(&e, 3, NOW, false), Decision::Fail);
        let never = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(never.decide(&e, 1, NOW, true), Decision::Fail);
    }

    #[test]
    fn retries_stop_at_the_delivery_timeout() {
        let p = RetryPolicy {
            delivery_timeout: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let e = server(504, "timeout", true, Outcome::Unknown);
        assert!(matches!(
            p.decide(&e, 1, Duration::from_secs(9), true),
            Decision::RetryAfter(_)
        ));
        // 50 ms of backoff would end past the timeout.
        assert_eq!(
            p.decide(&e, 1, Duration::from_millis(9_960), true),
            Decision::Fail
        );
        assert_eq!(
            p.decide(&e, 1, Duration::from_secs(10), true),
            Decision::Fail
        );
        // One attempt waits at most the attempt timeout, and never past the delivery timeout.
        assert_eq!(p.attempt_budget(NOW), Duration::from_secs(10));
        let long = RetryPolicy::default();
        assert_eq!(long.attempt_budget(NOW), Duration::from_secs(15));
        assert_eq!(
            long.attempt_budget(Duration::from_secs(20)),
            Duration::from_secs(10)
        );
        assert_eq!(long.attempt_budget(Duration::from_secs(40)), Duration::ZERO);
    }

    #[test]
    fn a_batch_given_up_after_an_unknown_attempt_reports_an_unknown_outcome() {
        let last = server(503, "leader_not_available", true, Outcome::NotApplied);
        assert_eq!(final_error(&last, false).outcome(), Outcome::NotApplied);
        let e = final_error(&last, true);
        assert_eq!(e.outcome(), Outcome::Unknown);
        assert_eq!(e.error_code(), Some(crate::ErrorCode::LeaderNotAvailable));
        let unreachable = final_error(&Error::Unreachable("all down".into()), true);
        assert_eq!(unreachable.outcome(), Outcome::Unknown);
        let unknown = server(504, "timeout", true, Outcome::Unknown);
        assert_eq!(final_error(&unknown, false).outcome(), Outcome::Unknown);
    }

    #[test]
    fn sequences_advance_only_on_acknowledgement() {
        let mut s = PartitionSequence::default();
        assert_eq!(s.producer_id("p"), "p");
        s.acknowledged(10);
        assert_eq!(s.next, 10);
        // Refused for good, definitely not stored: the next batch reuses the sequence.
        s.given_up(false);
        assert_eq!(s, PartitionSequence { epoch: 0, next: 10 });
        s.acknowledged(5);
        assert_eq!(s.next, 15);
        // Given up with an unknown outcome: a fresh epoch, from sequence 0.
        s.given_up(true);
        assert_eq!(s, PartitionSequence { epoch: 1, next: 0 });
        assert_eq!(s.producer_id("p"), "p.1");
        s.acknowledged(3);
        assert_eq!(s, PartitionSequence { epoch: 1, next: 3 });
    }
}

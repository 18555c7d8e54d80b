//! The vacuity guard: a run that exercised too little proves nothing and must not pass.
//!
//! A run is vacuous when any of these holds:
//! - no key was sent to or polled at all;
//! - a key has fewer `ok` sends than
//!   [`CheckConfig::min_ok_sends_per_key`](super::CheckConfig::min_ok_sends_per_key), or fewer
//!   `ok` polls returning its records than
//!   [`CheckConfig::min_ok_polls_per_key`](super::CheckConfig::min_ok_polls_per_key);
//! - the nemesis recorded faults, yet no client operation (crashes aside) failed or ended `info`:
//!   the faults evidently never reached the clients' side of the partition;
//! - a key with an `ok` send was never read by the final phase, so durability and density could
//!   not be judged (when [`CheckConfig::require_final_phase`](super::CheckConfig::require_final_phase));
//! - the final phase stopped short: its reads of a key end below the high watermark it was
//!   given, so records the server holds were never looked at.
//!
//! Vacuity never hides an anomaly: anomalies make the verdict `invalid` regardless.

use crate::history::{Function, Outcome};

use super::index::Index;

/// Every reason the run proves too little; empty if it is substantial.
pub(crate) fn check(ix: &Index<'_>) -> Vec<String> {
    let config = ix.config;
    let mut reasons = Vec::new();
    if ix.keys.is_empty() {
        reasons.push("no key was sent to or polled".to_owned());
    }
    for (key, k) in &ix.keys {
        let ok_sends = k.sends.iter().filter(|id| ix.op(**id).is_ok()).count();
        if ok_sends < config.min_ok_sends_per_key {
            reasons.push(format!(
                "key {key}: {ok_sends} ok sends, fewer than {}",
                config.min_ok_sends_per_key
            ));
        }
        if k.ok_polls < config.min_ok_polls_per_key {
            reasons.push(format!(
                "key {key}: {} ok polls returned records, fewer than {}",
                k.ok_polls, config.min_ok_polls_per_key
            ));
        }
        if config.require_final_phase && ok_sends > 0 && !k.has_final {
            reasons.push(format!("key {key}: never read by the final phase"));
        }
        let final_end = k
            .final_log
            .keys()
            .next_back()
            .map_or(k.log_start, |o| o + 1);
        if let Some(hw) = k.final_hw.filter(|hw| final_end < *hw) {
            reasons.push(format!(
                "key {key}: the final read ends at offset {final_end}, below the high watermark {hw}"
            ));
        }
    }
    let faults = ix.history.nemesis.len();
    let troubled = ix
        .history
        .operations
        .iter()
        .filter(|op| op.f != Function::Crash && op.outcome != Outcome::Ok)
        .count();
    if config.require_faults_when_nemesis_active && faults > 0 && troubled == 0 {
        reasons.push(format!(
            "{faults} nemesis events, but no client operation failed or was indeterminate"
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use crate::checker::testkit::*;
    use crate::checker::{check, CheckConfig, Verdict};
    use crate::history::{Function, HistoryBuilder};

    fn complete_run() -> HistoryBuilder {
        let mut b = healthy();
        final_read(&mut b, &[(0, 10), (1, 11), (2, 12)]);
        b
    }

    #[test]
    fn too_few_operations_per_key_is_vacuous() {
        let r = check(&complete_run().build().unwrap(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Vacuous, "{}", r.summary());
        assert_eq!(r.vacuity.len(), 2, "{:?}", r.vacuity);
        assert!(r.vacuity[0].contains("3 ok sends, fewer than 10"));
    }

    #[test]
    fn empty_history_is_vacuous() {
        assert_eq!(report(&HistoryBuilder::new()).verdict, Verdict::Vacuous);
    }

    #[test]
    fn faults_that_never_bite_are_vacuous() {
        let mut b = HistoryBuilder::new();
        b.nemesis("isolate n1");
        let mut rest = complete_run();
        for e in rest.events().to_vec() {
            b.event(e.process, e.kind, e.f, e.value);
        }
        b.nemesis("heal");
        let r = report(&b);
        assert_eq!(r.verdict, Verdict::Vacuous, "{}", r.summary());
        assert!(r.vacuity[0].contains("2 nemesis events"));

        // One indeterminate send during the fault is enough.
        rest.nemesis("isolate n1")
            .invoke_send(5, "t/0", 50)
            .info(5, Function::Send)
            .nemesis("heal");
        assert_valid(&rest);
    }

    #[test]
    fn run_without_final_phase_is_vacuous() {
        let r = report(&healthy());
        assert_eq!(r.verdict, Verdict::Vacuous);
        assert_eq!(
            r.vacuity,
            vec!["key t/0: never read by the final phase".to_owned()]
        );
    }

    #[test]
    fn final_read_stopping_below_its_high_watermark_is_vacuous() {
        let mut b = healthy();
        b.send(1, "t/0", 13, 3)
            .assign(9, &["t/0"], true)
            .final_poll_with_hw(9, &[("t/0", &[(0, 10), (1, 11), (2, 12)])], &[("t/0", 4)]);
        // p2 never read 13 either: it is also unseen, so the run is invalid, and vacuous too.
        let r = report(&b);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            r.vacuity,
            vec!["key t/0: the final read ends at offset 3, below the high watermark 4".to_owned()]
        );
    }

    #[test]
    fn final_process_may_be_named_in_the_config() {
        let mut b = healthy();
        b.assign(9, &["t/0"], true)
            .poll(9, &[("t/0", &[(0, 10), (1, 11), (2, 12)])]);
        let config = CheckConfig {
            final_processes: [9].into(),
            ..small_run_config()
        };
        let r = check(&b.build().unwrap(), &config);
        assert!(r.is_valid(), "{}", r.summary());
    }

    #[test]
    fn anomalies_win_over_vacuity() {
        let mut b = HistoryBuilder::new();
        b.send(1, "t/0", 10, 0).poll(2, &[("t/0", &[(0, 11)])]);
        let r = check(&b.build().unwrap(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert!(!r.vacuity.is_empty());
    }
}

//! What the checker expects of a run: thresholds for vacuity, the final phase, and search bounds.
//!
//! The config is plain data, (de)serializable as JSON with every field optional, so a run can
//! store the config it was checked with next to its history.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::history::{Key, Offset, ProcessId};

/// Checker settings. [`Default`] is what a real fault run should use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckConfig {
    /// A key with fewer `ok` sends than this makes the run vacuous.
    pub min_ok_sends_per_key: usize,
    /// A key with fewer `ok` polls returning its records than this makes the run vacuous.
    pub min_ok_polls_per_key: usize,
    /// If any nemesis event was recorded, at least one client operation must have failed or
    /// ended `info`; otherwise the faults evidently did not bite and the run is vacuous.
    pub require_faults_when_nemesis_active: bool,
    /// Every key with an `ok` send must be read by the final phase; otherwise the run is
    /// vacuous (durability and density cannot be judged).
    pub require_final_phase: bool,
    /// Processes whose polls all belong to the final phase, in addition to polls flagged
    /// `"final": true`.
    pub final_processes: BTreeSet<ProcessId>,
    /// Check the high watermark in real time (never decreasing; never behind an acknowledged
    /// send). Valid only if every poll observes the leader's commit point; turn off when the
    /// harness lets clients fetch from followers, which may lag.
    pub realtime_high_watermark: bool,
    /// Log start offset per key, for runs where retention removed the head of the log. Overrides
    /// the `log_starts` that polls report.
    pub log_starts: BTreeMap<Key, Offset>,
    /// How many examples of each anomaly kind the report keeps (all are counted).
    pub max_examples_per_kind: usize,
    /// How many (linearized set, register value) configurations the committed-offset
    /// linearizability search may visit per (group, key) before it answers "unknown".
    pub max_linearizability_states: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            min_ok_sends_per_key: 10,
            min_ok_polls_per_key: 10,
            require_faults_when_nemesis_active: true,
            require_final_phase: true,
            final_processes: BTreeSet::new(),
            realtime_high_watermark: true,
            log_starts: BTreeMap::new(),
            max_examples_per_kind: 20,
            max_linearizability_states: 200_000,
        }
    }
}

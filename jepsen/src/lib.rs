//! Raftka's Jepsen-style history checker.
//!
//! A fault run records every client operation against a Raftka cluster (sends, polls,
//! assignments, consumer-group commits) as an invoke and a completion, interleaved with the
//! faults its nemesis injected. This crate reads such a history and decides whether it is
//! consistent with what Raftka promises: the anomalies of Jepsen's Kafka workload, and the
//! stronger guarantees of a per-partition Raft log (real-time order, durability, a monotonic
//! high watermark, dense offsets, linearizable committed offsets).
//!
//! - [`history`]: the JSON-lines history format, pairing into operations, and a builder for
//!   hand-written histories.
//! - [`checker`]: [`checker::check`] turns a [`history::History`] into a [`checker::Report`]
//!   with a [`checker::Verdict`] of `valid`, `invalid`, `vacuous` or `unknown`.
//!
//! - [`harness`]: the fault-injection harness that records such histories against real nodes
//!   in network namespaces (run it with `jepsen/run`).
//!
//! The `raftka-check` binary checks a history file and exits 0 only if it is valid; the
//! `raftka-jepsen` binary runs cells (workload × nemesis) and prints a verdict table.
//!
//! ```
//! use raftka_jepsen::checker::{check, CheckConfig, Verdict};
//! use raftka_jepsen::history::HistoryBuilder;
//!
//! let mut h = HistoryBuilder::new();
//! h.send(1, "t/0", 100, 0).poll(2, &[("t/0", &[(0, 100)])]);
//! h.final_poll(9, &[("t/0", &[(0, 100)])]);
//! let config = CheckConfig { min_ok_sends_per_key: 1, min_ok_polls_per_key: 1, ..CheckConfig::default() };
//! let report = check(&h.build().unwrap(), &config);
//! assert_eq!(report.verdict, Verdict::Valid, "{}", report.summary());
//! ```

pub mod checker;
pub mod harness;
pub mod history;

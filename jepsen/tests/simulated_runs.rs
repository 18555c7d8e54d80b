//! Property tests against a simulated, correct Raftka: histories it produces must check valid,
//! and small corruptions of them must not.
//!
//! The simulation keeps one log per key and one committed-offset register per (group, key).
//! Clients occupy a few slots; at each step one slot either invokes an operation or completes
//! the one it has in flight. Every effect happens at the moment of completion, which lies between
//! invoke and completion, so the history is linearizable by construction. Faults are modelled
//! as `fail` (no effect) and `info` (effect or not, at random; the process is then retired).

// Test helpers outside #[test] functions may panic on setup failure: that is the report.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftka_jepsen::checker::{check, AnomalyKind, CheckConfig, Verdict};
use raftka_jepsen::history::{EventType, Function, History, HistoryBuilder};

const KEYS: [&str; 2] = ["t/0", "t/1"];
const GROUP: &str = "g";
const FINAL_PROCESS: u64 = 1_000_000;

#[derive(Debug, Clone)]
enum Pending {
    Send(&'static str, i64),
    Poll,
    Assign(bool),
    Commit(&'static str),
    Fetch(&'static str),
}

#[derive(Debug, Default)]
struct Slot {
    process: u64,
    pending: Option<Pending>,
    /// Next offset to read, per assigned key.
    positions: BTreeMap<&'static str, u64>,
}

struct Simulation {
    b: HistoryBuilder,
    logs: BTreeMap<&'static str, Vec<i64>>,
    committed: BTreeMap<&'static str, Option<u64>>,
    slots: Vec<Slot>,
    next_process: u64,
    next_value: i64,
}

impl Simulation {
    fn new(slots: usize) -> Self {
        Simulation {
            b: HistoryBuilder::new(),
            logs: KEYS.iter().map(|k| (*k, Vec::new())).collect(),
            committed: KEYS.iter().map(|k| (*k, None)).collect(),
            slots: (0..slots)
                .map(|i| Slot {
                    process: i as u64,
                    ..Slot::default()
                })
                .collect(),
            next_process: slots as u64,
            next_value: 0,
        }
    }

    fn step(&mut self, choice: u16) {
        let s = usize::from(choice) % self.slots.len();
        let roll = choice / 8;
        match self.slots[s].pending.take() {
            None => self.invoke(s, roll),
            Some(op) => {
                // Mostly ok; sometimes fail or info.
                let outcome = match roll % 10 {
                    0 => EventType::Fail,
                    1 => EventType::Info,
                    _ => EventType::Ok,
                };
                self.complete(s, op, outcome, (roll / 10) & 1 == 0);
            }
        }
    }

    fn invoke(&mut self, s: usize, roll: u16) {
        let p = self.slots[s].process;
        let key = KEYS[usize::from(roll / 8) % KEYS.len()];
        let op = match roll % 8 {
            0..=2 => {
                self.next_value += 1;
                self.b.invoke_send(p, key, self.next_value);
                Pending::Send(key, self.next_value)
            }
            3 | 4 => {
                self.b.invoke_poll(p);
                Pending::Poll
            }
            5 => {
                let seek = roll % 16 < 8;
                let value = serde_json::json!({"keys": KEYS, "seek_to_beginning": seek});
                self.b.event(p, EventType::Invoke, Function::Assign, value);
                Pending::Assign(seek)
            }
            6 => {
                // Commit where this consumer is (or 0): never beyond the log.
                let at = self.slots[s].positions.get(key).copied().unwrap_or(0);
                self.b.invoke_commit(p, GROUP, key, at);
                Pending::Commit(key)
            }
            _ => {
                self.b.invoke_fetch(p, GROUP, key);
                Pending::Fetch(key)
            }
        };
        self.slots[s].pending = Some(op);
    }

    fn complete(&mut self, s: usize, op: Pending, outcome: EventType, info_applies: bool) {
        let p = self.slots[s].process;
        let applies = match outcome {
            EventType::Ok => true,
            EventType::Info => info_applies,
            _ => false,
        };
        // Polls and fetches never fail with an effect; model their faults as info.
        let outcome = match (&op, outcome) {
            (Pending::Poll | Pending::Fetch(_) | Pending::Assign(_), EventType::Fail) => {
                EventType::Info
            }
            (_, o) => o,
        };
        if outcome != EventType::Ok {
            if applies {
                match &op {
                    Pending::Send(key, value) => self.logs.entry(key).or_default().push(*value),
                    Pending::Commit(key) => {
                        let at = self.slots[s].positions.get(key).copied().unwrap_or(0);
                        self.committed.insert(key, Some(at));
                    }
                    _ => {}
                }
            }
            self.b
                .event(p, outcome, function(&op), serde_json::Value::Null);
            if outcome == EventType::Info {
                self.slots[s] = Slot {
                    process: self.next_process,
                    ..Slot::default()
                };
                self.next_process += 1;
            }
            return;
        }
        match op {
            Pending::Send(key, value) => {
                let log = self.logs.entry(key).or_default();
                log.push(value);
                self.b.ok_send(p, key, value, log.len() as u64 - 1);
            }
            Pending::Poll => {
                let mut reads = Vec::new();
                let mut hws = Vec::new();
                for (key, pos) in self.slots[s].positions.iter_mut() {
                    let log = &self.logs[key];
                    let end = log.len().min(*pos as usize + 3);
                    let records: Vec<(u64, i64)> =
                        (*pos as usize..end).map(|o| (o as u64, log[o])).collect();
                    *pos = end as u64;
                    reads.push((*key, records));
                    hws.push((*key, log.len() as u64));
                }
                let reads: Vec<(&str, &[(u64, i64)])> =
                    reads.iter().map(|(k, r)| (*k, r.as_slice())).collect();
                self.b.ok_poll_with_hw(p, &reads, &hws);
            }
            Pending::Assign(seek) => {
                self.slots[s].positions = KEYS
                    .iter()
                    .map(|k| {
                        (
                            *k,
                            if seek {
                                0
                            } else {
                                self.committed[k].unwrap_or(0)
                            },
                        )
                    })
                    .collect();
                let value = serde_json::json!({"keys": KEYS, "seek_to_beginning": seek});
                self.b.event(p, EventType::Ok, Function::Assign, value);
            }
            Pending::Commit(key) => {
                let at = self.slots[s].positions.get(key).copied().unwrap_or(0);
                self.committed.insert(key, Some(at));
                self.b.ok_commit(p, GROUP, key, at);
            }
            Pending::Fetch(key) => {
                self.b.ok_fetch(p, GROUP, key, self.committed[key]);
            }
        }
    }

    /// Completes everything in flight, then reads every key from 0 in the final phase.
    fn finish(mut self) -> HistoryBuilder {
        for s in 0..self.slots.len() {
            if let Some(op) = self.slots[s].pending.take() {
                self.complete(s, op, EventType::Ok, true);
            }
        }
        self.b.assign(FINAL_PROCESS, &KEYS, true);
        let reads: Vec<(&str, Vec<(u64, i64)>)> = KEYS
            .iter()
            .map(|k| {
                (
                    *k,
                    self.logs[k]
                        .iter()
                        .enumerate()
                        .map(|(o, v)| (o as u64, *v))
                        .collect(),
                )
            })
            .collect();
        let hws: Vec<(&str, u64)> = KEYS
            .iter()
            .map(|k| (*k, self.logs[k].len() as u64))
            .collect();
        let reads: Vec<(&str, &[(u64, i64)])> =
            reads.iter().map(|(k, r)| (*k, r.as_slice())).collect();
        self.b.final_poll_with_hw(FINAL_PROCESS, &reads, &hws);
        self.b
    }
}

fn function(op: &Pending) -> Function {
    match op {
        Pending::Send(..) => Function::Send,
        Pending::Poll => Function::Poll,
        Pending::Assign(_) => Function::Assign,
        Pending::Commit(_) => Function::Commit,
        Pending::Fetch(_) => Function::FetchCommitted,
    }
}

fn simulate(slots: usize, choices: &[u16]) -> History {
    let mut sim = Simulation::new(slots);
    for c in choices {
        sim.step(*c);
    }
    sim.finish()
        .build()
        .expect("the simulation pairs its events")
}

/// Thresholds of zero: these runs are about correctness, not about being long enough.
fn any_size() -> CheckConfig {
    CheckConfig {
        min_ok_sends_per_key: 0,
        min_ok_polls_per_key: 0,
        ..CheckConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn single_process_run_of_a_correct_log_is_valid(choices in prop::collection::vec(any::<u16>(), 0..300)) {
        let history = simulate(1, &choices);
        let report = check(&history, &any_size());
        prop_assert_eq!(report.verdict, Verdict::Valid, "{}", report.summary());
    }

    #[test]
    fn concurrent_run_of_a_correct_log_is_valid(
        slots in 2usize..5,
        choices in prop::collection::vec(any::<u16>(), 0..400),
    ) {
        let history = simulate(slots, &choices);
        let report = check(&history, &any_size());
        prop_assert_eq!(report.verdict, Verdict::Valid, "{}", report.summary());
    }

    #[test]
    fn swapping_two_records_in_a_poll_is_caught(
        slots in 1usize..4,
        choices in prop::collection::vec(any::<u16>(), 50..300),
    ) {
        let mut history = simulate(slots, &choices);
        // Swap the values of the first two records any ordinary poll returned for one key.
        let swapped = history.operations.iter_mut().any(|op| {
            let raftka_jepsen::history::OpBody::Poll(poll) = &mut op.body else { return false };
            if poll.final_read {
                return false;
            }
            poll.reads.values_mut().any(|records| {
                if records.len() < 2 {
                    return false;
                }
                let (a, b) = (records[0].1, records[1].1);
                records[0].1 = b;
                records[1].1 = a;
                true
            })
        });
        prop_assume!(swapped);
        let report = check(&history, &any_size());
        prop_assert_eq!(report.verdict, Verdict::Invalid, "{}", report.summary());
        prop_assert!(report.kinds().contains(&AnomalyKind::InconsistentOffsets));
    }

    #[test]
    fn reports_and_histories_round_trip_through_json(choices in prop::collection::vec(any::<u16>(), 0..100)) {
        let mut sim = Simulation::new(2);
        for c in &choices {
            sim.step(*c);
        }
        let b = sim.finish();
        let mut text = Vec::new();
        raftka_jepsen::history::write_events(&mut text, b.events()).expect("write");
        let parsed = raftka_jepsen::history::parse_events(text.as_slice()).expect("parse");
        prop_assert_eq!(parsed.as_slice(), b.events());
        let report = check(&b.build().expect("pairs"), &any_size());
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        prop_assert_eq!(json["verdict"].as_str(), Some("valid"));
    }
}

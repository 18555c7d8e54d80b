//! One pass over the history that every check shares: per key, its sends, every record any `ok`
//! poll returned, and the final log.
//!
//! The final log of a key is the union of what the final phase's `ok` polls returned for it,
//! keyed by offset (the first value read at an offset wins; a disagreement is reported by the
//! inconsistent-offsets check, which sees every read).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{History, Key, Offset, OpBody, OpId, Operation, Outcome, PollResult, Value};

use super::CheckConfig;

/// One record returned by an `ok` poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Read {
    pub(crate) op: OpId,
    pub(crate) offset: Offset,
    pub(crate) value: Value,
    pub(crate) final_read: bool,
}

/// Everything known about one key.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    /// Every send to the key, in invoke order.
    pub(crate) sends: Vec<OpId>,
    /// The send of each value (values are unique per key).
    pub(crate) send_of: HashMap<Value, OpId>,
    /// Every record returned by an `ok` poll, in history order.
    pub(crate) reads: Vec<Read>,
    /// Every value returned by an `ok` poll.
    pub(crate) read_values: HashSet<Value>,
    /// The highest offset any `ok` poll returned.
    pub(crate) max_polled: Option<Offset>,
    /// `ok` polls that returned at least one record of the key.
    pub(crate) ok_polls: usize,
    /// Whether an `ok` final poll returned records or a high watermark for the key.
    pub(crate) has_final: bool,
    /// The highest high watermark a final-phase poll reported for the key.
    pub(crate) final_hw: Option<Offset>,
    /// The final log: offset -> (value, the poll that read it).
    pub(crate) final_log: BTreeMap<Offset, (Value, OpId)>,
    /// Where the log starts: config override, else the largest start any poll reported, else 0.
    pub(crate) log_start: Offset,
}

/// The shared index.
pub(crate) struct Index<'h> {
    pub(crate) history: &'h History,
    pub(crate) config: &'h CheckConfig,
    pub(crate) keys: BTreeMap<Key, KeyIndex>,
}

impl<'h> Index<'h> {
    pub(crate) fn build(history: &'h History, config: &'h CheckConfig) -> Self {
        let mut ix = Index {
            history,
            config,
            keys: BTreeMap::new(),
        };
        for op in &history.operations {
            match &op.body {
                OpBody::Send { key, value, .. } => {
                    let k = ix.keys.entry(key.clone()).or_default();
                    k.sends.push(op.id);
                    k.send_of.insert(*value, op.id);
                }
                OpBody::Poll(poll) if op.outcome == Outcome::Ok => {
                    let final_read = ix.is_final(op);
                    ix.index_poll(op, poll, final_read);
                }
                OpBody::Assign(assign) => {
                    for key in &assign.keys {
                        ix.keys.entry(key.clone()).or_default();
                    }
                }
                _ => {}
            }
        }
        for (key, start) in &config.log_starts {
            if let Some(k) = ix.keys.get_mut(key) {
                k.log_start = *start;
            }
        }
        ix
    }

    fn index_poll(&mut self, op: &Operation, poll: &PollResult, final_read: bool) {
        let overridden = &self.config.log_starts;
        for (key, start) in &poll.log_starts {
            if !overridden.contains_key(key) {
                let k = self.keys.entry(key.clone()).or_default();
                k.log_start = k.log_start.max(*start);
            }
        }
        for (key, hw) in &poll.high_watermarks {
            let k = self.keys.entry(key.clone()).or_default();
            k.has_final |= final_read;
            if final_read {
                k.final_hw = Some(k.final_hw.map_or(*hw, |h| h.max(*hw)));
            }
        }
        for (key, records) in &poll.reads {
            let k = self.keys.entry(key.clone()).or_default();
            k.has_final |= final_read;
            if !records.is_empty() {
                k.ok_polls += 1;
            }
            for &(offset, value) in records {
                k.reads.push(Read {
                    op: op.id,
                    offset,
                    value,
                    final_read,
                });
                k.read_values.insert(value);
                k.max_polled = Some(k.max_polled.map_or(offset, |m| m.max(offset)));
                if final_read {
                    k.final_log.entry(offset).or_insert((value, op.id));
                }
            }
        }
    }

    /// Whether `op` (a poll) belongs to the final phase.
    pub(crate) fn is_final(&self, op: &Operation) -> bool {
        let flagged = matches!(&op.body, OpBody::Poll(p) if p.final_read);
        flagged || self.config.final_processes.contains(&op.process)
    }

    /// The operation with this id.
    pub(crate) fn op(&self, id: OpId) -> &'h Operation {
        self.history.op(id)
    }

    /// The `ok` sends of a key that reported an offset: `(offset, value, op)`.
    pub(crate) fn acked_sends<'a>(
        &'a self,
        k: &'a KeyIndex,
    ) -> impl Iterator<Item = (Offset, Value, &'h Operation)> + 'a {
        k.sends.iter().filter_map(move |id| {
            let op = self.op(*id);
            match (&op.body, op.outcome) {
                (
                    OpBody::Send {
                        value,
                        offset: Some(offset),
                        ..
                    },
                    Outcome::Ok,
                ) => Some((*offset, *value, op)),
                _ => None,
            }
        })
    }
}

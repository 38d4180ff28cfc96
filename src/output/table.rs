//! Current metric rows, kept from the engine's changes, and the upsert deltas between states.

use std::collections::{BTreeMap, HashMap};

use crate::dataflow::Time;
use crate::engine::Changes;
use crate::metric::{Key, Value};

/// One upsert of OUTPUT.md: `value: None` removes the row, `prev: None` creates it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    pub key: Key,
    pub value: Option<Value>,
    pub prev: Option<Value>,
    pub time: Time,
}

/// The rows as of the last completed time, plus changes waiting for their time to complete.
#[derive(Debug, Default)]
pub struct Table {
    rows: HashMap<Key, Value>,
    pending: BTreeMap<Time, Vec<((Key, Value), isize)>>,
}

impl Table {
    /// Current rows.
    pub fn rows(&self) -> &HashMap<Key, Value> {
        &self.rows
    }

    /// Buffers changes until their time completes.
    pub fn absorb(&mut self, changes: Changes<(Key, Value)>) {
        for (kv, t, d) in changes {
            self.pending.entry(t).or_default().push((kv, d));
        }
    }

    /// Applies every change at times up to `upto`, returning the deltas in time order.
    pub fn complete(&mut self, upto: Time) -> Vec<Delta> {
        let later = self.pending.split_off(&(upto + 1));
        let ready = std::mem::replace(&mut self.pending, later);
        let mut deltas = Vec::new();
        for (time, changes) in ready {
            let mut summed: BTreeMap<(Key, Value), isize> = BTreeMap::new();
            for (kv, diff) in changes {
                *summed.entry(kv).or_insert(0) += diff;
            }
            let mut net: BTreeMap<Key, (Option<Value>, Option<Value>)> = BTreeMap::new();
            for ((key, value), diff) in summed {
                let entry = net.entry(key).or_insert((None, None));
                if diff < 0 {
                    entry.0 = Some(value);
                } else if diff > 0 {
                    entry.1 = Some(value);
                }
            }
            for (key, (_gone, new)) in net {
                let prev = match new {
                    Some(v) => self.rows.insert(key, v),
                    None => self.rows.remove(&key),
                };
                if prev != new {
                    deltas.push(Delta { key, value: new, prev, time });
                }
            }
        }
        deltas
    }
}

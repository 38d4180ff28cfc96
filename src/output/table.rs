//! Keyed state kept from the engine's changes: applied per completed time, with the deltas between.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::dataflow::Time;
use crate::engine::Changes;
use crate::metric::{Key, Value};

/// One upsert of OUTPUT.md: `value: None` removes the row, `prev: None` creates it.
#[derive(Clone, Debug, PartialEq)]
pub struct Change<K, V> {
    pub key: K,
    pub value: Option<V>,
    pub prev: Option<V>,
    pub time: Time,
}

/// A metric row delta.
pub type Delta = Change<Key, Value>;

/// Changes of one time, not yet applied.
type Pending<K, V> = Vec<((K, V), isize)>;

/// A map from keys to their one current value, as of the last completed time, plus changes
/// waiting for their time to complete (they may arrive in any order).
#[derive(Debug)]
pub struct Versioned<K, V> {
    current: HashMap<K, V>,
    pending: BTreeMap<Time, Pending<K, V>>,
}

impl<K, V> Default for Versioned<K, V> {
    fn default() -> Self {
        Versioned {
            current: HashMap::new(),
            pending: BTreeMap::new(),
        }
    }
}

impl<K: Hash + Eq + Ord + Clone, V: Ord + Clone> Versioned<K, V> {
    /// Current entries.
    pub fn current(&self) -> &HashMap<K, V> {
        &self.current
    }

    /// Buffers changes until their time completes.
    pub fn absorb(&mut self, changes: Changes<(K, V)>) {
        for (kv, t, d) in changes {
            self.pending.entry(t).or_default().push((kv, d));
        }
    }

    /// Applies every change at times up to `upto`, returning what changed, in time order.
    pub fn complete(&mut self, upto: Time) -> Vec<Change<K, V>> {
        let later = self.pending.split_off(&(upto + 1));
        let ready = std::mem::replace(&mut self.pending, later);
        let mut out = Vec::new();
        for (time, changes) in ready {
            let mut summed: BTreeMap<(K, V), isize> = BTreeMap::new();
            for (kv, diff) in changes {
                *summed.entry(kv).or_insert(0) += diff;
            }
            // Per key, the value that remains (if any) after this time's changes.
            let mut net: BTreeMap<K, Option<V>> = BTreeMap::new();
            for ((key, value), diff) in summed.into_iter().filter(|(_, d)| *d != 0) {
                let entry = net.entry(key).or_insert(None);
                if diff > 0 {
                    *entry = Some(value);
                }
            }
            for (key, new) in net {
                let prev = match &new {
                    Some(v) => self.current.insert(key.clone(), v.clone()),
                    None => self.current.remove(&key),
                };
                if prev != new {
                    out.push(Change {
                        key,
                        value: new,
                        prev,
                        time,
                    });
                }
            }
        }
        out
    }
}

/// Current metric rows.
pub type Table = Versioned<Key, Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_per_time_whatever_their_arrival_order() {
        let mut t: Versioned<u8, u8> = Versioned::default();
        t.absorb(vec![((1, 20), 2, 1), ((1, 10), 2, -1)]);
        t.absorb(vec![((1, 10), 1, 1), ((2, 5), 1, 1)]);
        t.absorb(vec![((2, 5), 3, -1), ((2, 5), 3, 1)]);
        let changes = t.complete(3);
        assert_eq!(t.current().get(&1), Some(&20));
        assert_eq!(t.current().get(&2), Some(&5));
        let seen: Vec<_> = changes
            .iter()
            .map(|c| (c.key, c.prev, c.value, c.time))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, None, Some(10), 1),
                (2, None, Some(5), 1),
                (1, Some(10), Some(20), 2)
            ]
        );
    }

    #[test]
    fn retraction_alone_removes() {
        let mut t: Versioned<u8, u8> = Versioned::default();
        t.absorb(vec![((1, 10), 1, 1)]);
        t.complete(1);
        t.absorb(vec![((1, 10), 2, -1)]);
        assert!(t.complete(1).is_empty());
        let c = t.complete(2);
        assert_eq!((c[0].prev, c[0].value), (Some(10), None));
        assert!(t.current().is_empty());
    }
}

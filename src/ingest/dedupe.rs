//! The dedupe set: ids of accepted events, with their day, and (where a person can be erased)
//! their time and identity.

use foldhash::HashMap;

use crate::facts::Ident;
use crate::time::Day;

/// What ingest keeps of an accepted event's id where erasure is possible: its time, day and
/// identity (`NO_IDENT` for an event without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub ts: i64,
    pub day: Day,
    pub ident: Ident,
}

/// The identity of events that name none (ad spend, say).
pub const NO_IDENT: Ident = Ident::MAX;

/// Ids of accepted events. A log computed whole keeps only a keyed 128-bit hash of each id,
/// with its day: 20 bytes an entry in the table and nothing on the heap, where the id itself
/// took a heap allocation too. Under a random key, two ids share a hash with a chance of about
/// n^2 / 2^129 (2^-81 for 16M events). `full` keeps the ids and what erasure needs.
#[derive(Debug)]
pub enum Dedupe {
    Days(HashMap<[u8; 16], Day>, [u8; 16]),
    Full(HashMap<Box<str>, Seen>),
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe::Days(HashMap::default(), random_key())
    }
}

/// A random key for [`keyed_hash`]. Without an entropy source it is all zeros: the hashes are
/// then unkeyed, still exact for any log not made to collide with them, and still no readable
/// ids.
pub(super) fn random_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    let _ = getrandom::fill(&mut key);
    key
}

/// SipHash-2-4 (128 bits) of an event id under `key`: the duplicate set's entries in `compute`,
/// and the erased ids that a data directory keeps.
pub(super) fn keyed_hash(key: &[u8; 16], id: &str) -> u128 {
    use siphasher::sip128::{Hasher128, SipHasher24};
    let mut h = SipHasher24::new_with_key(key);
    std::hash::Hasher::write(&mut h, id.as_bytes());
    h.finish128().as_u128()
}

/// [`keyed_hash`] as bytes, so that a table entry with a day takes 20 bytes, not 32.
fn id_hash(key: &[u8; 16], id: &str) -> [u8; 16] {
    keyed_hash(key, id).to_le_bytes()
}

impl Dedupe {
    /// From now on keeps each id's time and identity (call before the first event).
    pub fn full(&mut self) {
        if let Dedupe::Days(days, _) = self {
            if days.is_empty() {
                *self = Dedupe::Full(HashMap::default());
            }
        }
    }

    /// Adds an id; false when it was there already.
    pub fn insert(&mut self, id: &str, ts: i64, day: Day) -> bool {
        use std::collections::hash_map::Entry;
        match self {
            Dedupe::Days(m, key) => match m.entry(id_hash(key, id)) {
                Entry::Occupied(_) => false,
                Entry::Vacant(v) => {
                    v.insert(day);
                    true
                }
            },
            Dedupe::Full(m) => match m.entry(id.into()) {
                Entry::Occupied(_) => false,
                Entry::Vacant(v) => {
                    v.insert(Seen {
                        ts,
                        day,
                        ident: NO_IDENT,
                    });
                    true
                }
            },
        }
    }

    pub fn remove(&mut self, id: &str) {
        match self {
            Dedupe::Days(m, key) => {
                m.remove(&id_hash(key, id));
            }
            Dedupe::Full(m) => {
                m.remove(id);
            }
        }
    }

    /// Notes the identity an accepted event is counted under (kept only by `full`).
    pub fn set_ident(&mut self, id: &str, ident: Ident) {
        if let Dedupe::Full(m) = self {
            if let Some(seen) = m.get_mut(id) {
                seen.ident = ident;
            }
        }
    }

    /// Keeps the ids of days from `day` on.
    pub fn keep_from(&mut self, day: Day) {
        match self {
            Dedupe::Days(m, _) => m.retain(|_, d| *d >= day),
            Dedupe::Full(m) => m.retain(|_, s| s.day >= day),
        }
    }

    /// What `full` keeps (empty otherwise).
    pub fn entries(&self) -> Option<&HashMap<Box<str>, Seen>> {
        match self {
            Dedupe::Days(..) => None,
            Dedupe::Full(m) => Some(m),
        }
    }

    /// What `full` keeps, to change (`None` otherwise).
    pub fn entries_mut(&mut self) -> Option<&mut HashMap<Box<str>, Seen>> {
        match self {
            Dedupe::Days(..) => None,
            Dedupe::Full(m) => Some(m),
        }
    }
}

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

/// Ids of accepted events. A log computed whole keeps only each id's day (8 bytes an entry
/// less, a million events 17 MB less); `full` keeps what erasure needs.
#[derive(Debug)]
pub enum Dedupe {
    Days(HashMap<Box<str>, Day>),
    Full(HashMap<Box<str>, Seen>),
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe::Days(HashMap::default())
    }
}

impl Dedupe {
    /// From now on keeps each id's time and identity (call before the first event).
    pub fn full(&mut self) {
        if let Dedupe::Days(days) = self {
            if days.is_empty() {
                *self = Dedupe::Full(HashMap::default());
            }
        }
    }

    /// Adds an id; false when it was there already.
    pub fn insert(&mut self, id: &str, ts: i64, day: Day) -> bool {
        use std::collections::hash_map::Entry;
        match self {
            Dedupe::Days(m) => match m.entry(id.into()) {
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
            Dedupe::Days(m) => {
                m.remove(id);
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
            Dedupe::Days(m) => m.retain(|_, d| *d >= day),
            Dedupe::Full(m) => m.retain(|_, s| s.day >= day),
        }
    }

    /// What `full` keeps (empty otherwise).
    pub fn entries(&self) -> Option<&HashMap<Box<str>, Seen>> {
        match self {
            Dedupe::Days(_) => None,
            Dedupe::Full(m) => Some(m),
        }
    }

    /// What `full` keeps, to change (`None` otherwise).
    pub fn entries_mut(&mut self) -> Option<&mut HashMap<Box<str>, Seen>> {
        match self {
            Dedupe::Days(_) => None,
            Dedupe::Full(m) => Some(m),
        }
    }
}

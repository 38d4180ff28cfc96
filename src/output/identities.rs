//! Who is who: each identity's person and each person's first event, kept from engine updates.

use std::collections::HashMap;

use crate::engine::Changes;
use crate::facts::{First, Ident, Person};

/// Identity look-up state.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    person_of: HashMap<Ident, Person>,
    firsts: HashMap<Person, First>,
}

fn apply<K: std::hash::Hash + Eq + Copy, V: Clone + Ord>(map: &mut HashMap<K, V>, mut changes: Changes<(K, V)>) {
    // Per time, retractions before insertions, so a changed value ends up present.
    changes.sort_by(|a, b| (a.1, a.2).cmp(&(b.1, b.2)));
    for ((k, v), _t, d) in changes {
        if d < 0 {
            if map.get(&k) == Some(&v) {
                map.remove(&k);
            }
        } else if d > 0 {
            map.insert(k, v);
        }
    }
}

impl IdentityIndex {
    pub fn apply_persons(&mut self, changes: Changes<(Ident, Person)>) {
        apply(&mut self.person_of, changes);
    }

    pub fn apply_firsts(&mut self, changes: Changes<(Person, First)>) {
        apply(&mut self.firsts, changes);
    }

    /// The person of an identity.
    pub fn person(&self, ident: Ident) -> Option<Person> {
        self.person_of.get(&ident).copied()
    }

    /// All identities of a person, sorted.
    pub fn members(&self, person: Person) -> Vec<Ident> {
        let mut out: Vec<Ident> = self.person_of.iter().filter(|(_, p)| **p == person).map(|(i, _)| *i).collect();
        out.sort();
        out
    }

    /// The person's first active event.
    pub fn first(&self, person: Person) -> Option<&First> {
        self.firsts.get(&person)
    }

    /// Number of persons with a first active event.
    pub fn persons(&self) -> usize {
        self.firsts.len()
    }
}

//! Who is who: each identity's person and each person's first event, kept from engine updates.

use std::collections::{BTreeSet, HashMap};

use crate::dataflow::Time;
use crate::engine::Changes;
use crate::facts::{First, Ident, Person};
use crate::output::table::Versioned;

/// Identity look-up state.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    person_of: Versioned<Ident, Person>,
    firsts: Versioned<Person, First>,
    /// Each person's identities.
    members: HashMap<Person, BTreeSet<Ident>>,
}

impl IdentityIndex {
    pub fn absorb_persons(&mut self, changes: Changes<(Ident, Person)>) {
        self.person_of.absorb(changes);
    }

    pub fn absorb_firsts(&mut self, changes: Changes<(Person, First)>) {
        self.firsts.absorb(changes);
    }

    /// Applies everything up to a completed time.
    pub fn complete(&mut self, upto: Time) {
        for change in self.person_of.complete(upto) {
            if let Some(p) = change.prev {
                if let Some(set) = self.members.get_mut(&p) {
                    set.remove(&change.key);
                    if set.is_empty() {
                        self.members.remove(&p);
                    }
                }
            }
            if let Some(p) = change.value {
                self.members.entry(p).or_default().insert(change.key);
            }
        }
        self.firsts.complete(upto);
    }

    /// The person of an identity.
    pub fn person(&self, ident: Ident) -> Option<Person> {
        self.person_of.current().get(&ident).copied()
    }

    /// All identities of a person, sorted.
    pub fn members(&self, person: Person) -> Vec<Ident> {
        self.members
            .get(&person)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The person's first active event.
    pub fn first(&self, person: Person) -> Option<&First> {
        self.firsts.current().get(&person)
    }
}

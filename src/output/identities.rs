//! Who is who: each identity's person and each person's first event, kept from engine updates.

use crate::dataflow::Time;
use crate::engine::Changes;
use crate::facts::{First, Ident, Person};
use crate::output::table::Versioned;

/// Identity look-up state.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    person_of: Versioned<Ident, Person>,
    firsts: Versioned<Person, First>,
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
        self.person_of.complete(upto);
        self.firsts.complete(upto);
    }

    /// The person of an identity.
    pub fn person(&self, ident: Ident) -> Option<Person> {
        self.person_of.current().get(&ident).copied()
    }

    /// All identities of a person, sorted.
    pub fn members(&self, person: Person) -> Vec<Ident> {
        let mut out: Vec<Ident> = self
            .person_of
            .current()
            .iter()
            .filter(|(_, p)| **p == person)
            .map(|(i, _)| *i)
            .collect();
        out.sort();
        out
    }

    /// The person's first active event.
    pub fn first(&self, person: Person) -> Option<&First> {
        self.firsts.current().get(&person)
    }
}

//! Erasure of a person: every fact of every identity linked to one, taken back from the
//! dataflow, so that every row becomes what it would be had the person never sent an event.
//!
//! A person is the connected component of the identity links. Ingest counts every fact under
//! the first identity of its event (all of an event's identities are one person), so taking
//! back the facts of the component's identities takes back exactly the person's events. What
//! is not the person's stays: spend (it names no one) and the counters of what arrived.
//! The event clock is recomputed from the events left (while none has left the dedupe set).
//! Ids of erased events are kept only as keyed hashes: a repeat of one is a duplicate.

use foldhash::{HashMap, HashSet};

use super::dedupe::keyed_hash;
use super::Ingest;
use crate::facts::Ident;

/// What an erasure took away.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// The person's identities, `(type, value)`, as they were.
    pub identities: Vec<(String, String)>,
    /// Accepted events of the person.
    pub events: u64,
}

impl Erased {
    /// The answer of `DELETE /v1/persons/...` and `tidemark erase`.
    pub fn to_json(&self) -> serde_json::Value {
        let identities: Vec<_> = self
            .identities
            .iter()
            .map(|(t, v)| serde_json::json!({"type": t, "value": v}))
            .collect();
        serde_json::json!({"erased": true, "identities": identities, "events": self.events})
    }
}

impl Ingest {
    /// The identities of the person that `(kind, value)` belongs to (with `keep_facts`).
    pub fn person(&mut self, kind: &str, value: &str) -> Option<HashSet<Ident>> {
        let start = self.interner.lookup(kind, value)?;
        Some(component(start, &self.kept.as_ref()?.edges))
    }

    /// Keeps firings of an erased person that had been sent in the campaign rows.
    pub fn keep_sent(&mut self, sent: Vec<crate::facts::SentFiring>) {
        for f in sent {
            *self.sent_firings.entry(f).or_insert(0) += 1;
            self.pending.sent_firings.push((f, 1));
        }
    }

    /// Erases the person that `(kind, value)` belongs to; `None` if no event named it. Needs
    /// `keep_facts` (the facts sent are what is taken back) and an empty pending batch: take
    /// the batch before, and after to send the retractions.
    pub fn erase(&mut self, kind: &str, value: &str) -> Option<Erased> {
        let start = self.interner.lookup(kind, value)?;
        let kept = self.kept.as_mut()?;
        let person = component(start, &kept.edges);
        let dict = self.interner.dictionary();
        let identities = person.iter().filter_map(|&i| dict.ident(i)).collect();
        let p = &mut self.pending;
        let ours = |i: &Ident| person.contains(i);

        p.idents_gone.extend(person.iter().copied());
        p.edges_gone.extend(take(&mut kept.edges, |(a, _)| ours(a)));
        p.triggers_gone
            .extend(take(&mut kept.triggers, |(i, _)| ours(i)));
        p.paid_gone.extend(take(&mut kept.paid, |(i, _)| ours(i)));
        for f in take(&mut self.cap_fired, |(i, _)| ours(i)) {
            p.cap_firings.push((f, -1));
        }
        for (_, scope, mark) in take(&mut kept.cancels, |(i, _, _)| ours(i)) {
            p.marks.push(((scope, mark), -1));
        }
        for steps in kept.steps.values_mut() {
            p.steps_gone.extend(take(steps, |(i, _)| ours(i)));
        }
        kept.steps.retain(|_, s| !s.is_empty());
        self.entry_steps.retain(|(i, _, _), _| !ours(i));
        let mut cents = 0;
        for (&(i, day), &total) in kept.purchases.iter().filter(|((i, _), _)| ours(i)) {
            // `Kept::note` drops the zero totals with the batch.
            p.purchases.push(((i, day), -total));
            cents += total;
        }
        self.money.take_purchases(cents);
        self.hours_sent.retain(|&(i, h)| {
            let keep = !ours(&i);
            if !keep {
                p.hours_gone.push((i, h));
            }
            keep
        });
        self.reps.retain(|&(i, _), &mut (lo, hi)| {
            let keep = !ours(&i);
            if !keep {
                p.hours_gone.push((i, lo));
                if hi != lo {
                    p.hours_gone.push((i, hi));
                }
            }
            keep
        });
        self.anchors.retain(|(i, _), _| !ours(i));
        self.named_sent.retain(|&(i, d, n)| {
            let keep = !ours(&i);
            if !keep {
                p.named_gone.push((i, (d, n)));
            }
            keep
        });
        for &i in &person {
            if let Some(first) = self.firsts.remove(&i) {
                p.firsts.push(((i, first), -1));
            }
        }
        self.day_firsts.retain(|&(i, day), &mut ts| {
            let keep = !ours(&i);
            if !keep {
                p.day_firsts.push(((i, (day, ts)), -1));
            }
            keep
        });
        self.goals
            .retain(|(rule, scope, bucket, by), (first, last)| {
                let theirs = ours(by);
                if theirs {
                    let mark = crate::facts::Mark::Goals {
                        rule: *rule,
                        bucket: *bucket,
                        first: first.clone(),
                        last: last.clone(),
                    };
                    p.marks.push(((scope.clone(), mark), -1));
                }
                !theirs
            });
        let events = person
            .iter()
            .filter_map(|i| self.events.remove(i))
            .map(u64::from)
            .sum();
        // What ingest holds no longer counts them; their repeats will count as duplicates.
        self.counts.accepted = self.counts.accepted.saturating_sub(events);
        self.forget_ids(&person);
        for &i in &person {
            self.interner.forget(i);
        }
        Some(Erased { identities, events })
    }

    /// Moves the ids of the person's events out of the dedupe set into the erased hashes, and
    /// recomputes the clocks from the events left.
    fn forget_ids(&mut self, person: &HashSet<Ident>) {
        let key = *self.erase_key.get_or_insert_with(super::dedupe::random_key);
        let Some(seen) = self.seen.entries_mut() else {
            return;
        };
        let mut erased = Vec::new();
        seen.retain(|id, seen| {
            let keep = !person.contains(&seen.ident);
            if !keep {
                erased.push(keyed_hash(&key, id));
            }
            keep
        });
        self.erased_ids.extend(erased);
        // Pruned ids took their times with them: the clock is then the latest left (the
        // horizon keeps the latest events), and the earliest time cannot be recomputed.
        let latest = seen.values().map(|s| s.ts).max();
        let earliest = seen.values().map(|s| s.ts).min();
        if latest.is_some() || self.pruned.is_none() {
            let before = self.clock;
            if before != latest {
                self.clock_before.get_or_insert(before);
                if self.now == before {
                    self.now_before.get_or_insert(before);
                    self.now = latest;
                }
                self.clock = latest;
                self.clock_moved();
            }
        }
        if self.pruned.is_none() && self.earliest != earliest {
            self.earliest_before.get_or_insert(self.earliest);
            self.earliest = earliest;
        }
    }

    /// True when `id` is the id of an erased event.
    pub(super) fn was_erased(&self, id: &str) -> bool {
        self.erase_key
            .is_some_and(|key| self.erased_ids.contains(&keyed_hash(&key, id)))
    }
}

/// The identities linked to `start`, directly or not.
fn component(start: Ident, edges: &[(Ident, Ident)]) -> HashSet<Ident> {
    let mut next: HashMap<Ident, Vec<Ident>> = HashMap::default();
    for &(a, b) in edges {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default().push(a);
    }
    let mut person = HashSet::default();
    person.insert(start);
    let mut todo = vec![start];
    while let Some(i) = todo.pop() {
        for &j in next.get(&i).into_iter().flatten() {
            if person.insert(j) {
                todo.push(j);
            }
        }
    }
    person
}

/// Removes and returns the items that `theirs` picks.
fn take<T>(items: &mut Vec<T>, mut theirs: impl FnMut(&T) -> bool) -> Vec<T> {
    let (gone, kept) = std::mem::take(items).into_iter().partition(|t| theirs(t));
    *items = kept;
    gone
}

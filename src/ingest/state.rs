//! What ingest holds, as a checkpoint keeps it: enough to carry on exactly where it was, and to
//! rebuild the dataflow's whole input from, without reading any event again.

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::{Counts, GoalKey, GoalSpan, Ingest, MoneyTotals, Seen, NO_IDENT};
use crate::event::Reason;
use crate::facts::{ChannelId, FactBatch, First, Ident, Mark, NameId, Scope, Step, Trigger};
use crate::metric::{Key, Value};
use crate::time::{Calendar, Day, Hour, Month};

/// Facts that ingest does not otherwise keep, kept so that a checkpoint can rebuild the
/// dataflow's input (only when asked, in `serve` with a data directory).
#[derive(Clone, Debug, Default)]
pub(super) struct Kept {
    pub(super) edges: Vec<(Ident, Ident)>,
    /// Funnel steps by their day (so that a sealed day's steps can be retired).
    pub(super) steps: BTreeMap<Day, Vec<(Ident, Step)>>,
    pub(super) purchases: HashMap<(Ident, Day), i64>,
    spend: HashMap<(Day, ChannelId), i64>,
    pub(super) triggers: Vec<(Ident, Trigger)>,
    /// Rule cancels with the identity of their event (ingest adds them as it makes them).
    pub(super) cancels: Vec<(Ident, Scope<Ident>, Mark)>,
    pub(super) paid: Vec<(Ident, (i64, i64))>,
}

impl Kept {
    /// Adds what a batch sends to the dataflow.
    pub(super) fn note(&mut self, batch: &FactBatch, cal: &Calendar) {
        self.edges.extend_from_slice(&batch.edges);
        for step in &batch.steps {
            let day = cal.day(step.1.ts);
            self.steps.entry(day).or_default().push(step.clone());
        }
        // Entry steps replaced by an earlier one (retired and erased steps left already).
        for gone in &batch.steps_gone {
            if let Some(steps) = self.steps.get_mut(&cal.day(gone.1.ts)) {
                if let Some(at) = steps.iter().position(|s| s == gone) {
                    steps.swap_remove(at);
                }
            }
        }
        for (k, cents) in &batch.purchases {
            let total = self.purchases.entry(*k).or_insert(0);
            *total += cents;
            if *total == 0 {
                self.purchases.remove(k);
            }
        }
        for (k, cents) in &batch.spend {
            *self.spend.entry(*k).or_insert(0) += cents;
        }
        self.triggers.extend(batch.triggers.iter().cloned());
        self.paid.extend_from_slice(&batch.paid);
    }
}

/// Everything ingest holds, in a form that serialises.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IngestState {
    idents: Vec<(String, String)>,
    /// Channel labels after `(none)`, in id order.
    channels: Vec<String>,
    seen: Vec<(String, Seen)>,
    events: Vec<(Ident, u32)>,
    erased_ids: Vec<u128>,
    erase_key: Option<[u8; 16]>,
    sent_firings: Vec<(crate::facts::SentFiring, u64)>,
    /// Retired rule facts (see `retire_rules`): how far, the retired keys of `match` rules
    /// by rule, and the retired firings that caps still count.
    rules_retired: Option<i64>,
    retired_keys: Vec<Vec<crate::facts::Text>>,
    cap_fired: Vec<(Ident, crate::facts::CapFiring)>,
    hours: Vec<(Ident, Hour)>,
    named: Vec<(Ident, Day, NameId)>,
    firsts: Vec<(Ident, First)>,
    clock: Option<i64>,
    now: Option<i64>,
    earliest: Option<i64>,
    day_firsts: Vec<((Ident, Day), i64)>,
    goals: Vec<(GoalKey, GoalSpan)>,
    accepted: u64,
    duplicates: u64,
    rejected: Vec<(String, u64)>,
    money: (i64, i64),
    edges: Vec<(Ident, Ident)>,
    steps: Vec<(Ident, Step)>,
    purchases: Vec<((Ident, Day), i64)>,
    spend: Vec<((Day, ChannelId), i64)>,
    triggers: Vec<(Ident, Trigger)>,
    cancels: Vec<(Ident, Scope<Ident>, Mark)>,
    paid: Vec<(Ident, (i64, i64))>,
    /// The sealed day (see `retire`), and what was retired before it.
    sealed: Option<Day>,
    retired: Option<Day>,
    pruned: Option<Day>,
    reps: Vec<((Ident, Month), (Hour, Hour))>,
    anchors: Vec<((Ident, Month), Day)>,
    /// Rows of sealed days, as they were when sealed (the output's, not ingest's).
    frozen: Vec<(Key, Value)>,
}

impl IngestState {
    /// Events accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Event ids kept for dedupe, and `(identity, hour)` facts kept in full (not retired).
    pub fn kept_sizes(&self) -> (usize, usize) {
        (self.seen.len(), self.hours.len())
    }

    /// Rule triggers and retired firings that caps count, kept in full (not retired).
    pub fn kept_rule_sizes(&self) -> (usize, usize) {
        (self.triggers.len(), self.cap_fired.len())
    }

    /// Rule facts final before this time (less each rule's wait and goal window) are retired.
    pub fn rules_retired(&self) -> Option<i64> {
        self.rules_retired
    }

    /// The sealed day: rows of earlier days are final.
    pub fn sealed(&self) -> Option<Day> {
        self.sealed
    }

    /// Sets the final rows of sealed days, which only the output holds.
    pub fn set_frozen(&mut self, rows: Vec<(Key, Value)>) {
        self.frozen = rows;
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Why a state cannot be taken or used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("ingest keeps no copy of its facts; call keep_facts() before the first event")]
    NotKept,
    #[error("the checkpoint names identity #{0} out of order; it is damaged")]
    Order(usize),
}

impl Ingest {
    /// From now on, keeps a copy of the facts sent to the dataflow, so that `state` can be
    /// taken. Call before the first event.
    pub fn keep_facts(&mut self) {
        self.kept.get_or_insert_with(Kept::default);
        self.seen.full();
    }

    /// Everything ingest holds. The pending batch must have been taken (`take_batch`).
    pub fn state(&self) -> Result<IngestState, StateError> {
        let kept = self.kept.as_ref().ok_or(StateError::NotKept)?;
        let dict = self.interner.dictionary();
        Ok(IngestState {
            idents: (0..dict.ident_count())
                .map_while(|i| Ident::try_from(i).ok())
                .map(|i| dict.ident(i).unwrap_or_default())
                .collect(),
            channels: (1..dict.channel_count())
                .map_while(|c| ChannelId::try_from(c).ok())
                .map(|c| dict.channel(c))
                .collect(),
            seen: self
                .seen
                .entries()
                .into_iter()
                .flatten()
                .map(|(s, d)| (s.to_string(), *d))
                .collect(),
            events: sorted(self.events.iter().map(|(i, n)| (*i, *n)).collect()),
            erased_ids: sorted(self.erased_ids.iter().copied().collect()),
            erase_key: self.erase_key,
            sent_firings: sorted(self.sent_firings.iter().map(|(f, n)| (*f, *n)).collect()),
            rules_retired: self.rules_retired,
            retired_keys: self
                .retired_keys
                .iter()
                .map(|keys| sorted(keys.iter().cloned().collect()))
                .collect(),
            cap_fired: self.cap_fired.clone(),
            hours: sorted(self.hours_sent.iter().copied().collect()),
            named: sorted(self.named_sent.iter().copied().collect()),
            firsts: sorted(self.firsts.iter().map(|(i, f)| (*i, f.clone())).collect()),
            clock: self.clock,
            now: self.now,
            earliest: self.earliest,
            day_firsts: sorted(self.day_firsts.iter().map(|(k, v)| (*k, *v)).collect()),
            goals: sorted(
                self.goals
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            accepted: self.counts.accepted,
            duplicates: self.counts.duplicates,
            rejected: self
                .counts
                .rejected
                .iter()
                .map(|(r, n)| (r.to_string(), *n))
                .collect(),
            money: self.money.parts(),
            edges: kept.edges.clone(),
            steps: kept.steps.values().flatten().cloned().collect(),
            purchases: sorted(kept.purchases.iter().map(|(k, v)| (*k, *v)).collect()),
            spend: sorted(kept.spend.iter().map(|(k, v)| (*k, *v)).collect()),
            triggers: kept.triggers.clone(),
            cancels: kept.cancels.clone(),
            paid: kept.paid.clone(),
            sealed: self.sealed,
            retired: self.retired,
            pruned: self.pruned,
            reps: sorted(self.reps.iter().map(|(k, v)| (*k, *v)).collect()),
            anchors: sorted(self.anchors.iter().map(|(k, v)| (*k, *v)).collect()),
            frozen: Vec::new(),
        })
    }

    /// Carries on from `state`: the ingest it held, keeping facts, and the one batch that
    /// gives the dataflow its whole input.
    pub fn restore(mut self, state: IngestState) -> Result<(Ingest, FactBatch), StateError> {
        for (n, (kind, value)) in state.idents.iter().enumerate() {
            let id = if value.is_empty() {
                self.interner.erased(kind)
            } else {
                self.interner.ident(kind, value).0
            };
            if id == NO_IDENT || id as usize != n {
                return Err(StateError::Order(n));
            }
        }
        for label in &state.channels {
            self.interner.channel(label);
        }
        self.seen = super::dedupe::Dedupe::Full(
            state
                .seen
                .into_iter()
                .map(|(s, d)| (s.into_boxed_str(), d))
                .collect(),
        );
        self.events = state.events.iter().copied().collect();
        self.erased_ids = state.erased_ids.iter().copied().collect();
        self.erase_key = state.erase_key;
        self.sent_firings = state.sent_firings.iter().copied().collect();
        self.rules_retired = state.rules_retired;
        self.retired_keys = state
            .retired_keys
            .iter()
            .map(|keys| keys.iter().cloned().collect())
            .collect();
        self.cap_fired = state.cap_fired.clone();
        self.sealed = state.sealed;
        self.retired = state.retired;
        self.pruned = state.pruned;
        self.reps = state.reps.iter().copied().collect();
        self.anchors = state.anchors.iter().copied().collect();
        self.hours_sent = state.hours.iter().copied().collect();
        self.named_sent = state.named.iter().copied().collect();
        self.firsts = state.firsts.iter().cloned().collect();
        let cal = &self.plan.config.calendar;
        for (ident, step) in &state.steps {
            if !self.plan.class_of(step.name).funnel_entry_only {
                continue;
            }
            let entry = (step.ts, step.id.clone());
            self.entry_steps
                .entry((*ident, cal.day(step.ts), step.name))
                .and_modify(|earliest| {
                    if entry < *earliest {
                        *earliest = entry.clone();
                    }
                })
                .or_insert(entry);
        }
        self.clock = state.clock;
        self.clock_moved();
        self.now = state.now;
        self.earliest = state.earliest;
        self.day_firsts = state.day_firsts.iter().copied().collect();
        self.goals = state.goals.iter().cloned().collect();
        self.counts = Counts {
            accepted: state.accepted,
            duplicates: state.duplicates,
            rejected: state
                .rejected
                .iter()
                .filter_map(|(r, n)| {
                    Reason::ALL
                        .iter()
                        .find(|x| x.as_str() == r)
                        .map(|x| (x.as_str(), *n))
                })
                .collect(),
        };
        self.money = MoneyTotals::from_parts(state.money);
        // The hours kept of retired days stand beside those not retired.
        let mut hours = state.hours;
        for ((ident, _), (lo, hi)) in &state.reps {
            hours.push((*ident, *lo));
            if hi != lo {
                hours.push((*ident, *hi));
            }
        }
        let mut batch = FactBatch {
            idents: (0..state.idents.len())
                .filter(|&i| !state.idents[i].1.is_empty())
                .map_while(|i| Ident::try_from(i).ok())
                .collect(),
            edges: state.edges.clone(),
            hours,
            firsts: state.firsts.into_iter().map(|f| (f, 1)).collect(),
            named: state
                .named
                .into_iter()
                .map(|(i, d, n)| (i, (d, n)))
                .collect(),
            steps: state.steps.clone(),
            purchases: state.purchases.clone(),
            spend: state.spend.clone(),
            clock: state.clock.map(|c| (None, Some(c))),
            now: state.now.map(|c| (None, Some(c))),
            earliest: state.earliest.map(|c| (None, Some(c))),
            triggers: state.triggers.clone(),
            marks: state
                .cancels
                .iter()
                .map(|(_, scope, mark)| ((scope.clone(), mark.clone()), 1))
                .collect(),
            paid: state.paid.clone(),
            day_firsts: state
                .day_firsts
                .into_iter()
                .map(|((i, d), ts)| ((i, (d, ts)), 1))
                .collect(),
            seal: state.sealed.map(|s| (None, s)),
            frozen: state.frozen,
            sent_firings: state
                .sent_firings
                .iter()
                .map(|(f, n)| (*f, isize::try_from(*n).unwrap_or(isize::MAX)))
                .collect(),
            cap_firings: state.cap_fired.into_iter().map(|f| (f, 1)).collect(),
            ..FactBatch::default()
        };
        for ((rule, scope, bucket, _), (first, last)) in state.goals {
            let mark = Mark::Goals {
                rule,
                bucket,
                first,
                last,
            };
            batch.marks.push(((scope, mark), 1));
        }
        let mut kept = Kept::default();
        kept.note(&batch, &self.plan.config.calendar);
        kept.cancels = state.cancels;
        self.kept = Some(kept);
        Ok((self, batch))
    }
}

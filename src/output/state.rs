//! Everything the engine has reported, applied per completed time: rows (published to
//! subscribers), identities, firings, verdicts and alerts, and the changes actions act on.

use std::collections::BTreeMap;

use crate::dataflow::{AlertRecord, AlertStatus, Firing, Time, Transition, Verdict};
use crate::engine::Update;
use crate::facts::{Ident, RuleId};
use crate::metric::Labeler;
use crate::output::{Change, Delta, Hub, IdentityIndex, Table, Versioned};

/// Messages a subscriber's queue holds beyond its initial snapshot.
pub const SUBSCRIBER_QUEUE: usize = 4096;

/// A rule and key: what a firing is identified by.
pub type FiringKey = (RuleId, crate::facts::Text);

/// Changes of one completed time that actions act on.
#[derive(Debug, Default)]
pub struct ActionChanges {
    pub firings: Vec<Change<FiringKey, Firing>>,
    pub transitions: Vec<Change<(u16, i32), Transition>>,
}

/// What the engine has reported so far.
pub struct Output {
    pub table: Table,
    /// Rule firings whose release time has come, by rule and key.
    pub firings: Versioned<FiringKey, Firing>,
    /// Every counted trigger's verdict, by rule and key (with `track_verdicts`).
    pub verdicts: Versioned<FiringKey, Verdict>,
    /// Alert transitions, by alert and bucket.
    pub transitions: Versioned<(u16, i32), Transition>,
    /// Each alert's last judged bucket and state.
    pub alert_status: Versioned<u16, AlertStatus>,
    pub identities: IdentityIndex,
    pub guarded: BTreeMap<Ident, u32>,
    pub progress: u64,
    pub deltas: Vec<Delta>,
    pub(crate) keep_deltas: bool,
    /// Firing and transition changes not yet taken by `take_actions` (kept once asked for).
    actions: Option<ActionChanges>,
    /// Live subscribers of row changes.
    pub hub: Hub,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            table: Table::default(),
            firings: Versioned::default(),
            verdicts: Versioned::default(),
            transitions: Versioned::default(),
            alert_status: Versioned::default(),
            identities: IdentityIndex::default(),
            guarded: BTreeMap::new(),
            progress: 0,
            deltas: Vec::new(),
            keep_deltas: false,
            actions: None,
            hub: Hub::new(SUBSCRIBER_QUEUE),
        }
    }
}

impl Output {
    /// From now on, keeps the firing and transition changes for `take_actions`.
    pub fn keep_actions(&mut self) {
        self.actions.get_or_insert_with(ActionChanges::default);
    }

    /// Whether firing and transition changes are kept for `take_actions`.
    pub fn keeps_actions(&self) -> bool {
        self.actions.is_some()
    }

    /// The firing and transition changes completed since the last call.
    pub fn take_actions(&mut self) -> ActionChanges {
        self.actions
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Takes in one engine update; a progress mark applies and publishes what it completes.
    pub fn absorb(&mut self, update: Update, labeler: &Labeler) {
        match update {
            Update::Rows(changes) => self.table.absorb(changes),
            Update::Firings(changes) => self.firings.absorb(
                changes
                    .into_iter()
                    .map(|(f, t, d)| (((f.rule, f.key.clone()), f), t, d))
                    .collect(),
            ),
            Update::Verdicts(changes) => self.verdicts.absorb(
                changes
                    .into_iter()
                    .map(|(v, t, d)| (((v.candidate.rule, v.candidate.key.clone()), v), t, d))
                    .collect(),
            ),
            Update::Alerts(changes) => {
                let (mut transitions, mut statuses) = (Vec::new(), Vec::new());
                for (r, t, d) in changes {
                    match r {
                        AlertRecord::Transition(x) => {
                            transitions.push((((x.alert, x.bucket), x), t, d))
                        }
                        AlertRecord::Status(s) => statuses.push(((s.alert, s), t, d)),
                    }
                }
                self.transitions.absorb(transitions);
                self.alert_status.absorb(statuses);
            }
            Update::Persons(changes) => self.identities.absorb_persons(changes),
            Update::Firsts(changes) => self.identities.absorb_firsts(changes),
            Update::Guarded(changes) => {
                for ((ident, links), _, diff) in changes {
                    if diff > 0 {
                        tracing::warn!(ident, links, "identity stopped linking: too many links");
                        self.guarded.insert(ident, links);
                    } else if self.guarded.get(&ident) == Some(&links) {
                        self.guarded.remove(&ident);
                    }
                }
            }
            Update::Progress(t) => self.complete(t, labeler),
            // Notes are the pipeline's (`Pipeline::poll`).
            Update::Notes(_) => {}
        }
    }

    fn complete(&mut self, t: Time, labeler: &Labeler) {
        self.identities.complete(t);
        self.verdicts.complete(t);
        self.alert_status.complete(t);
        let firings = self.firings.complete(t);
        let transitions = self.transitions.complete(t);
        if let Some(actions) = self.actions.as_mut() {
            actions.firings.extend(firings);
            actions.transitions.extend(transitions);
        }
        let deltas = self.table.complete(t);
        let table = &self.table;
        self.hub
            .publish(&deltas, t, || table.current().iter(), labeler);
        if self.keep_deltas {
            self.deltas.extend(deltas);
        }
        self.progress = t;
    }
}

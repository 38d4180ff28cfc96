//! The edge: parse and validate lines, drop duplicates, count, and turn events into fact batches.

mod dedupe;
mod dict;
mod erase;
mod money;
mod retire;
mod retire_rules;
mod state;

pub use dedupe::{Seen, NO_IDENT};
pub use dict::{Dictionary, Interner};
pub use erase::Erased;
pub use money::MoneyTotals;
pub use retire_rules::{rule_bounds, Decided, DecidedFirings};
pub use state::{IngestState, StateError};

use std::collections::BTreeMap;

use foldhash::{HashMap, HashSet};

use std::sync::Arc;

use crate::event::{parse_event, Event, Limits, Reason, Rejection};
use crate::facts::{
    goal_bucket_ms, FactBatch, First, Ident, Mark, NameId, RuleId, Scope, Step, Text, Trigger,
    NO_CHANNEL,
};
use crate::plan::{Plan, RuleRole};
use crate::time::{Day, Hour};

/// What happened to one input event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The event counts from now on.
    Accepted,
    /// An event with this id was accepted before; this one changes nothing.
    Duplicate,
    /// The event was refused, and why; it changes nothing.
    Rejected(Rejection),
}

/// Running counts of what ingest saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events accepted.
    pub accepted: u64,
    /// Events whose id was accepted before.
    pub duplicates: u64,
    /// Rejected inputs by reason name.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Rejected inputs of every reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// A rule's goal span: rule, scope, bucket and the identity of the events (a `match` key's
/// spans are kept per identity, so that erasing one takes back exactly its events).
type GoalKey = (RuleId, Scope<Ident>, i64, Ident);
type GoalSpan = ((i64, crate::facts::Text), (i64, crate::facts::Text));

/// Stateful ingest: dedupe set, interning, per-identity first events and the clock.
pub struct Ingest {
    plan: Arc<Plan>,
    limits: Limits,
    interner: Interner,
    /// Ids of accepted events, with their time and identity (pruned once the day is sealed).
    seen: dedupe::Dedupe,
    /// Accepted events per identity (the identity events are counted under: their first).
    events: HashMap<Ident, u32>,
    /// Keyed hashes of the ids of erased events: a repeat of one is a duplicate.
    erased_ids: HashSet<u128>,
    /// The key of those hashes, made at the first erasure.
    erase_key: Option<[u8; 16]>,
    /// Firings kept in the campaign rows under no identity: erased persons' that had been
    /// sent, and retired ones (one per rule, day of release, group and conversion), counted.
    sent_firings: HashMap<crate::facts::SentFiring, u64>,
    /// Live use: rule facts final before this time (per rule, less its wait and goal window)
    /// have been retired (`retire_rules`).
    rules_retired: Option<i64>,
    /// Live use: per `match` rule, the keys of retired triggers (a later trigger of one is
    /// never the key's earliest).
    retired_keys: Vec<HashSet<crate::facts::Text>>,
    /// Live use: retired firings that later triggers' caps still count.
    cap_fired: Vec<(Ident, crate::facts::CapFiring)>,
    /// Live use: how late an event may be, before the event clock.
    horizon_ms: Option<i64>,
    /// Live use: the first day an event may still land on, by the horizon and the clock.
    edge: Option<Day>,
    /// Live use: the sealed day of the pending batch (see `retire`).
    sealed: Option<Day>,
    /// Live use: facts of days before this have been retired.
    retired: Option<Day>,
    /// Live use: ids of days before this have left the dedupe set.
    pruned: Option<Day>,
    /// Live use: first and last active hour per identity and month of retired days.
    reps: retire::Reps,
    /// Live use: the day each identity's purchases of a retired month are folded into.
    anchors: retire::Anchors,
    /// `(identity, hour)` pairs already sent: the dataflow keeps only whether a pair occurred,
    /// so a repeat would only cost it work (ten events per pair in a typical log).
    hours_sent: HashSet<(Ident, Hour)>,
    /// `(identity, day, name)` of ratio events already sent, for the same reason.
    named_sent: HashSet<(Ident, Day, NameId)>,
    /// The earliest `(ts, id)` per identity, day and name of the steps funnels only enter by
    /// (`entry_step`): the only ones of those sent.
    entry_steps: HashMap<(Ident, Day, NameId), (i64, Text)>,
    firsts: HashMap<Ident, First>,
    /// Identities whose first event changed in the pending batch, with the value before.
    first_dirty: HashMap<Ident, Option<First>>,
    clock: Option<i64>,
    clock_before: Option<Option<i64>>,
    /// The clock of rules and alerts: the event clock, or later when the caller says so.
    now: Option<i64>,
    now_before: Option<Option<i64>>,
    earliest: Option<i64>,
    earliest_before: Option<Option<i64>>,
    /// Earliest active event time per identity and day (kept only when rules read active days).
    day_firsts: HashMap<(Ident, Day), i64>,
    day_dirty: HashMap<(Ident, Day), Option<i64>>,
    /// First and last goal event `(ts, id)` per rule, scope and goal bucket.
    goals: HashMap<GoalKey, GoalSpan>,
    goal_dirty: HashMap<GoalKey, Option<GoalSpan>>,
    pending: FactBatch,
    counts: Counts,
    money: MoneyTotals,
    /// A copy of the facts sent, for checkpoints (see `keep_facts`).
    kept: Option<state::Kept>,
}

impl Ingest {
    pub fn new(plan: Arc<Plan>, dict: Arc<Dictionary>) -> Self {
        Ingest {
            limits: Limits::from_config(&plan.config),
            plan,
            interner: Interner::new(dict),
            seen: dedupe::Dedupe::default(),
            events: HashMap::default(),
            erased_ids: HashSet::default(),
            erase_key: None,
            sent_firings: HashMap::default(),
            rules_retired: None,
            retired_keys: Vec::new(),
            cap_fired: Vec::new(),
            horizon_ms: None,
            edge: None,
            sealed: None,
            retired: None,
            pruned: None,
            reps: HashMap::default(),
            anchors: HashMap::default(),
            hours_sent: HashSet::default(),
            named_sent: HashSet::default(),
            entry_steps: HashMap::default(),
            firsts: HashMap::default(),
            first_dirty: HashMap::default(),
            clock: None,
            clock_before: None,
            now: None,
            now_before: None,
            earliest: None,
            earliest_before: None,
            day_firsts: HashMap::default(),
            day_dirty: HashMap::default(),
            goals: HashMap::default(),
            goal_dirty: HashMap::default(),
            pending: FactBatch::default(),
            counts: Counts::default(),
            money: MoneyTotals::default(),
            kept: None,
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Live use: reject events stamped more than `max_future_ms` after the wall clock.
    pub fn reject_future(&mut self, max_future_ms: i64) {
        self.limits.max_future_ms = Some(max_future_ms);
    }

    /// Live use: reject events stamped earlier than the event clock minus `horizon_ms` as
    /// `beyond_horizon` (before dedupe: such an event is never looked up or kept), and keep
    /// state bounded: seal the days beyond the horizon and retire their facts (`retire`).
    /// Call before the first event; the pipeline must end a batch when `wants_cut` says so.
    pub fn reject_beyond(&mut self, horizon_ms: i64) {
        self.horizon_ms = Some(horizon_ms);
        self.clock_moved();
        self.keep_facts();
    }

    /// Counts an outcome decided earlier and kept in the data directory's log (a duplicate or
    /// a rejection), `n` times, while the log is read back at start.
    pub fn recount(&mut self, reason: &str, n: u64) {
        if reason == "duplicate" {
            self.counts.duplicates += n;
        } else if let Some(r) = Reason::ALL.iter().find(|r| r.as_str() == reason) {
            *self.counts.rejected.entry(r.as_str()).or_insert(0) += n;
        }
    }

    /// Largest accepted event time so far.
    pub fn clock(&self) -> Option<i64> {
        self.clock
    }

    /// Moves the clock of rules and alerts to at least `ms` (the wall clock, in `serve`); it
    /// never goes back and never falls behind the event clock.
    pub fn advance_now(&mut self, ms: i64) {
        self.move_now(ms);
    }

    fn move_now(&mut self, ms: i64) {
        if self.now.is_none_or(|n| ms > n) {
            if self.now_before.is_none() {
                self.now_before = Some(self.now);
            }
            self.now = Some(ms);
        }
    }

    /// The clock of rules and alerts.
    pub fn now(&self) -> Option<i64> {
        self.now
    }

    /// Id of an identity, if ingest has seen it.
    pub fn lookup(&mut self, kind: &str, value: &str) -> Option<Ident> {
        self.interner.lookup(kind, value)
    }

    /// Validates one event's JSON text and, when it is new and valid, adds its facts to the pending batch.
    pub fn offer(&mut self, text: &str) -> Outcome {
        match parse_event(text, &self.limits) {
            Err(r) => self.reject(r),
            Ok(ev) => self.accept(ev),
        }
    }

    /// Counts a rejection made elsewhere (for example a transport-level problem).
    pub fn reject(&mut self, r: Rejection) -> Outcome {
        *self.counts.rejected.entry(r.reason.as_str()).or_insert(0) += 1;
        Outcome::Rejected(r)
    }

    /// Adds one validated event, unless its id was accepted before.
    pub fn accept(&mut self, ev: Event<'_>) -> Outcome {
        self.roll_seal();
        if let (Some(h), Some(c)) = (self.horizon_ms, self.clock) {
            if ev.ts < c.saturating_sub(h) {
                return self.reject(Rejection::new(
                    Reason::BeyondHorizon,
                    format!(
                        "stamped more than serve.horizon ({} h) before the latest event; raise serve.horizon to take events this late",
                        h / 3_600_000
                    ),
                ));
            }
        }
        let hour = self.plan.config.calendar.hour(ev.ts);
        // One hash and probe per event; the key is built even for the rare duplicate.
        let day = crate::time::hour_day(hour);
        if !self.seen.insert(&ev.id, ev.ts, day) {
            self.counts.duplicates += 1;
            return Outcome::Duplicate;
        }
        if !self.erased_ids.is_empty() && self.was_erased(&ev.id) {
            self.seen.remove(&ev.id);
            self.counts.duplicates += 1;
            return Outcome::Duplicate;
        }
        if ev.amount.is_some() {
            if let Err(r) = self.money.add(&self.plan.class(&ev.name), ev.amount) {
                self.seen.remove(&ev.id);
                return self.reject(r);
            }
        }
        self.counts.accepted += 1;
        let anchor = self.apply(&ev, hour);
        // Only what ingest can erase from (it keeps its facts) needs the event's identity.
        if let (Some(anchor), Some(_)) = (anchor, &self.kept) {
            *self.events.entry(anchor).or_insert(0) += 1;
            self.seen.set_ident(&ev.id, anchor);
        }
        Outcome::Accepted
    }

    /// Sends a step that funnels only enter by if it is its identity's earliest of the day so
    /// far, taking back the one it replaces: a person's entry of a day is the earliest of its
    /// identities' earliest, and the events after it are not needed to find it.
    fn entry_step(&mut self, anchor: Ident, day: Day, name: NameId, ts: i64, id: &str) {
        let key = (anchor, day, name);
        if let Some((t, i)) = self.entry_steps.get(&key) {
            if (ts, id) >= (*t, &**i) {
                return;
            }
        }
        let id = Text::from(id);
        if let Some((ts, id)) = self.entry_steps.insert(key, (ts, id.clone())) {
            self.pending.steps_gone.push((anchor, Step { ts, id, name }));
        }
        self.pending.steps.push((anchor, Step { ts, id, name }));
    }

    /// Adds an accepted event's facts; returns the identity they are counted under.
    fn apply(&mut self, ev: &Event<'_>, hour: Hour) -> Option<Ident> {
        let class = self.plan.class(&ev.name);
        let day = crate::time::hour_day(hour);
        if self.clock.is_none_or(|c| ev.ts > c) {
            if self.clock_before.is_none() {
                self.clock_before = Some(self.clock);
            }
            self.clock = Some(ev.ts);
            self.clock_moved();
        }
        self.move_now(ev.ts);
        if self.earliest.is_none_or(|e| ev.ts < e) {
            if self.earliest_before.is_none() {
                self.earliest_before = Some(self.earliest);
            }
            self.earliest = Some(ev.ts);
        }
        let channel = ev.channel.as_deref().map(|c| self.interner.channel(c));
        if class.spend {
            if let (Some(cents), Some(ch)) = (ev.amount, channel) {
                self.pending.spend.push(((day, ch), cents));
            }
        }
        let mut anchor: Option<Ident> = None;
        for (kind, value) in &ev.ids {
            let (id, new) = self.interner.ident(kind, value);
            if id == NO_IDENT {
                continue;
            }
            if new {
                self.pending.idents.push(id);
            }
            match anchor {
                None => anchor = Some(id),
                Some(a) if a != id => self.pending.edges.push((a, id)),
                Some(_) => {}
            }
        }
        let anchor = anchor?;
        if !class.excluded {
            if self.hours_sent.insert((anchor, hour)) {
                self.pending.hours.push((anchor, hour));
            }
            let current = self.firsts.get(&anchor);
            if current.is_none_or(|c| (ev.ts, ev.id.as_ref()) < (c.ts, c.id.as_str())) {
                let candidate = First {
                    ts: ev.ts,
                    id: ev.id.to_string(),
                    channel: channel.unwrap_or(NO_CHANNEL),
                };
                let before = self.firsts.insert(anchor, candidate);
                self.first_dirty.entry(anchor).or_insert(before);
            }
            if self.plan.rules_need_days {
                let entry = self.day_firsts.get(&(anchor, day)).copied();
                if entry.is_none_or(|t| ev.ts < t) {
                    self.day_firsts.insert((anchor, day), ev.ts);
                    self.day_dirty.entry((anchor, day)).or_insert(entry);
                }
            }
        }
        if self.plan.rules_need_paid && class.purchase {
            if let Some(cents) = ev.amount {
                self.pending.paid.push((anchor, (ev.ts, cents)));
            }
        }
        if class.rules {
            self.rule_facts(ev, anchor);
        }
        if let Some(name) = class.id {
            if class.ratio_event && self.named_sent.insert((anchor, day, name)) {
                self.pending.named.push((anchor, (day, name)));
            }
            if class.funnel_entry_only {
                self.entry_step(anchor, day, name, ev.ts, &ev.id);
            } else if class.funnel_step {
                let step = Step {
                    ts: ev.ts,
                    id: Text::from(&*ev.id),
                    name,
                };
                self.pending.steps.push((anchor, step));
            }
        }
        if class.purchase {
            if let Some(cents) = ev.amount {
                self.pending.purchases.push(((anchor, day), cents));
            }
        }
        Some(anchor)
    }

    /// The triggers, cancels and goals of rules that one event is.
    fn rule_facts(&mut self, ev: &Event<'_>, anchor: Ident) {
        let plan = self.plan.clone();
        // The event's id as shared text, made once for all the rules it takes part in.
        let mut shared: Option<crate::facts::Text> = None;
        let mut id = || shared.get_or_insert_with(|| ev.id.as_ref().into()).clone();
        for &(rule, role) in plan.rule_roles(&ev.name) {
            let r = &plan.config.rules[rule as usize];
            let key = match &r.match_key {
                Some(k) => match ev.prop(k) {
                    // A retired key's earliest trigger was decided for good.
                    Some(text) if self.key_retired(rule, text) => continue,
                    Some(text) => Some(text),
                    None => continue,
                },
                None => None,
            };
            match role {
                RuleRole::Trigger => {
                    let wanted = r
                        .where_
                        .iter()
                        .all(|(k, texts)| ev.prop(k).is_some_and(|v| texts.iter().any(|t| t == v)));
                    if wanted {
                        self.pending.triggers.push((
                            anchor,
                            Trigger {
                                rule,
                                key: key.map_or_else(&mut id, Into::into),
                                ts: ev.ts,
                                id: id(),
                            },
                        ));
                    }
                }
                RuleRole::Cancel | RuleRole::Goal => {
                    let scope = match key {
                        Some(k) => Scope::Key(k.into()),
                        None => Scope::Person(anchor),
                    };
                    if role == RuleRole::Cancel {
                        let mark = Mark::Cancel {
                            rule,
                            ts: ev.ts,
                            id: id(),
                        };
                        if let Some(kept) = self.kept.as_mut() {
                            kept.cancels.push((anchor, scope.clone(), mark.clone()));
                        }
                        self.pending.marks.push(((scope, mark), 1));
                        continue;
                    }
                    let bucket = ev.ts.div_euclid(goal_bucket_ms(r.goal_within_ms));
                    let this = (ev.ts, ev.id.as_ref());
                    let key = (rule, scope, bucket, anchor);
                    match self.goals.get_mut(&key) {
                        None => {
                            let span = ((ev.ts, id()), (ev.ts, id()));
                            self.goal_dirty.entry(key.clone()).or_insert(None);
                            self.goals.insert(key, span);
                        }
                        Some(span) => {
                            let earlier = this < (span.0 .0, &*span.0 .1);
                            let later = this > (span.1 .0, &*span.1 .1);
                            if earlier || later {
                                let before = span.clone();
                                if earlier {
                                    span.0 = (ev.ts, id());
                                }
                                if later {
                                    span.1 = (ev.ts, id());
                                }
                                self.goal_dirty.entry(key).or_insert(Some(before));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Takes the facts of everything accepted since the last call.
    pub fn take_batch(&mut self) -> FactBatch {
        let mut batch = std::mem::take(&mut self.pending);
        for (ident, before) in self.first_dirty.drain() {
            if let Some(old) = before {
                batch.firsts.push(((ident, old), -1));
            }
            let now = self.firsts[&ident].clone();
            batch.firsts.push(((ident, now), 1));
        }
        let moved = |before: Option<Option<i64>>, now: Option<i64>| {
            before.filter(|b| *b != now).map(|b| (b, now))
        };
        batch.clock = moved(self.clock_before.take(), self.clock);
        batch.now = moved(self.now_before.take(), self.now);
        batch.earliest = moved(self.earliest_before.take(), self.earliest);
        for (key, before) in self.goal_dirty.drain() {
            let (rule, scope, bucket, _) = key.clone();
            let mark = |(first, last): GoalSpan| Mark::Goals {
                rule,
                bucket,
                first,
                last,
            };
            if let Some(old) = before {
                batch.marks.push(((scope.clone(), mark(old)), -1));
            }
            batch
                .marks
                .push(((scope, mark(self.goals[&key].clone())), 1));
        }
        for ((ident, day), before) in self.day_dirty.drain() {
            if let Some(old) = before {
                batch.day_firsts.push(((ident, (day, old)), -1));
            }
            batch
                .day_firsts
                .push(((ident, (day, self.day_firsts[&(ident, day)])), 1));
        }
        if let Some(kept) = self.kept.as_mut() {
            kept.note(&batch, &self.plan.config.calendar);
        }
        batch
    }
}

/// Rejection for input bytes that are not UTF-8.
pub fn bad_encoding() -> Rejection {
    Rejection::new(Reason::BadEncoding, "input is not valid UTF-8")
}

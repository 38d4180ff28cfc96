//! The metric dataflow: fact inputs in, metric rows out; one builder for compute, serve and replay.

mod acquisition;
mod activity;
pub mod alerts;
pub mod decide;
mod freeze;
mod funnel;
pub mod identity;
mod in_place;
mod ratio;
mod retention;
pub mod rules;
mod series;
mod temporal;

use std::sync::Arc;

use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::operators::ThresholdTotal;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::VecCollection;
use timely::dataflow::Scope;

use crate::facts::{ChannelId, FactBatch, First, Ident, Mark, NameId, Person, Step, Trigger};
use crate::ingest::Dictionary;
use crate::metric::{Key, Value};
use crate::plan::Plan;
use crate::time::{hour_day, Day, Hour};

/// Logical time of the dataflow: one tick per ingest batch.
pub type Time = u64;
/// A collection of this dataflow.
pub type Coll<'s, D> = VecCollection<'s, Time, D, isize>;
/// Metric rows: each key holds one value at a time.
pub type Rows<'s> = Coll<'s, (Key, Value)>;
/// The person of each identity, arranged by identity.
pub type PersonOf<'s> = Arranged<'s, TraceAgent<ValSpine<Ident, Person, Time, isize>>>;
/// The identities of each person, arranged by person.
pub type Members<'s> = Arranged<'s, TraceAgent<ValSpine<Person, Ident, Time, isize>>>;

pub use alerts::{AlertRecord, AlertStatus, Transition};
pub use decide::{Outcome, Verdict};
pub use rules::Firing;

/// Input handles, fed by the worker that owns ingest.
pub struct Inputs {
    idents: InputSession<Time, Ident, isize>,
    edges: InputSession<Time, (Ident, Ident), isize>,
    hours: InputSession<Time, (Ident, Hour), isize>,
    firsts: InputSession<Time, (Ident, First), isize>,
    named: InputSession<Time, (Ident, (Day, NameId)), isize>,
    steps: InputSession<Time, (Ident, Step), isize>,
    purchases: InputSession<Time, (Ident, Day), isize>,
    spend: InputSession<Time, (Day, ChannelId), isize>,
    clock: InputSession<Time, i64, isize>,
    now: InputSession<Time, i64, isize>,
    earliest: InputSession<Time, i64, isize>,
    triggers: InputSession<Time, (Ident, Trigger), isize>,
    marks: InputSession<Time, (crate::facts::Scope<Ident>, Mark), isize>,
    paid: InputSession<Time, (Ident, (i64, i64)), isize>,
    day_firsts: InputSession<Time, (Ident, (Day, i64)), isize>,
    seal: InputSession<Time, Day, isize>,
    frozen: InputSession<Time, (Key, Value), isize>,
    sent_firings: InputSession<Time, crate::facts::SentFiring, isize>,
    cap_firings: InputSession<Time, (Ident, crate::facts::CapFiring), isize>,
}

/// Cents as a diff of a money input. Lossless: `isize` has 64 bits, as asserted here, so
/// that every total up to `MAX_CENTS` moves through differential exactly.
#[allow(clippy::cast_possible_truncation)]
fn cents_diff(cents: i64) -> isize {
    const _: () = assert!(isize::BITS == 64, "money diffs need a 64-bit isize");
    cents as isize
}

/// The collection's changes, moved to worker 0: the worker next to ingest's dictionary (in a
/// cluster, too), where operators that read names run and where updates are reported.
pub(crate) fn at_worker_zero<'s, D: differential_dataflow::ExchangeData>(
    c: Coll<'s, D>,
) -> Coll<'s, D> {
    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::Exchange;
    c.inner.exchange(|_| 0).as_collection()
}

/// Moves a one-value input from its previous value to the new one (none: empty).
fn replace<V: differential_dataflow::ExchangeData>(
    input: &mut InputSession<Time, V, isize>,
    change: Option<(Option<V>, Option<V>)>,
) {
    if let Some((before, now)) = change {
        if let Some(b) = before {
            input.remove(b);
        }
        if let Some(n) = now {
            input.insert(n);
        }
    }
}

impl Inputs {
    /// Adds one batch of facts at the current time.
    pub fn feed(&mut self, batch: FactBatch) {
        for i in batch.idents {
            self.idents.insert(i);
        }
        for i in batch.idents_gone {
            self.idents.remove(i);
        }
        for e in batch.edges {
            self.edges.insert(e);
        }
        for e in batch.edges_gone {
            self.edges.remove(e);
        }
        for h in batch.hours {
            self.hours.insert(h);
        }
        for h in batch.hours_gone {
            self.hours.remove(h);
        }
        for (f, d) in batch.firsts {
            self.firsts.update(f, d);
        }
        for n in batch.named {
            self.named.insert(n);
        }
        for n in batch.named_gone {
            self.named.remove(n);
        }
        for s in batch.steps {
            self.steps.insert(s);
        }
        for s in batch.steps_gone {
            self.steps.remove(s);
        }
        for (k, cents) in batch.purchases {
            if cents != 0 {
                self.purchases.update(k, cents_diff(cents));
            }
        }
        for (k, cents) in batch.spend {
            if cents != 0 {
                self.spend.update(k, cents_diff(cents));
            }
        }
        replace(&mut self.clock, batch.clock);
        replace(&mut self.now, batch.now);
        replace(&mut self.earliest, batch.earliest);
        for t in batch.triggers {
            self.triggers.insert(t);
        }
        for t in batch.triggers_gone {
            self.triggers.remove(t);
        }
        for (m, d) in batch.marks {
            self.marks.update(m, d);
        }
        for p in batch.paid {
            self.paid.insert(p);
        }
        for p in batch.paid_gone {
            self.paid.remove(p);
        }
        for (f, d) in batch.day_firsts {
            self.day_firsts.update(f, d);
        }
        replace(&mut self.seal, batch.seal.map(|(b, s)| (b, Some(s))));
        for row in batch.frozen {
            self.frozen.insert(row);
        }
        for (f, d) in batch.sent_firings {
            self.sent_firings.update(f, d);
        }
        for (f, d) in batch.cap_firings {
            self.cap_firings.update(f, d);
        }
    }

    /// Closes the current time: everything fed so far is at times before `time`.
    pub fn advance_to(&mut self, time: Time) {
        self.idents.advance_to(time);
        self.edges.advance_to(time);
        self.hours.advance_to(time);
        self.firsts.advance_to(time);
        self.named.advance_to(time);
        self.steps.advance_to(time);
        self.purchases.advance_to(time);
        self.spend.advance_to(time);
        self.clock.advance_to(time);
        self.now.advance_to(time);
        self.earliest.advance_to(time);
        self.triggers.advance_to(time);
        self.marks.advance_to(time);
        self.paid.advance_to(time);
        self.day_firsts.advance_to(time);
        self.seal.advance_to(time);
        self.frozen.advance_to(time);
        self.sent_firings.advance_to(time);
        self.cap_firings.advance_to(time);
        self.flush();
    }

    fn flush(&mut self) {
        self.idents.flush();
        self.edges.flush();
        self.hours.flush();
        self.firsts.flush();
        self.named.flush();
        self.steps.flush();
        self.purchases.flush();
        self.spend.flush();
        self.clock.flush();
        self.now.flush();
        self.earliest.flush();
        self.triggers.flush();
        self.marks.flush();
        self.paid.flush();
        self.day_firsts.flush();
        self.seal.flush();
        self.frozen.flush();
        self.sent_firings.flush();
        self.cap_firings.flush();
    }
}

/// What the dataflow produces.
pub struct Outputs<'s> {
    /// Every metric row.
    pub rows: Rows<'s>,
    /// The person of each identity.
    pub persons: Coll<'s, (Ident, Person)>,
    /// Each person's first active event.
    pub firsts: Coll<'s, (Person, First)>,
    /// Identities that stopped linking, with their number of links.
    pub guarded: Coll<'s, (Ident, u32)>,
    /// Rule firings whose release time has come.
    pub firings: Coll<'s, Firing>,
    /// Every counted trigger and what became of it.
    pub verdicts: Coll<'s, Verdict>,
    /// Alert transitions and statuses.
    pub alerts: Coll<'s, AlertRecord>,
}

/// The person-level collections that metric families read.
#[derive(Clone)]
pub struct Base<'s> {
    pub plan: Arc<Plan>,
    /// `(person, local hour)` with an active event.
    pub hours: Coll<'s, (Person, Hour)>,
    /// `(person, local day)` with an active event.
    pub days: Coll<'s, (Person, Day)>,
    /// Each person's first active event.
    pub firsts: Coll<'s, (Person, First)>,
    /// The current local day (one record).
    pub today: Coll<'s, Day>,
    /// The clock: largest accepted event time, epoch ms (one record).
    pub clock: Coll<'s, i64>,
    /// The clock of rules and alerts (one record): the event clock, or in `serve` the later
    /// of it and the wall clock.
    pub now: Coll<'s, i64>,
}

impl<'s> Base<'s> {
    /// A reduce over each person's active days, sorted, each person's days kept in place
    /// (`in_place`).
    pub fn reduce_days<V, L>(&self, name: &str, logic: L) -> Coll<'s, (Person, V)>
    where
        V: differential_dataflow::ExchangeData + Ord,
        L: FnMut(&Person, &[(&Day, isize)], &mut Vec<(V, isize)>) + 'static,
    {
        in_place::reduce(self.days.clone(), name, logic)
    }
}

/// A metric family: a function from person-level collections to metric rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Activity,
    Retention,
    Funnel,
    Acquisition,
    Ratio,
    Campaign,
}

impl Family {
    /// Every family, in the order their rows are concatenated.
    pub const ALL: [Family; 6] = [
        Family::Activity,
        Family::Retention,
        Family::Funnel,
        Family::Acquisition,
        Family::Ratio,
        Family::Campaign,
    ];

    /// The family's name, as benchmarks report it.
    #[cfg(any(test, feature = "internals"))]
    pub fn name(self) -> &'static str {
        match self {
            Family::Activity => "activity",
            Family::Retention => "retention",
            Family::Funnel => "funnel",
            Family::Acquisition => "acquisition",
            Family::Ratio => "ratio",
            Family::Campaign => "campaign",
        }
    }
}

/// Builds the whole dataflow in `scope`; `dict` names the interned identities and channels.
pub fn build<'s>(
    scope: Scope<'s, Time>,
    plan: Arc<Plan>,
    dict: Arc<Dictionary>,
) -> (Inputs, Outputs<'s>) {
    build_families(scope, plan, dict, &Family::ALL)
}

/// Builds identity resolution, the person-level collections and the rows of `families` only
/// (the other families' rows are absent); `build` is this with every family.
pub fn build_families<'s>(
    scope: Scope<'s, Time>,
    plan: Arc<Plan>,
    dict: Arc<Dictionary>,
    families: &[Family],
) -> (Inputs, Outputs<'s>) {
    let (idents_in, idents) = scope.new_collection();
    let (edges_in, edges) = scope.new_collection();
    let (hours_in, hours) = scope.new_collection();
    let (firsts_in, firsts) = scope.new_collection();
    let (named_in, named) = scope.new_collection();
    let (steps_in, steps) = scope.new_collection();
    let (purchases_in, purchases) = scope.new_collection();
    let (spend_in, spend) = scope.new_collection();
    let (clock_in, clock): (_, Coll<'s, i64>) = scope.new_collection();
    let (now_in, now): (_, Coll<'s, i64>) = scope.new_collection();
    let (earliest_in, earliest): (_, Coll<'s, i64>) = scope.new_collection();
    let (triggers_in, triggers) = scope.new_collection();
    let (marks_in, marks) = scope.new_collection();
    let (paid_in, paid) = scope.new_collection();
    let (day_firsts_in, day_firsts) = scope.new_collection();
    let (seal_in, seal) = scope.new_collection();
    let (frozen_in, frozen) = scope.new_collection();
    let (sent_firings_in, sent_firings) = scope.new_collection();
    let (cap_firings_in, cap_firings) = scope.new_collection();

    let (persons, guarded) = identity::resolve(idents, edges, plan.config.max_persons_per_value);
    let person_of = persons.clone().arrange_by_key_named("Arrange: PersonOf");

    let p_hours = hours
        .join_core(person_of.clone(), |_i, h, p| Some((*p, *h)))
        .distinct_total();
    let p_days = p_hours
        .clone()
        .map(|(p, h)| (p, hour_day(h)))
        .distinct_total();
    let p_firsts = in_place::reduce(
        firsts.join_core(person_of.clone(), |_i, f: &First, p| Some((*p, f.clone()))),
        "FirstOfPerson",
        |_p, input, out| out.push((input[0].0.clone(), 1)),
    );
    let cal = plan.config.calendar.clone();
    let today = clock.clone().map(move |ms| cal.day(ms));

    let base = Base {
        plan: plan.clone(),
        hours: p_hours,
        days: p_days,
        firsts: p_firsts.clone(),
        today,
        clock,
        now: now.clone(),
    };
    let mut rule_outputs = None;

    let family_rows = families.iter().map(|family| match family {
        Family::Activity => activity::rows(&base),
        Family::Retention => retention::rows(&base),
        Family::Funnel => {
            let p_steps = steps
                .clone()
                .join_core(person_of.clone(), |_i, s: &Step, p| Some((*p, s.clone())));
            funnel::rows(&base, p_steps)
        }
        Family::Acquisition => {
            let p_purchases = purchases
                .clone()
                .join_core(person_of.clone(), |_i, d: &Day, p| Some((*p, *d)));
            acquisition::rows(&base, p_purchases, purchases.clone(), spend.clone())
        }
        Family::Ratio => {
            let p_named = named
                .clone()
                .join_core(person_of.clone(), |_i, dn: &(Day, NameId), p| {
                    Some((*p, *dn))
                });
            ratio::rows(&base, p_named)
        }
        Family::Campaign => {
            let facts = rules::RuleFacts {
                triggers: triggers.clone(),
                marks: marks.clone(),
                paid: paid.clone(),
                day_firsts: day_firsts.clone(),
                sent: sent_firings.clone(),
                cap_firings: cap_firings.clone(),
            };
            let out = rules::build(&base, &person_of, &persons, dict.clone(), facts);
            let rows = out.rows.clone();
            rule_outputs = Some(out);
            rows
        }
    });
    let rows =
        differential_dataflow::collection::concatenate(scope, family_rows.collect::<Vec<_>>());
    // Rows of sealed days stay as they were when sealed (`freeze`); a restored checkpoint
    // brings them back as they were written.
    let rows = freeze::freeze(rows, seal).concat(frozen);
    let (firings, verdicts) = match rule_outputs {
        Some(out) => (out.firings, out.verdicts),
        None => (
            triggers.clone().flat_map(|_| None::<Firing>),
            triggers.clone().flat_map(|_| None::<Verdict>),
        ),
    };
    let alerts = if plan.config.alerts.is_empty() {
        now.clone().flat_map(|_| None::<AlertRecord>)
    } else {
        alerts::transitions(
            plan.clone(),
            dict.clone(),
            rows.clone(),
            now.clone(),
            earliest,
        )
    };

    let inputs = Inputs {
        idents: idents_in,
        edges: edges_in,
        hours: hours_in,
        firsts: firsts_in,
        named: named_in,
        steps: steps_in,
        purchases: purchases_in,
        spend: spend_in,
        clock: clock_in,
        now: now_in,
        earliest: earliest_in,
        triggers: triggers_in,
        marks: marks_in,
        paid: paid_in,
        day_firsts: day_firsts_in,
        seal: seal_in,
        frozen: frozen_in,
        sent_firings: sent_firings_in,
        cap_firings: cap_firings_in,
    };
    (
        inputs,
        Outputs {
            rows,
            persons,
            firsts: p_firsts,
            guarded,
            firings,
            verdicts,
            alerts,
        },
    )
}

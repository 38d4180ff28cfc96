//! Trigger rules as collections: the earliest trigger of each key, its cancels and goals in
//! its scope, each person's decisions, the due filter and the campaign rows.

use std::sync::Arc;

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use serde::{Deserialize, Serialize};

use super::decide::{decide, survivors, Outcome, PersonFact, ScopeItem, Verdict};
use super::series::{count_rows, rate_rows};
use super::{temporal, Base, Coll, Members, PersonOf, Rows};
use crate::facts::{Ident, Mark, Person, RuleId, Scope, Text, Trigger};
use crate::ingest::Dictionary;
use crate::metric::{Dims, Group, Metric, Value};
use crate::time::Day;

/// A firing of ACTIONS.md: a decided trigger whose release time has come. Field order is the
/// decision order (release, rule, trigger time, trigger id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Firing {
    pub release: i64,
    pub rule: RuleId,
    pub ts: i64,
    pub trigger: Text,
    pub key: Text,
    pub person: Person,
    pub deadline: i64,
    pub group: Group,
    pub converted: bool,
}

/// The rule facts, as collections.
pub struct RuleFacts<'s> {
    pub triggers: Coll<'s, (Ident, Trigger)>,
    pub marks: Coll<'s, (Scope<Ident>, Mark)>,
    pub paid: Coll<'s, (Ident, (i64, i64))>,
    pub day_firsts: Coll<'s, (Ident, (Day, i64))>,
    /// Firings of erased persons that had been sent, and retired firings: they stay in the
    /// campaign rows.
    pub sent: Coll<'s, crate::facts::SentFiring>,
    /// Retired firings that later triggers' caps still count.
    pub cap_firings: Coll<'s, (Ident, crate::facts::CapFiring)>,
}

/// What the rules produce.
pub struct RuleOutputs<'s> {
    /// Campaign rows, and `trigger_pending` (an extension).
    pub rows: Rows<'s>,
    /// Firings whose release time has come.
    pub firings: Coll<'s, Firing>,
    /// Every trigger that counts (the earliest of its key) and what became of it, due or not.
    pub verdicts: Coll<'s, Verdict>,
}

/// Campaign rows, the firings whose release time has come, and every trigger's verdict.
pub fn build<'s>(
    base: &Base<'s>,
    person_of: &PersonOf<'s>,
    persons: &Coll<'s, (Ident, Person)>,
    dict: Arc<Dictionary>,
    facts: RuleFacts<'s>,
) -> RuleOutputs<'s> {
    let plan = base.plan.clone();
    // Each person's identities, arranged by person.
    let members = persons
        .clone()
        .map(|(i, p)| (p, i))
        .arrange_by_key_named("Arrange: Members");
    let matched: Vec<bool> = plan
        .config
        .rules
        .iter()
        .map(|r| r.match_key.is_some())
        .collect();

    // Per rule and key only the earliest trigger by (ts, id) counts. Without `match` the key is
    // the trigger's own event id, which no other accepted event has: every trigger is the
    // earliest of its key, and only `match` rules need the reduce.
    let keyed = matched.clone();
    let earliest = super::in_place::reduce(
        facts
            .triggers
            .clone()
            .filter(move |(_, t)| keyed[t.rule as usize])
            .map(|(i, t)| ((t.rule, t.key), (t.ts, t.id, i))),
        "EarliestTrigger",
        |_k, input, out| out.push((input[0].0.clone(), 1)),
    )
    .map(|((rule, key), (ts, id, i))| (i, (rule, key, ts, id)));
    let keyed = matched.clone();
    let unmatched = facts
        .triggers
        .filter(move |(_, t)| !keyed[t.rule as usize])
        .map(|(i, t)| (i, (t.rule, t.key, t.ts, t.id)));
    let with_person = earliest
        .concat(unmatched)
        .join_core(person_of.clone(), |_i, (rule, key, ts, id), p| {
            Some((*p, *rule, key.clone(), *ts, id.clone()))
        });
    // A `match` rule's triggers meet their cancels and goals in the key's scope.
    let keyed = matched.clone();
    let key_triggers = with_person
        .clone()
        .filter(move |(_, rule, ..)| keyed[*rule as usize])
        .map(|(person, rule, key, ts, id)| {
            (
                (rule, Scope::<Ident>::Key(key.clone())),
                ScopeItem::Trigger {
                    ts,
                    id,
                    key,
                    person,
                },
            )
        });
    // Other rules' triggers meet theirs in the person's own decisions.
    let person_triggers = with_person
        .filter(move |(_, rule, ..)| !matched[*rule as usize])
        .map(|(person, rule, key, ts, id)| {
            (
                person,
                PersonFact::Item(
                    rule,
                    ScopeItem::Trigger {
                        ts,
                        id,
                        key,
                        person: (),
                    },
                ),
            )
        });
    let rule_of = |m: &Mark| match m {
        Mark::Cancel { rule, .. } | Mark::Goals { rule, .. } => *rule,
    };
    // Cancels and goals matter only where a trigger is: most goal events (a product view, say)
    // belong to persons who never triggered the rule. A person's marks are kept by identity
    // (every identity of a person with a trigger of the rule), joined to that person.
    let triggered_keys = key_triggers
        .clone()
        .map(|(scope, _)| scope)
        .distinct_total();
    let triggered_idents = person_triggers
        .clone()
        .flat_map(|(p, f)| match f {
            PersonFact::Item(rule, _) => Some((p, rule)),
            _ => None,
        })
        .distinct_total()
        .join_core(members.clone(), |p, rule, i| Some(((*rule, *i), *p)))
        .arrange_by_key_named("Arrange: TriggeredIdentities");
    let person_marks = facts
        .marks
        .clone()
        .flat_map(move |(scope, m)| match scope {
            Scope::Person(i) => Some(((rule_of(&m), i), m)),
            Scope::Key(_) => None,
        })
        .join_core(triggered_idents, move |(rule, _), m: &Mark, p| {
            Some((*p, PersonFact::Item(*rule, mark_item(m.clone()))))
        });
    let key_marks = facts
        .marks
        .flat_map(move |(scope, m)| match scope {
            Scope::Key(k) => Some(((rule_of(&m), Scope::Key(k)), mark_item(m))),
            Scope::Person(_) => None,
        })
        .semijoin(triggered_keys);
    let cal = plan.config.calendar.clone();
    let rules = plan.config.rules.clone();
    let scoped = super::in_place::reduce(
        key_triggers.concat(key_marks),
        "RuleScope",
        move |(rule, _), input, out| {
            let items: Vec<&ScopeItem<Person>> = input.iter().map(|(i, _)| *i).collect();
            for c in survivors(&rules[*rule as usize], *rule, &cal, &items, true) {
                out.push((c, 1));
            }
        },
    )
    .map(|(_, c)| c);
    let cancelled = scoped.clone().flat_map(|(person, candidate, cancel)| {
        cancel.map(|(by, at)| Verdict {
            candidate,
            person,
            outcome: Outcome::Cancelled { by, at },
        })
    });
    let candidates = scoped
        .flat_map(|(p, c, cancel)| cancel.is_none().then_some((p, PersonFact::Candidate(c))))
        .concat(person_triggers)
        .concat(person_marks);

    let decided = decide_all(
        base,
        person_of,
        &members,
        dict,
        candidates,
        PersonState {
            paid: facts.paid,
            day_firsts: facts.day_firsts,
            cap_firings: facts.cap_firings,
        },
    );
    let fired = decided.clone().flat_map(|v| match v.outcome {
        Outcome::Fired { group } => Some(Firing {
            release: v.candidate.release,
            rule: v.candidate.rule,
            ts: v.candidate.ts,
            trigger: v.candidate.trigger,
            key: v.candidate.key,
            person: v.person,
            deadline: v.candidate.deadline,
            group,
            converted: v.candidate.goal.is_some(),
        }),
        _ => None,
    });
    let firings = temporal::due(
        fired.clone().map(|f| {
            let at = f.release;
            (f, at)
        }),
        base.now.clone(),
        "DueFirings",
    );
    let pending = fired
        .map(|f| f.rule)
        .concat(firings.clone().map(|f| f.rule).negate())
        .count_total();
    let counted = firings
        .clone()
        .map(|f| (f.rule, f.release, f.group, f.converted))
        .concat(facts.sent);
    let rows = campaign_rows(base, counted).concat(count_rows(pending, |r| {
        (Metric::TriggerPending, Dims::Rule(r))
    }));
    RuleOutputs {
        rows,
        firings,
        verdicts: cancelled.concat(decided),
    }
}

/// What a person's decisions read besides candidates, by identity.
struct PersonState<'s> {
    paid: Coll<'s, (Ident, (i64, i64))>,
    day_firsts: Coll<'s, (Ident, (Day, i64))>,
    /// Retired firings that caps still count.
    cap_firings: Coll<'s, (Ident, crate::facts::CapFiring)>,
}

/// Each person's decisions over their candidates and what the rules' conditions read.
fn decide_all<'s>(
    base: &Base<'s>,
    person_of: &PersonOf<'s>,
    members: &Members<'s>,
    dict: Arc<Dictionary>,
    candidates: Coll<'s, (Person, PersonFact)>,
    state: PersonState<'s>,
) -> Coll<'s, Verdict> {
    let PersonState {
        paid,
        day_firsts,
        cap_firings,
    } = state;
    let plan = base.plan.clone();
    let rules = &plan.config.rules;
    let with_cond: Vec<bool> = rules.iter().map(|r| !r.cond.is_empty()).collect();
    let with_holdout: Vec<bool> = rules.iter().map(|r| r.holdout_bp > 0).collect();
    // The rule of a candidate or a trigger (cancels and goals say nothing of who needs what).
    let rule_of = |f: &PersonFact| match f {
        PersonFact::Candidate(c) => Some(c.rule),
        PersonFact::Item(rule, ScopeItem::Trigger { .. }) => Some(*rule),
        _ => None,
    };
    let needing_state = candidates
        .clone()
        .filter(move |(_, f)| rule_of(f).is_some_and(|r| with_cond[r as usize]))
        .map(|(p, _)| p)
        .distinct_total();
    let needing_group = candidates
        .clone()
        .filter(move |(_, f)| rule_of(f).is_some_and(|r| with_holdout[r as usize]))
        .map(|(p, _)| p)
        .distinct_total();
    let mut facts = candidates;
    if rules.iter().any(|r| r.cap.is_some()) {
        let retired = cap_firings.join_core(person_of.clone(), |_i, (rule, release, id), p| {
            Some((*p, PersonFact::Fired(*rule, *release, id.clone())))
        });
        facts = facts.concat(retired);
    }
    // What the conditions read is kept by identity: each identity of a person whose
    // candidates have conditions is joined once to that person, so that the rest (most of
    // it, with rules that few persons trigger) stays unresolved.
    let state_person_of = needing_state
        .clone()
        .map(|p| (p, ()))
        .join_core(members.clone(), |p, (), i| Some((*i, *p)))
        .arrange_by_key_named("Arrange: StatePersonOf");
    if plan.rules_need_paid {
        let p_paid = paid.join_core(state_person_of.clone(), |_i, (ts, cents), p| {
            Some((*p, PersonFact::Paid(*ts, *cents)))
        });
        facts = facts.concat(p_paid);
    }
    if plan.rules_need_days {
        let p_days = day_firsts.join_core(state_person_of, |_i, (d, ts), p| {
            Some((*p, PersonFact::DayFirst(*d, *ts)))
        });
        facts = facts.concat(p_days);
    }
    if rules.iter().any(|r| r.cond.needs_first()) {
        let cal = plan.config.calendar.clone();
        let firsts = base
            .firsts
            .clone()
            .map(move |(p, f)| (p, (cal.day(f.ts), f.channel)))
            .semijoin(needing_state);
        let firsts = if rules.iter().any(|r| r.cond.channels.is_some()) {
            // Channel labels are read where ingest's dictionary is: on worker 0.
            let names = dict.clone();
            super::at_worker_zero(firsts).map(move |(p, (day, c))| {
                (p, PersonFact::First(day, Text::from(names.channel(c))))
            })
        } else {
            firsts.map(|(p, (day, _))| (p, PersonFact::First(day, Text::from(""))))
        };
        facts = facts.concat(firsts);
    }
    if rules.iter().any(|r| r.holdout_bp > 0) {
        // Each person's identities, then their least text, read on worker 0 where ingest's
        // dictionary is.
        let identities = needing_group
            .map(|p| (p, ()))
            .join_core(members.clone(), |p, (), i| Some((*p, *i)))
            .reduce_named("CanonicalIdentity", |_p, input, out| {
                out.push((input.iter().map(|(i, _)| **i).collect::<Vec<Ident>>(), 1));
            });
        let names = dict.clone();
        let canonical = super::at_worker_zero(identities).flat_map(move |(p, ids)| {
            let least = names.least_ident(ids)?;
            Some((p, PersonFact::Canonical(least)))
        });
        facts = facts.concat(canonical);
    }
    let cal = plan.config.calendar.clone();
    let rules = plan.config.rules.clone();
    super::in_place::reduce(facts, "RuleDecisions", move |_p, input, out| {
        let facts: Vec<&PersonFact> = input.iter().map(|(f, _)| *f).collect();
        for d in decide(&rules, &cal, &facts) {
            out.push((d, 1));
        }
    })
    .map(|(person, (candidate, outcome))| Verdict {
        candidate,
        person,
        outcome,
    })
}

/// `trigger_fired`, `trigger_converted`, `trigger_conversion_rate` and `trigger_lift`.
fn campaign_rows<'s>(base: &Base<'s>, firings: Coll<'s, crate::facts::SentFiring>) -> Rows<'s> {
    let cal = base.plan.config.calendar.clone();
    let per_day = firings
        .map(move |(rule, release, group, converted)| ((rule, cal.day(release), group), converted));
    let fired = per_day.clone().map(|(k, _)| k).count_total();
    let converted = per_day.filter(|(_, c)| *c).map(|(k, _)| k).count_total();
    let fired_total = fired
        .clone()
        .explode(|((r, _, g), n)| Some(((r, g), n)))
        .count_total();
    let converted_total = converted
        .clone()
        .explode(|((r, _, g), n)| Some(((r, g), n)))
        .count_total();
    let rate = rate_rows(
        converted_total.clone(),
        fired_total.clone(),
        1,
        |&(r, g)| (Metric::TriggerConversionRate, Dims::RuleGroup(r, g)),
    );
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    enum Total {
        Fired(Group, i64),
        Converted(Group, i64),
    }
    let lift = fired_total
        .map(|((r, g), n)| (r, Total::Fired(g, n as i64)))
        .concat(converted_total.map(|((r, g), n)| (r, Total::Converted(g, n as i64))))
        .reduce_named("TriggerLift", |_r, input, out| {
            let (mut fired, mut conv) = ([0i64; 2], [0i64; 2]);
            for (t, _) in input {
                match t {
                    Total::Fired(g, n) => fired[*g as usize] = *n,
                    Total::Converted(g, n) => conv[*g as usize] = *n,
                }
            }
            let (t, h) = (Group::Treatment as usize, Group::Holdout as usize);
            if fired[t] > 0 && fired[h] > 0 {
                let num = conv[t] * fired[h] - conv[h] * fired[t];
                if num != 0 {
                    out.push((Value::Rate(num, fired[t] * fired[h]), 1));
                }
            }
        })
        .map(|(r, v)| ((Metric::TriggerLift, Dims::Rule(r)), v));
    count_rows(fired, |(r, d, g)| {
        (Metric::TriggerFired, Dims::RuleDayGroup(r, d, g))
    })
    .concat(count_rows(converted, |(r, d, g)| {
        (Metric::TriggerConverted, Dims::RuleDayGroup(r, d, g))
    }))
    .concat(rate)
    .concat(lift)
}

/// What a cancel or goal mark is in its scope.
fn mark_item<P>(m: Mark) -> ScopeItem<P> {
    match m {
        Mark::Cancel { ts, id, .. } => ScopeItem::Cancel { ts, id },
        Mark::Goals {
            bucket,
            first,
            last,
            ..
        } => ScopeItem::Goals {
            bucket,
            first,
            last,
        },
    }
}

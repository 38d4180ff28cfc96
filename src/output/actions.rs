//! The JSON of firings (ACTIONS.md's firing line) and of alert transitions.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use crate::dataflow::{Firing, Transition};
use crate::ingest::Dictionary;
use crate::output::IdentityIndex;
use crate::plan::Plan;
use crate::time::{day_label, hour_label};

/// A person's identities by type (values sorted), and the canonical one: the byte-wise
/// smallest `type:value`.
pub fn person_identities(
    index: &IdentityIndex,
    dict: &Dictionary,
    person: crate::facts::Person,
) -> (String, Map<String, Json>) {
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut members = index.members(person);
    if members.is_empty() {
        members.push(person);
    }
    let mut canonical: Option<String> = None;
    for i in members {
        if let Some((t, v)) = dict.ident(i) {
            let label = format!("{t}:{v}");
            if canonical.as_ref().is_none_or(|c| label < *c) {
                canonical = Some(label);
            }
            by_type.entry(t).or_default().push(v);
        }
    }
    let identities = by_type
        .into_iter()
        .map(|(t, mut values)| {
            values.sort();
            (t, json!(values))
        })
        .collect();
    (canonical.unwrap_or_default(), identities)
}

/// The firing line of ACTIONS.md: rule, key, trigger, person, identities, deadline, at, group,
/// converted.
pub fn firing_json(plan: &Plan, dict: &Dictionary, index: &IdentityIndex, f: &Firing) -> Json {
    let cal = &plan.config.calendar;
    let (person, identities) = person_identities(index, dict, f.person);
    json!({
        "rule": plan.config.rules[f.rule as usize].name,
        "key": f.key,
        "trigger": f.trigger,
        "person": person,
        "identities": identities,
        "deadline": cal.format_instant(f.deadline),
        "at": cal.format_instant(f.release),
        "group": f.group.name(),
        "converted": f.converted,
    })
}

/// Firings in decision order: release, rule name, trigger time, trigger id.
pub fn decision_order<'a>(
    plan: &Plan,
    firings: impl Iterator<Item = &'a Firing>,
) -> Vec<&'a Firing> {
    let mut out: Vec<&Firing> = firings.collect();
    let rules = &plan.config.rules;
    out.sort_by(|a, b| {
        (a.release, &rules[a.rule as usize].name, a.ts, &a.trigger).cmp(&(
            b.release,
            &rules[b.rule as usize].name,
            b.ts,
            &b.trigger,
        ))
    });
    out
}

/// The label of an alert's bucket.
pub fn bucket_label(plan: &Plan, t: &Transition) -> String {
    match plan.config.alerts[t.alert as usize].bucket {
        crate::config::Bucket::Hour => hour_label(t.bucket),
        crate::config::Bucket::Day => day_label(t.bucket),
    }
}

/// One transition as the snapshot's `alerts` array holds it.
pub fn transition_json(plan: &Plan, t: &Transition) -> Json {
    json!({
        "alert": plan.config.alerts[t.alert as usize].name,
        "state": if t.firing { "firing" } else { "resolved" },
        "bucket": bucket_label(plan, t),
        "value": t.value.to_json(),
        "baseline": t.baseline(),
    })
}

/// Transitions sorted by alert name, then bucket.
pub fn alerts_json<'a>(plan: &Plan, transitions: impl Iterator<Item = &'a Transition>) -> Json {
    let mut list: Vec<&Transition> = transitions.collect();
    let alerts = &plan.config.alerts;
    list.sort_by(|a, b| {
        (&alerts[a.alert as usize].name, a.bucket).cmp(&(&alerts[b.alert as usize].name, b.bucket))
    });
    Json::Array(list.into_iter().map(|t| transition_json(plan, t)).collect())
}

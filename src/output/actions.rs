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

/// One message for the actions of a rule or an alert.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionEvent {
    /// What the message is about, for exactly-once delivery and the receiver's
    /// `Idempotency-Key`: `rule/key` for firings, `alert/bucket/state` for alert transitions,
    /// each part percent-encoded.
    pub id: String,
    /// `firing`, `retraction`, `resolved`.
    pub kind: &'static str,
    /// For a retraction: the kind of message it takes back (sent only where that one was).
    pub retracts: Option<&'static str>,
    /// A firing's release time (none for alert transitions).
    pub release: Option<i64>,
    /// The rule or alert, by name (for filters on streams).
    pub source: String,
    /// Where the configuration sends it.
    pub targets: Vec<crate::config::Action>,
    /// The JSON body.
    pub body: std::sync::Arc<str>,
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode_part(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

/// The messages for the firing and alert changes of completed times. `before` is the clock of
/// rules and alerts before those times: a firing whose release time it had already passed
/// arrived late.
pub fn action_events(
    plan: &Plan,
    dict: &Dictionary,
    output: &crate::output::Output,
    changes: crate::output::ActionChanges,
    before: Option<i64>,
    untargeted: bool,
) -> Vec<ActionEvent> {
    use crate::dataflow::Outcome;
    use crate::metric::Group;
    let mut out = Vec::new();
    for c in changes.firings {
        let rule = &plan.config.rules[c.key.0 as usize];
        if rule.actions.is_empty() && !untargeted {
            continue;
        }
        let (f, kind, retracts) = match (&c.value, &c.prev) {
            (Some(f), None) => (f, "firing", None),
            (None, Some(f)) => {
                // Only a cancel (or a trigger that no longer counts) retracts; a changed
                // decision on `if`, cap or group does not undo what was sent.
                let cancelled = match output.verdicts.current().get(&c.key) {
                    None => true,
                    Some(v) => matches!(v.outcome, Outcome::Cancelled { .. }),
                };
                if !cancelled {
                    continue;
                }
                (f, "retraction", Some("firing"))
            }
            _ => continue,
        };
        if f.group != Group::Treatment {
            continue;
        }
        let mut body = firing_json(plan, dict, &output.identities, f);
        body["kind"] = kind.into();
        body["late"] = (kind == "firing" && before.is_some_and(|b| f.release < b)).into();
        out.push(ActionEvent {
            id: firing_id(plan, f),
            kind,
            retracts,
            release: Some(f.release),
            source: rule.name.clone(),
            targets: rule.actions.clone(),
            body: body.to_string().into(),
        });
    }
    for c in changes.transitions {
        let alert = &plan.config.alerts[c.key.0 as usize];
        if alert.actions.is_empty() && !untargeted {
            continue;
        }
        let state = |t: &Transition| if t.firing { "firing" } else { "resolved" };
        let (t, kind, retracts) = match (&c.value, &c.prev) {
            (Some(t), None) => (t, state(t), None),
            (None, Some(t)) => (t, "retraction", Some(state(t))),
            _ => continue,
        };
        let mut body = transition_json(plan, t);
        let state = body["state"].clone();
        body["kind"] = kind.into();
        out.push(ActionEvent {
            id: format!(
                "{}/{}/{}",
                encode_part(&alert.name),
                encode_part(&bucket_label(plan, t)),
                state.as_str().unwrap_or_default()
            ),
            kind,
            retracts,
            release: None,
            source: alert.name.clone(),
            targets: alert.actions.clone(),
            body: body.to_string().into(),
        });
    }
    out
}

/// Every alert's state (`ok`, `firing`, or `no_data` until a bucket has been judged), its last
/// judged bucket and its last transition.
pub fn alert_states_json(plan: &Plan, output: &crate::output::Output) -> Json {
    let list: Vec<Json> = plan
        .config
        .alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let i = crate::plan::id(i);
            let status = output.alert_status.current().get(&i);
            let last = output
                .transitions
                .current()
                .values()
                .filter(|t| t.alert == i)
                .max_by_key(|t| t.bucket);
            let label = |b: i32| match a.bucket {
                crate::config::Bucket::Hour => hour_label(b),
                crate::config::Bucket::Day => day_label(b),
            };
            json!({
                "alert": a.name,
                "metric": a.metric.name(),
                "state": match status {
                    None => "no_data",
                    Some(s) if s.firing => "firing",
                    Some(_) => "ok",
                },
                "judged_through": status.map(|s| label(s.judged)),
                "last_transition": last.map(|t| transition_json(plan, t)),
            })
        })
        .collect();
    json!({ "alerts": list })
}

/// The action id of a firing: `rule/key` (the delivery log's and `Idempotency-Key`'s).
pub fn firing_id(plan: &Plan, f: &Firing) -> String {
    format!("{}{}", rule_prefix(plan, f.rule), encode_part(&f.key))
}

/// What the ids of a rule's firings start with: `rule/`.
pub fn rule_prefix(plan: &Plan, rule: crate::facts::RuleId) -> String {
    format!("{}/", encode_part(&plan.config.rules[rule as usize].name))
}

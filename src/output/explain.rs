//! "Why did or didn't this person get it?": a rule's decision on one key with its evidence, each
//! item naming the event it rests on.

use serde_json::{json, Value as Json};

use crate::dataflow::decide::Bound;
use crate::dataflow::Outcome;
use crate::ingest::Dictionary;
use crate::output::actions::person_identities;
use crate::output::Output;
use crate::plan::Plan;

/// The decision on `rule` and `key` as of the rules' clock `now`; `None` when no rule has
/// that name.
pub fn explain_json(
    plan: &Plan,
    dict: &Dictionary,
    output: &Output,
    now: Option<i64>,
    rule: &str,
    key: &str,
) -> Option<Json> {
    let (index, r) = plan
        .config
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.name == rule)?;
    let cal = &plan.config.calendar;
    let at = |t: i64| json!(cal.format_instant(t));
    let Some(v) = output
        .verdicts
        .current()
        .get(&(crate::plan::id(index), key.into()))
    else {
        return Some(json!({
            "rule": rule,
            "key": key,
            "decision": "no_trigger",
            "evidence": [],
            "why": format!(
                "no accepted `{}` event{} has key {key:?}, or its decision was released before the retired days (serve.horizon and 30 days more) and is no longer held",
                r.when,
                if r.match_key.is_some() { " whose match prop" } else { "" }
            ),
        }));
    };
    let c = &v.candidate;
    let mut evidence = vec![json!({
        "step": "trigger", "event": c.trigger, "at": at(c.ts), "deadline": at(c.deadline),
    })];
    let decision = match &v.outcome {
        Outcome::Cancelled { by, at: t } => {
            evidence.push(json!({
                "step": "cancel", "event": by, "at": at(*t),
                "why": format!("a `{}` event within [trigger, deadline] shares the key", r.unless.as_deref().unwrap_or("")),
            }));
            "cancelled"
        }
        outcome => {
            if c.release != c.deadline {
                let q = r
                    .quiet_hours
                    .expect("a moved release comes from quiet hours");
                evidence.push(json!({
                    "step": "quiet_hours", "deadline": at(c.deadline), "release": at(c.release),
                    "from": format!("{:02}:{:02}", q.from / 60, q.from % 60),
                    "to": format!("{:02}:{:02}", q.to / 60, q.to % 60),
                }));
            }
            let pending = now.is_none_or(|n| c.release > n);
            match outcome {
                _ if pending => {
                    evidence.push(json!({"step": "release", "at": at(c.release), "why": "the release time has not come yet"}));
                    "pending"
                }
                Outcome::Failed { bound, value } => {
                    evidence.push(json!({
                        "step": "if", "bound": bound.key(), "required": required(r, *bound),
                        "value": value, "as_of": at(c.release),
                    }));
                    "if_failed"
                }
                Outcome::Capped { by } => {
                    let (max, per) = r.cap.expect("a capped trigger has a cap");
                    evidence.push(json!({
                        "step": "cap", "max": max, "per_ms": per, "filled_by": by,
                    }));
                    "capped"
                }
                Outcome::Fired { group } => {
                    evidence.push(json!({
                        "step": "group", "group": group.name(),
                        "holdout": r.holdout_bp as f64 / 10_000.0,
                    }));
                    "fired"
                }
                Outcome::Cancelled { .. } => unreachable!("handled above"),
            }
        }
    };
    if let Some((ts, id)) = &c.goal {
        evidence.push(json!({"step": "goal", "event": id, "at": at(*ts)}));
    }
    let (person, identities) = person_identities(&output.identities, dict, v.person);
    Some(json!({
        "rule": rule,
        "key": key,
        "decision": decision,
        "person": person,
        "identities": identities,
        "deadline": at(c.deadline),
        "at": at(c.release),
        "converted": c.goal.is_some(),
        "evidence": evidence,
    }))
}

/// The configured value of an `[rules.if]` bound, as JSON.
fn required(r: &crate::config::Rule, bound: Bound) -> Json {
    let c = &r.cond;
    let cents = |v: Option<i64>| v.map(|c| json!(crate::event::format_cents(c)));
    match bound {
        Bound::MinRevenue => cents(c.min_revenue),
        Bound::MaxRevenue => cents(c.max_revenue),
        Bound::Channels => c.channels.as_ref().map(|l| json!(l)),
        Bound::MinDaysSinceFirst => c.min_days_since_first.map(|v| json!(v)),
        Bound::MaxDaysSinceFirst => c.max_days_since_first.map(|v| json!(v)),
        Bound::MinActiveDays30 => c.min_active_days_30.map(|v| json!(v)),
        Bound::MaxActiveDays30 => c.max_active_days_30.map(|v| json!(v)),
    }
    .unwrap_or(Json::Null)
}

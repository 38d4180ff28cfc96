//! The pure decisions of trigger rules (ACTIONS.md): which triggers survive their cancels and
//! when they are released, and, per person, which of those fire (`if`, cap, group).

use serde::{Deserialize, Serialize};

use crate::config::Rule;
use crate::facts::{RuleId, Text};
use crate::metric::Group;
use crate::time::{Calendar, Day};

/// A trigger that no cancel stopped, with its deadline, release time and conversion.
/// Field order is the decision order: release, rule, trigger time, trigger id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    pub release: i64,
    pub rule: RuleId,
    pub ts: i64,
    pub trigger: Text,
    pub key: Text,
    pub deadline: i64,
    /// The goal event that converted it: time and id.
    pub goal: Option<(i64, Text)>,
}

/// A bound of `[rules.if]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bound {
    MinRevenue,
    MaxRevenue,
    Channels,
    MinDaysSinceFirst,
    MaxDaysSinceFirst,
    MinActiveDays30,
    MaxActiveDays30,
}

impl Bound {
    /// The key in `[rules.if]`.
    pub fn key(self) -> &'static str {
        match self {
            Bound::MinRevenue => "min_revenue",
            Bound::MaxRevenue => "max_revenue",
            Bound::Channels => "channels",
            Bound::MinDaysSinceFirst => "min_days_since_first",
            Bound::MaxDaysSinceFirst => "max_days_since_first",
            Bound::MinActiveDays30 => "min_active_days_30",
            Bound::MaxActiveDays30 => "max_active_days_30",
        }
    }
}

/// What became of a trigger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// A cancel event (id, time) stopped it.
    Cancelled { by: Text, at: i64 },
    /// The rule's `if` failed on this bound; the person's value as text (`none` when the
    /// person has no active event).
    Failed { bound: Bound, value: String },
    /// The cap was full: the triggers whose firings filled it.
    Capped { by: Vec<Text> },
    /// It fires (once its release time has come) in this group.
    Fired { group: Group },
}

/// A trigger and what became of it, with the person it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Verdict {
    pub candidate: Candidate,
    pub person: crate::facts::Person,
    pub outcome: Outcome,
}

/// What meets in one rule's scope (a `match` key, or a person).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScopeItem<P> {
    /// The earliest trigger of a key, with its person.
    Trigger {
        ts: i64,
        id: Text,
        key: Text,
        person: P,
    },
    Cancel {
        ts: i64,
        id: Text,
    },
    /// The first and last goal events `(ts, id)` of one goal bucket.
    Goals {
        bucket: i64,
        first: (i64, Text),
        last: (i64, Text),
    },
}

/// A goal bucket with its first and last goal events `(ts, id)`.
type GoalBucket<'a> = (i64, &'a (i64, Text), &'a (i64, Text));

/// A trigger of a scope with its person, and the cancel (id, time) that stopped it, if any.
pub type Survivor<P> = (P, Candidate, Option<(Text, i64)>);

/// The triggers of one rule and scope with their release times and the goal that converted
/// them, each with the cancel that stopped it, if one did. `items` are sorted. With `by_key`
/// (a `match` key's scope), the goal spans of one bucket come one per identity and are read as
/// one span, the first and last goal events of the key in that bucket.
pub fn survivors<P: Clone>(
    rule: &Rule,
    rule_id: RuleId,
    cal: &Calendar,
    items: &[&ScopeItem<P>],
    by_key: bool,
) -> Vec<Survivor<P>> {
    let mut cancels: Vec<(i64, &Text)> = Vec::new();
    // Per goal bucket (of one identity or key; a person may have several): first and last.
    let mut goals: Vec<GoalBucket> = Vec::new();
    for item in items {
        match item {
            ScopeItem::Cancel { ts, id } => cancels.push((*ts, id)),
            ScopeItem::Goals {
                bucket,
                first,
                last,
            } => goals.push((*bucket, first, last)),
            ScopeItem::Trigger { .. } => {}
        }
    }
    cancels.sort_unstable();
    goals.sort_unstable();
    if by_key {
        goals.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.min(later.1);
                kept.2 = kept.2.max(later.2);
            }
            same
        });
    }
    let width = crate::facts::goal_bucket_ms(rule.goal_within_ms);
    let mut out = Vec::new();
    for item in items {
        let ScopeItem::Trigger {
            ts,
            id,
            key,
            person,
        } = item
        else {
            continue;
        };
        let deadline = ts.saturating_add(rule.wait_ms);
        let first = cancels.partition_point(|(c, _)| *c < *ts);
        let cancel = cancels[first..]
            .iter()
            .take_while(|(c, _)| *c <= deadline)
            .find(|(_, c_id)| *c_id != id)
            .map(|(at, by)| ((*by).clone(), *at));
        let release = match rule.quiet_hours {
            Some(q) => cal.release(deadline, q.from as i64 * 60_000, q.to as i64 * 60_000),
            None => deadline,
        };
        let goal = if rule.goal.is_some() && cancel.is_none() {
            first_goal_after(&goals, width, release, rule.goal_within_ms)
        } else {
            None
        };
        out.push((
            person.clone(),
            Candidate {
                release,
                rule: rule_id,
                ts: *ts,
                trigger: id.clone(),
                key: key.clone(),
                deadline,
                goal,
            },
            cancel,
        ));
    }
    out
}

/// A goal event in `(release, release + within]`, from the first and last goal events of each
/// bucket (`buckets` sorted). A bucket is at most `within` wide, so the window ends in a later
/// bucket than it starts: a goal in it is either a goal after the release in the release's own
/// bucket (that bucket's last one then qualifies), or the first goal of a later bucket.
fn first_goal_after(
    buckets: &[GoalBucket],
    width: i64,
    release: i64,
    within: i64,
) -> Option<(i64, Text)> {
    let own = release.div_euclid(width);
    let end = release.saturating_add(within);
    let mut found: Option<&(i64, Text)> = None;
    for (bucket, first, last) in &buckets[buckets.partition_point(|(b, _, _)| *b < own)..] {
        let candidate = if *bucket == own {
            if first.0 > release {
                *first
            } else if last.0 > release {
                *last
            } else {
                continue;
            }
        } else {
            *first
        };
        if candidate.0 <= end && found.is_none_or(|f| candidate < f) {
            found = Some(candidate);
        }
        if *bucket > own && found.is_some() {
            break;
        }
    }
    found.cloned()
}

/// What a person's decisions read: candidates, or what makes them, and the person's state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PersonFact {
    /// A trigger of a `match` rule that survived its key's cancels.
    Candidate(Candidate),
    /// A trigger, cancel or goal of a rule without `match`, whose scope is the person: the
    /// person's own decisions find its survivors.
    Item(RuleId, ScopeItem<()>),
    /// A purchase: time and cents.
    Paid(i64, i64),
    /// The earliest active event of a day (per identity; the least per day counts).
    DayFirst(Day, i64),
    /// The person's first active event: its day and its channel's label (read only by rules
    /// with `channels`; empty when none has them).
    First(Day, Text),
    /// The byte-wise smallest `type:value` of the person's identities.
    Canonical(String),
    /// A retired firing that caps still count: rule, release time, trigger id.
    Fired(RuleId, i64, Text),
}

/// FNV-1a, 64 bits, of the parts one after another (as of their concatenation).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The group of a person under a rule with `holdout_bp` basis points held out.
pub fn group(rule_name: &str, holdout_bp: u32, canonical: Option<&str>) -> Group {
    if holdout_bp == 0 {
        return Group::Treatment;
    }
    let Some(canonical) = canonical else {
        return Group::Treatment;
    };
    let h = fnv1a64(&[rule_name.as_bytes(), b"/", canonical.as_bytes()]);
    if h % 10_000 < holdout_bp as u64 {
        Group::Holdout
    } else {
        Group::Treatment
    }
}

/// One person's decisions: the survivors of the person's own scopes (cancelled ones are
/// decided as such), then every candidate decided one at a time in order `(release, rule, ts,
/// id)`, each passing its rule's `if` as of its release, then its cap among the firings before
/// it, then put in its group.
pub fn decide(rules: &[Rule], cal: &Calendar, facts: &[&PersonFact]) -> Vec<(Candidate, Outcome)> {
    let mut candidates: Vec<&Candidate> = Vec::new();
    let mut items: Vec<(RuleId, &ScopeItem<()>)> = Vec::new();
    let mut paid: Vec<(i64, i64)> = Vec::new();
    let mut day_firsts: Vec<(Day, i64)> = Vec::new();
    let mut first: Option<(Day, &str)> = None;
    let mut canonical: Option<&str> = None;
    // Per rule: release time and trigger id of each firing so far (retired ones first).
    let mut fired: Vec<Vec<(i64, &Text)>> = vec![Vec::new(); rules.len()];
    for f in facts {
        match f {
            PersonFact::Candidate(c) => candidates.push(c),
            PersonFact::Item(rule, item) => items.push((*rule, item)),
            PersonFact::Paid(ts, cents) => paid.push((*ts, *cents)),
            PersonFact::DayFirst(d, ts) => day_firsts.push((*d, *ts)),
            PersonFact::First(d, c) => first = Some((*d, c)),
            PersonFact::Canonical(s) => canonical = Some(s),
            PersonFact::Fired(rule, release, id) => fired[*rule as usize].push((*release, id)),
        }
    }
    // The person's own scopes, one per rule (`items` come sorted, so each rule's are too).
    let mut out = Vec::new();
    let mut found: Vec<Candidate> = Vec::new();
    for scope in items.chunk_by(|a, b| a.0 == b.0) {
        let rule = scope[0].0;
        let scope: Vec<&ScopeItem<()>> = scope.iter().map(|(_, item)| *item).collect();
        for ((), c, cancel) in survivors(&rules[rule as usize], rule, cal, &scope, false) {
            match cancel {
                Some((by, at)) => out.push((c, Outcome::Cancelled { by, at })),
                None => found.push(c),
            }
        }
    }
    candidates.extend(found.iter());
    candidates.sort_unstable();
    paid.sort_unstable();
    // Earliest active time per day, days ascending.
    day_firsts.sort_unstable();
    day_firsts.dedup_by_key(|(d, _)| *d);
    let mut revenue_upto: Vec<(i64, i128)> = Vec::with_capacity(paid.len());
    let mut running: i128 = 0;
    for (ts, cents) in &paid {
        running += *cents as i128;
        revenue_upto.push((*ts, running));
    }
    for c in candidates {
        let rule = &rules[c.rule as usize];
        let r = c.release;
        let state = State {
            revenue_upto: &revenue_upto,
            day_firsts: &day_firsts,
            first,
        };
        if let Some((bound, value)) = failed_bound(&rule.cond, cal, &state, r) {
            out.push((c.clone(), Outcome::Failed { bound, value }));
            continue;
        }
        let earlier = &mut fired[c.rule as usize];
        if let Some((max, per)) = rule.cap {
            let within: Vec<&(i64, &Text)> = earlier
                .iter()
                .filter(|(t, _)| *t > r - per && *t <= r)
                .collect();
            if within.len() >= max as usize {
                let by = within.iter().map(|(_, id)| (*id).clone()).collect();
                out.push((c.clone(), Outcome::Capped { by }));
                continue;
            }
        }
        earlier.push((r, &c.trigger));
        let group = group(&rule.name, rule.holdout_bp, canonical);
        out.push((c.clone(), Outcome::Fired { group }));
    }
    out
}

/// What a person's `if` reads.
struct State<'a> {
    /// Running revenue (cents) after each purchase, by purchase time.
    revenue_upto: &'a [(i64, i128)],
    /// Earliest active time of each active day, days ascending.
    day_firsts: &'a [(Day, i64)],
    /// Cohort day and channel label of the first active event.
    first: Option<(Day, &'a str)>,
}

/// The first bound of `cond` that the person fails as of `r`, with the person's value.
fn failed_bound(
    cond: &crate::config::Condition,
    cal: &Calendar,
    s: &State,
    r: i64,
) -> Option<(Bound, String)> {
    if cond.is_empty() {
        return None;
    }
    let day_r = cal.day(r);
    if cond.needs_revenue() {
        let i = s.revenue_upto.partition_point(|(ts, _)| *ts <= r);
        let revenue = if i == 0 { 0 } else { s.revenue_upto[i - 1].1 };
        // Within MAX_CENTS, the cap on the revenue total; saturated all the same.
        let shown = i64::try_from(revenue).unwrap_or(if revenue < 0 { i64::MIN } else { i64::MAX });
        let text = || crate::event::format_cents(shown);
        if cond.min_revenue.is_some_and(|m| revenue < m as i128) {
            return Some((Bound::MinRevenue, text()));
        }
        if cond.max_revenue.is_some_and(|m| revenue > m as i128) {
            return Some((Bound::MaxRevenue, text()));
        }
    }
    if cond.needs_first() {
        let Some((cohort, _)) = s.first else {
            let bound = if cond.channels.is_some() {
                Bound::Channels
            } else if cond.min_days_since_first.is_some() {
                Bound::MinDaysSinceFirst
            } else {
                Bound::MaxDaysSinceFirst
            };
            return Some((bound, "none".into()));
        };
        if let Some(list) = &cond.channels {
            let name = s.first.map_or("(none)", |(_, c)| c);
            if !list.iter().any(|c| c == name) {
                return Some((Bound::Channels, name.to_string()));
            }
        }
        let since = (day_r - cohort) as i64;
        if cond.min_days_since_first.is_some_and(|m| since < m) {
            return Some((Bound::MinDaysSinceFirst, since.to_string()));
        }
        if cond.max_days_since_first.is_some_and(|m| since > m) {
            return Some((Bound::MaxDaysSinceFirst, since.to_string()));
        }
    }
    if cond.needs_active_days() {
        let lo = day_r - 29;
        let active = s
            .day_firsts
            .iter()
            .filter(|(d, ts)| *d >= lo && *d <= day_r && *ts <= r)
            .count() as i64;
        if cond.min_active_days_30.is_some_and(|m| active < m) {
            return Some((Bound::MinActiveDays30, active.to_string()));
        }
        if cond.max_active_days_30.is_some_and(|m| active > m) {
            return Some((Bound::MaxActiveDays30, active.to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a64(&[b""]), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(&[b"foobar"]), 0x85944171f73967e8);
        assert_eq!(fnv1a64(&[b"foo", b"", b"bar"]), 0x85944171f73967e8);
    }

    #[test]
    fn holdout_extremes() {
        assert_eq!(group("r", 0, Some("user:u")), Group::Treatment);
        assert_eq!(group("r", 10_000, Some("user:u")), Group::Holdout);
    }
}
